// The cluster glue: wires the membership protocol to real sockets and timers, publishes
// this broker's state through it, and builds the coordinator and hinted handoff on the
// views it produces. The protocol itself is in membership/; see cluster.h.
#include "cluster.h"

#include "hand_over.h"
#include "hinted_handoff.h"
#include "repair/debt_settler.h"
#include "repair/crash_lease.h"
#include "repair/repair_debts.h"
#include "store_write.h"

#include "alldata/broker/peer_client.h"
#include "alldata/broker/replicating_coordinator.h"
#include "membership/asio_runtime.h"
#include "membership/cluster_agent.h"
#include "membership/membership.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <random>

namespace alldata::broker {

namespace asio = boost::asio;

namespace {

constexpr const char* kLifecycleMeta = "membership.lifecycle";

PlacementPolicy placement_policy(const BrokerOptions& o) {
  return PlacementPolicy{o.replication_factor, o.other_zone_replicas, o.other_region_replicas};
}

std::uint64_t wall_now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// Every membership timer is a multiple of the protocol period (broker/README.md).
MembershipOptions membership_options(const BrokerOptions& o, const std::string& node_id, MemberState state) {
  using std::chrono::milliseconds;
  const auto period = o.gossip_interval;
  MembershipOptions m;
  m.node_id = node_id;
  m.cluster = o.cluster_name;
  m.seeds = o.seeds;
  m.state = std::move(state);
  m.initial_incarnation = wall_now_ms();
  m.probe_interval = period;
  m.probe_timeout = period / 2;
  m.gossip_interval = std::max<milliseconds>(period / 5, milliseconds(1));
  m.gossip_to_dead = period * 30;
  m.push_pull_interval = period * 30;
  m.push_pull_timeout = std::max<milliseconds>(period * 10, milliseconds(2000));
  m.seed_retry_max = period * 30;
  m.reconnect_interval = period * 10;
  m.seed_wait = period * 10;
  m.pause_threshold = period * 2;
  m.reap_after = o.reap_after;
  m.max_members = o.max_members;
  // A joining broker becomes normal only once it holds its partitions' data (HandOverRunner::join).
  m.promote_when_ready = false;
  return m;
}

// What the broker knows of itself, for the membership to publish.
class BrokerLocalState final : public LocalState {
 public:
  BrokerLocalState(storage::EventStore& store, const ReplicatingCoordinator*& coordinator,
                   const HandOverRunner*& hand_over, const repair::RepairDebts& debts)
      : store_(store), coordinator_(coordinator), hand_over_(hand_over), debts_(debts) {}
  std::uint64_t wall_ms() override { return wall_now_ms(); }
  std::optional<std::uint64_t> oldest_hint_ms() override { return store_.oldest_hint_ms(); }
  std::optional<std::uint64_t> oldest_in_flight_ms() override {
    return coordinator_ ? coordinator_->oldest_in_flight_ms() : std::nullopt;
  }
  std::uint64_t pending_hints() override {
    std::uint64_t total = 0;
    for (const auto& [owner, count] : store_.pending_hints()) total += count;
    return total;
  }
  std::uint64_t load() override { return coordinator_ ? coordinator_->writes_in_flight() : 0; }
  HandOver hand_over() override { return hand_over_ ? hand_over_->progress() : HandOver{}; }
  std::optional<std::uint64_t> oldest_debt_ms() override { return debts_.oldest_ms(); }
  std::map<std::string, std::uint64_t> owed() override {
    std::map<std::string, std::uint64_t> out = store_.oldest_hint_ms_by_target();
    for (const auto& [owner, since] : debts_.oldest_ms_by_owner()) {
      auto [it, fresh] = out.emplace(owner, since);
      if (!fresh) it->second = std::min(it->second, since);
    }
    return out;
  }

 private:
  storage::EventStore& store_;
  const ReplicatingCoordinator*& coordinator_;
  const HandOverRunner*& hand_over_;
  const repair::RepairDebts& debts_;
};

// Writes a batch on a node: this broker's own store, or a peer over the peer protocol.
class BrokerReplicaWriter final : public ReplicaWriter {
 public:
  BrokerReplicaWriter(std::string self_id, storage::EventStore& store, const ViewSource& views, PeerClient& peers,
                      std::chrono::milliseconds timeout)
      : self_id_(std::move(self_id)), store_(store), views_(views), peers_(peers), timeout_(timeout) {}

  asio::awaitable<Status> write(const std::string& node_id, const storage::EventBatch& batch,
                                std::optional<std::string> hint_for) override {
    if (node_id == self_id_) {
      storage::EventBatch copy = batch;
      co_return co_await store_and_wait(store_, std::move(copy), std::move(hint_for), timeout_);
    }
    std::string address;
    if (auto view = views_.view()) {
      if (const ViewMember* m = view->member(node_id)) address = m->peer_address;
    }
    if (address.empty()) co_return Error(ErrorCode::kConnectionFailed, "no peer address known for " + node_id);
    co_return co_await peers_.send(node_id, address, PeerClient::Kind::kReplicate, batch,
                                   std::move(hint_for), timeout_);
  }

 private:
  std::string self_id_;
  storage::EventStore& store_;
  const ViewSource& views_;
  PeerClient& peers_;
  std::chrono::milliseconds timeout_;
};

class ClusterImpl final : public Cluster {
 public:
  ClusterImpl(const BrokerOptions& options, std::string node_id, storage::EventStore& store,
              asio::any_io_executor executor, asio::thread_pool& storage_pool, std::shared_ptr<spdlog::logger> log)
      : options_(options),
        node_id_(std::move(node_id)),
        store_(store),
        executor_(std::move(executor)),
        storage_pool_(storage_pool),
        log_(std::move(log)),
        random_(std::random_device{}()),
        timers_(static_cast<std::uint64_t>(options.gossip_interval.count()) * 2),
        local_(store, coordinator_ptr_, hand_over_ptr_, debts_) {}

  ~ClusterImpl() override { stop(); }

  Status init(const std::string& client_address, const std::string& peer_address);

  Coordinator& coordinator() override { return *coordinator_; }
  std::shared_ptr<const ClusterView> view() const override { return views_.view(); }
  std::string gossip_address() const override { return gossip_address_; }
  std::size_t writes_in_flight() const override { return coordinator_->writes_in_flight(); }

  std::uint64_t watermark_ms() const override {
    auto v = views_.view();
    return v ? v->watermark_ms(SteadyClock().now_ms()) : 0;
  }

  std::vector<std::vector<std::string>> replica_sets(std::string_view stream) const override {
    std::vector<std::vector<std::string>> out;
    auto v = views_.view();
    if (!v) return out;
    const PlacementTable& table = v->placement();
    const auto placement = table.stream(stream);
    const std::size_t rf = std::min<std::size_t>(options_.replication_factor, table.members().size());
    for (const auto& list : placement->partitions) {
      std::vector<std::string> ids;
      for (std::size_t i = 0; i < rf && i < list.size(); ++i) ids.push_back(table.members()[list[i]].node_id);
      out.push_back(std::move(ids));
    }
    return out;
  }

  asio::awaitable<repair::RepairSummary> repair(const repair::RepairScope& scope) override {
    // A named task, not a temporary inside co_await: GCC 12 destroys those twice.
    auto task = [this, scope]() -> asio::awaitable<repair::RepairSummary> {
      co_return co_await repairer_->run(scope);
    };
    co_return co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
  }

  asio::awaitable<Status> remove_member(const std::string& node_id) override {
    auto task = [this, node_id]() -> asio::awaitable<Status> {
      if (stopped_) co_return Error(ErrorCode::kShuttingDown, "the broker is stopping");
      Status st = membership_->remove(node_id);
      if (st) log_->warn("member {} removed by an operator: its partitions move to the others", node_id);
      co_return st;
    };
    co_return co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
  }

  asio::awaitable<Status> decommission(const std::string& node_id) override {
    auto task = [this, node_id]() -> asio::awaitable<Status> { co_return start_leaving(node_id); };
    co_return co_await asio::co_spawn(executor_, std::move(task), asio::use_awaitable);
  }

  void on_left(std::function<void()> fn) override { on_left_ = std::move(fn); }

  void stop() override {
    if (stopped_.exchange(true)) return;
    if (hand_over_) hand_over_->stop();
    if (settler_) settler_->stop();
    if (lease_) lease_->end(coordinator_->writes_in_flight() == 0);
    if (repairer_) repairer_->stop();
    if (handoff_) handoff_->stop();
    if (driver_) driver_->stop();
    agent_.reset();
    membership_.reset();
    if (peers_) peers_->close();
    if (udp_) udp_->close();
    if (tcp_) tcp_->close();
  }

 private:
  // On the executor. See decommission().
  Status start_leaving(const std::string& node_id) {
    if (stopped_) return Error(ErrorCode::kShuttingDown, "the broker is stopping");
    if (node_id != node_id_) {
      return Error(ErrorCode::kBadRequest, "this is broker " + node_id_ + ", not " + node_id +
                                               ": send the decommission to " + node_id + "'s client address");
    }
    MemberState st = membership_->state();
    if (st.lifecycle == Lifecycle::kLeaving) return {};  // already on its way
    if (st.lifecycle != Lifecycle::kNormal) {
      return Error(ErrorCode::kBadRequest, "broker " + node_id_ + " is " + std::string(to_string(st.lifecycle)) +
                                               ": only a normal broker can be decommissioned (a joining one "
                                               "owns nothing: stop it and remove it)");
    }
    auto view = views_.view();
    std::size_t staying = 0;
    if (view) {
      for (const auto& m : view->members()) staying += m.lifecycle == Lifecycle::kNormal && !m.self ? 1 : 0;
    }
    if (staying < options_.replication_factor) {
      return Error(ErrorCode::kBadRequest,
                   "decommissioning " + node_id_ + " would leave " + std::to_string(staying) +
                       " brokers for replication factor " + std::to_string(options_.replication_factor) +
                       ": add a broker first");
    }
    st.lifecycle = Lifecycle::kLeaving;
    if (Status set = membership_->set_state(st); !set) return set;
    log_->warn("decommission: this broker is leaving the cluster for good");
    spawn_leave();
    return {};
  }

  void spawn_leave() {
    auto on_left = [this] {
      if (on_left_) on_left_();
    };
    asio::co_spawn(executor_, hand_over_->leave(std::move(on_left)), [log = log_](std::exception_ptr e) {
      if (e) log->error("leaving with data failed: {}", describe_exception(e));
    });
  }

  // Before anything is coordinated: a lease the last run left means it died, maybe with
  // writes half done; every owner then owes a repair over their times.
  Status start_lease() {
    repair::CrashLeaseOptions lo;
    lo.max_key_skew = options_.max_key_skew;
    lo.produce_timeout = options_.produce_timeout;
    lease_ = std::make_unique<repair::CrashLease>(store_, executor_, storage_pool_, lo, wall_now_ms, log_);
    auto left = lease_->begin();
    if (!left) return left.error();
    if (*left) {
      log_->warn("the last run of this broker did not stop cleanly: every owner will repair [{}, {})",
                 format_time_ms((*left)->from_ms), format_time_ms((*left)->to_ms));
      debts_.add(repair::kEveryOwner, "", repair::kAllPartitions, (*left)->from_ms, (*left)->to_ms);
    }
    lease_->start();
    return {};
  }

  // The lifecycle this broker had before a restart: an owner of partitions comes back as
  // one (it is not a newcomer); a new broker starts joining.
  Lifecycle stored_lifecycle() const {
    auto got = store_.get_meta(kLifecycleMeta);
    if (!got || !*got) return Lifecycle::kJoining;
    for (Lifecycle l : {Lifecycle::kNormal, Lifecycle::kLeaving, Lifecycle::kLeft}) {
      if (**got == to_string(l)) return l;
    }
    return Lifecycle::kJoining;
  }

  void persist_lifecycle(Lifecycle l) {
    asio::post(storage_pool_, [this, l] {
      if (auto st = store_.put_meta(kLifecycleMeta, std::string(to_string(l))); !st) {
        log_->error("cannot store this broker's lifecycle: {}", st.error().to_string());
      }
    });
  }

  const BrokerOptions& options_;
  std::string node_id_;
  storage::EventStore& store_;
  asio::any_io_executor executor_;
  asio::thread_pool& storage_pool_;
  std::shared_ptr<spdlog::logger> log_;
  SteadyClock clock_;
  SeededRandom random_;
  TimerQueue timers_;
  const ReplicatingCoordinator* coordinator_ptr_ = nullptr;
  repair::RepairDebts debts_;
  BrokerLocalState local_;
  ViewHolder views_;
  std::unique_ptr<UdpTransport> udp_;
  std::unique_ptr<TcpStreamTransport> tcp_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<ClusterAgent> agent_;
  std::unique_ptr<TimerDriver> driver_;
  std::unique_ptr<PeerClient> peers_;
  std::unique_ptr<BrokerReplicaWriter> writer_;
  std::unique_ptr<ReplicatingCoordinator> coordinator_;
  std::unique_ptr<HintedHandoff> handoff_;
  std::unique_ptr<repair::Repairer> repairer_;
  std::unique_ptr<HandOverRunner> hand_over_;
  std::unique_ptr<repair::DebtSettler> settler_;
  std::unique_ptr<repair::CrashLease> lease_;
  const HandOverRunner* hand_over_ptr_ = nullptr;
  std::function<void()> on_left_;
  std::string gossip_address_;
  std::atomic<bool> stopped_{false};
};

Status ClusterImpl::init(const std::string& client_address, const std::string& peer_address) {
  auto transports = open_membership_transports(executor_, options_.gossip_listen, log_);
  if (!transports) return transports.error();
  udp_ = std::move(transports->first);
  tcp_ = std::move(transports->second);

  MemberState state;
  state.client_address = client_address;
  state.peer_address = peer_address;
  state.zone = options_.zone;
  state.region = options_.region;
  state.partitions = options_.partitions;
  state.replication_factor = options_.replication_factor;
  state.lifecycle = stored_lifecycle();
  if (state.lifecycle == Lifecycle::kLeft) {
    return Error(ErrorCode::kBadRequest, "broker " + node_id_ +
                                             " left the cluster; its node id may not rejoin: start it with a new "
                                             "--node-id and an empty --data-dir");
  }
  membership_ = std::make_unique<Membership>(membership_options(options_, node_id_, state), *udp_, *tcp_, timers_,
                                             clock_, random_, log_);

  peers_ = std::make_unique<PeerClient>(
      executor_, PeerClientOptions{.self_node_id = node_id_, .max_frame_bytes = options_.max_frame_bytes}, *log_);
  writer_ = std::make_unique<BrokerReplicaWriter>(node_id_, store_, views_, *peers_, options_.replica_timeout);
  ReplicationOptions ro;
  ro.policy = placement_policy(options_);
  ro.replica_timeout = options_.replica_timeout;
  ro.logger = log_;
  ro.on_lost_copy = [this](const std::string& owner, const storage::EventBatch& batch) {
    std::uint64_t newest = batch.min_time_ms();
    batch.for_each([&](const Key& k, std::string_view, std::span<const storage::HeaderView>) {
      newest = std::max(newest, k.time_ms());
    });
    debts_.add(owner, batch.stream(), batch.partition(), batch.min_time_ms(), newest + 1);
  };
  coordinator_ = std::make_unique<ReplicatingCoordinator>(views_, *writer_, ro);
  coordinator_ptr_ = coordinator_.get();

  AgentOptions ao;
  ao.policy = placement_policy(options_);
  ao.partitions = options_.partitions;
  ao.watermark_margin = options_.max_key_skew + options_.produce_timeout;
  ao.check_interval = options_.gossip_interval;
  ao.min_republish = options_.gossip_interval * 5;
  agent_ = std::make_unique<ClusterAgent>(*membership_, timers_, clock_, local_, views_, ao, log_);
  agent_->on_lifecycle([this](Lifecycle l) { persist_lifecycle(l); });

  gossip_address_ = membership_->address();
  membership_->start();
  agent_->start();
  driver_ = std::make_unique<TimerDriver>(executor_, timers_, clock_);
  driver_->start();
  handoff_ = std::make_unique<HintedHandoff>(store_, storage_pool_, *peers_, views_, clock_, options_.gossip_interval,
                                             options_.replica_timeout, log_);
  handoff_->start(executor_);
  repair::RepairerOptions rep;
  rep.interval = options_.repair_interval;
  rep.bytes_per_sec = options_.repair_bytes_per_sec;
  rep.interval_ms = static_cast<std::uint64_t>(options_.partition_interval.count());
  rep.request_timeout = options_.produce_timeout;
  repairer_ = std::make_unique<repair::Repairer>(executor_, node_id_, store_, storage_pool_, *peers_,
                                                 views_, rep, log_);
  repairer_->start();
  HandOverOptions ho;
  ho.period = options_.gossip_interval;
  ho.margin = options_.max_key_skew + options_.produce_timeout;
  hand_over_ = std::make_unique<HandOverRunner>(
      executor_, *membership_, *repairer_, store_, views_, [this] { return coordinator_->writes_in_flight(); }, ho,
      log_);
  hand_over_ptr_ = hand_over_.get();
  settler_ = std::make_unique<repair::DebtSettler>(executor_, debts_, store_, storage_pool_, *peers_, views_,
                                                   std::chrono::seconds(2), std::chrono::minutes(5), log_);
  settler_->load();
  if (auto st = start_lease(); !st) return st;
  settler_->start();
  if (state.lifecycle == Lifecycle::kJoining) {
    asio::co_spawn(executor_, hand_over_->join(), [log = log_](std::exception_ptr e) {
      if (e) log->error("joining with data failed: {}", describe_exception(e));
    });
  } else if (state.lifecycle == Lifecycle::kLeaving) {
    log_->warn("this broker was leaving the cluster when it stopped: it carries on");
    spawn_leave();
  }
  log_->info("broker {} joined membership on {} (cluster {}, zone {}, region {}, replication factor {}, {} seeds, {})",
             node_id_, membership_->address(), options_.cluster_name, options_.zone, options_.region,
             options_.replication_factor, options_.seeds.size(), to_string(state.lifecycle));
  return {};
}

}  // namespace

Result<std::unique_ptr<Cluster>> Cluster::start(const BrokerOptions& options, const std::string& node_id,
                                                const std::string& client_address, const std::string& peer_address,
                                                storage::EventStore& store, asio::any_io_executor executor,
                                                asio::thread_pool& storage_pool, std::shared_ptr<spdlog::logger> log) {
  if (peer_address.empty()) {
    return Error(ErrorCode::kBadRequest, "a cluster member needs a peer listener (--peer-listen)");
  }
  auto cluster =
      std::make_unique<ClusterImpl>(options, node_id, store, std::move(executor), storage_pool, std::move(log));
  if (auto st = cluster->init(client_address, peer_address); !st) return st.error();
  return std::unique_ptr<Cluster>(std::move(cluster));
}

}  // namespace alldata::broker
