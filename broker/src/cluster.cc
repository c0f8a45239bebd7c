#include "cluster.h"

#include "store_write.h"

#include "alldata/broker/gossip.h"
#include "alldata/broker/gossip_udp.h"
#include "alldata/broker/peer_client.h"
#include "alldata/broker/replicating_coordinator.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <map>
#include <random>

namespace alldata::broker {

namespace asio = boost::asio;

namespace {

constexpr const char* kPendingHintsKey = "hints.pending";

PlacementPolicy placement_policy(const BrokerOptions& o) {
  return PlacementPolicy{o.replication_factor, o.other_zone_replicas, o.other_region_replicas};
}

// Placement's view of the cluster, read from gossip. Thread-safe (the gossiper is).
class GossipMembership final : public Membership {
 public:
  GossipMembership(const Gossiper& gossiper, MemberInfo self) : gossiper_(gossiper), self_(std::move(self)) {}

  std::vector<MemberInfo> members() const override {
    std::vector<MemberInfo> out;
    for (const auto& m : gossiper_.members()) {
      if (m.self) {
        out.push_back(self_);
        continue;
      }
      MemberInfo info;
      info.node_id = m.node_id;
      info.zone = gossiper_.get(m.node_id, gossip_keys::kZone).value_or("");
      info.region = gossiper_.get(m.node_id, gossip_keys::kRegion).value_or("");
      info.live = m.live;
      out.push_back(std::move(info));
    }
    return out;
  }
  MemberInfo self() const override { return self_; }

 private:
  const Gossiper& gossiper_;
  MemberInfo self_;
};

// Writes a batch on a node: this broker's own store, or a peer over the peer protocol.
class BrokerReplicaWriter final : public ReplicaWriter {
 public:
  BrokerReplicaWriter(std::string self_id, storage::EventStore& store, const Gossiper& gossiper,
                      PeerClient& peers, std::chrono::milliseconds timeout)
      : self_id_(std::move(self_id)), store_(store), gossiper_(gossiper), peers_(peers), timeout_(timeout) {}

  asio::awaitable<Status> write(const std::string& node_id, const storage::EventBatch& batch,
                                std::optional<std::string> hint_for) override {
    if (node_id == self_id_) {
      storage::EventBatch copy = batch;
      co_return co_await store_and_wait(store_, std::move(copy), std::move(hint_for), timeout_);
    }
    auto address = gossiper_.get(node_id, gossip_keys::kPeerAddress);
    if (!address) {
      co_return Error(ErrorCode::kConnectionFailed, "no peer address known for " + node_id);
    }
    co_return co_await peers_.send(*address, PeerClient::Kind::kReplicate, batch, std::move(hint_for),
                                   timeout_);
  }

 private:
  std::string self_id_;
  storage::EventStore& store_;
  const Gossiper& gossiper_;
  PeerClient& peers_;
  std::chrono::milliseconds timeout_;
};

class ClusterImpl final : public Cluster {
 public:
  ClusterImpl(const BrokerOptions& options, std::string node_id, storage::EventStore& store,
              asio::any_io_executor executor, asio::thread_pool& storage_pool,
              std::shared_ptr<spdlog::logger> log)
      : options_(options),
        node_id_(std::move(node_id)),
        store_(store),
        executor_(std::move(executor)),
        storage_pool_(storage_pool),
        log_(std::move(log)),
        random_(std::random_device{}()) {}

  ~ClusterImpl() override { stop(); }

  Status init(const std::string& client_address, const std::string& peer_address) {
    auto transport = UdpGossipTransport::open(executor_, options_.gossip_listen, log_);
    if (!transport) return transport.error();
    transport_ = std::move(*transport);

    GossipOptions go;
    go.node_id = node_id_;
    go.seeds = options_.seeds;
    go.interval = options_.gossip_interval;
    go.phi.threshold = options_.phi_threshold;
    go.phi.first_interval_estimate_ms = static_cast<double>(options_.gossip_interval.count());
    gossiper_ = std::make_unique<Gossiper>(go, *transport_, clock_, random_, log_);
    for (auto [key, value] : {std::pair<const char*, std::string>{gossip_keys::kClientAddress, client_address},
                              {gossip_keys::kPeerAddress, peer_address},
                              {gossip_keys::kZone, options_.zone},
                              {gossip_keys::kRegion, options_.region},
                              {gossip_keys::kPartitions, std::to_string(options_.partitions)},
                              {gossip_keys::kReplicationFactor, std::to_string(options_.replication_factor)},
                              {gossip_keys::kState, "live"},
                              {kPendingHintsKey, "0"}}) {
      if (auto st = gossiper_->set_local(key, value); !st) return st;
    }

    peers_ = std::make_unique<PeerClient>(
        executor_, PeerClientOptions{.self_node_id = node_id_, .max_frame_bytes = options_.max_frame_bytes},
        *log_);
    writer_ = std::make_unique<BrokerReplicaWriter>(node_id_, store_, *gossiper_, *peers_,
                                                    options_.replica_timeout);
    membership_ = std::make_unique<GossipMembership>(
        *gossiper_, MemberInfo{node_id_, options_.zone, options_.region, true});
    ReplicationOptions ro;
    ro.policy = placement_policy(options_);
    ro.replica_timeout = options_.replica_timeout;
    ro.logger = log_;
    coordinator_ = std::make_unique<ReplicatingCoordinator>(*membership_, *writer_, ro);

    ticker_ = std::make_unique<GossipTicker>(executor_, *gossiper_, options_.gossip_interval);
    ticker_->start();
    asio::co_spawn(executor_, handoff_loop(), [log = log_](std::exception_ptr e) {
      if (e) log->error("hinted handoff loop failed");
    });
    log_->info("broker {} joined gossip on {} (zone {}, region {}, replication factor {}, seeds {})",
               node_id_, transport_->local_address(), options_.zone, options_.region,
               options_.replication_factor, options_.seeds.size());
    return {};
  }

  Coordinator& coordinator() override { return *coordinator_; }

  std::vector<MemberView> members() const override {
    std::vector<MemberView> out;
    for (const auto& m : gossiper_->members()) {
      MemberView v;
      v.node_id = m.node_id;
      auto get = [&](const char* key) { return gossiper_->get(m.node_id, key).value_or(""); };
      v.client_address = get(gossip_keys::kClientAddress);
      v.peer_address = get(gossip_keys::kPeerAddress);
      v.zone = get(gossip_keys::kZone);
      v.region = get(gossip_keys::kRegion);
      v.live = m.live;
      v.phi = m.phi;
      v.pending_hints = std::strtoull(get(kPendingHintsKey).c_str(), nullptr, 10);
      if (m.self) {
        out.insert(out.begin(), std::move(v));
      } else {
        out.push_back(std::move(v));
      }
    }
    return out;
  }

  std::vector<std::vector<std::string>> replica_sets(std::string_view stream) const override {
    const auto members = membership_->members();
    const PlacementPolicy policy = placement_policy(options_);
    std::vector<std::vector<std::string>> out;
    for (std::uint32_t p = 0; p < options_.partitions; ++p) {
      out.push_back(replica_set(stream, p, members, policy));
    }
    return out;
  }

  std::size_t writes_in_flight() const override { return coordinator_->writes_in_flight(); }

  std::uint64_t watermark_ms() const override {
    std::uint64_t lowest = ~std::uint64_t{0};
    for (const auto& m : gossiper_->members()) {
      if (!m.live) continue;
      const auto text = gossiper_->get(m.node_id, gossip_keys::kWatermark);
      if (!text) return 0;
      lowest = std::min<std::uint64_t>(lowest, std::strtoull(text->c_str(), nullptr, 10));
    }
    return lowest == ~std::uint64_t{0} ? 0 : lowest;
  }

  std::string gossip_address() const override { return transport_ ? transport_->local_address() : ""; }

  void stop() override {
    if (stopped_.exchange(true)) return;
    stopping_ = true;
    if (ticker_) ticker_->stop();
    if (peers_) peers_->close();
    if (transport_) transport_->close();
  }

 private:
  // Delivers held hints to their owners while gossip says they are live; deletes a hint only
  // after its owner acknowledged it. Runs every gossip interval on the cluster executor.
  asio::awaitable<void> handoff_loop() {
    asio::steady_timer timer(executor_);
    while (!stopping_) {
      timer.expires_after(options_.gossip_interval);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (stopping_) break;
      std::uint64_t total = 0;
      for (const auto& [target, count] : store_.pending_hints()) {
        total += count;
        if (count == 0 || stopping_) continue;
        auto member = gossiper_->member(target);
        auto address = gossiper_->get(target, gossip_keys::kPeerAddress);
        if (!member || !member->live || !address) continue;
        const auto now = std::chrono::steady_clock::now();
        auto& retry = retry_[target];
        if (now < retry.next_attempt) continue;
        if (co_await deliver(target, *address, retry.delay.count() == 0)) {
          retry_.erase(target);
        } else {
          // Gossip says live but delivery failed (still starting, or a partition): back off
          // 1 s doubling to 30 s, so a stuck owner costs neither CPU nor log lines.
          retry.delay = std::min<std::chrono::milliseconds>(
              std::max<std::chrono::milliseconds>(retry.delay * 2, std::chrono::seconds(1)),
              std::chrono::seconds(30));
          retry.next_attempt = now + retry.delay;
        }
      }
      const auto text = std::to_string(total);
      if (gossiper_->get(node_id_, kPendingHintsKey) != text) {
        (void)gossiper_->set_local(kPendingHintsKey, text);  // only fails for reserved keys
      }
      (void)gossiper_->set_local(gossip_keys::kWatermark, std::to_string(local_watermark_ms()));
    }
  }

  // Below this time, this broker holds no pending hint and coordinates no write still in
  // flight: a new write's keys are at most max-key-skew old when it arrives and it settles
  // (replicas or hints) within the produce timeout; a pending hint holds its event's time.
  std::uint64_t local_watermark_ms() const {
    using namespace std::chrono;
    const auto now = static_cast<std::uint64_t>(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
    const auto margin = static_cast<std::uint64_t>((options_.max_key_skew + options_.produce_timeout).count());
    std::uint64_t wm = now > margin ? now - margin : 0;
    if (auto oldest = store_.oldest_hint_ms()) wm = std::min(wm, *oldest);
    // Writes whose copies are still on their way (fallback chains can outlast the margin).
    if (auto oldest = coordinator_->oldest_in_flight_ms()) wm = std::min(wm, *oldest);
    return wm;
  }

  // Delivers pending hints for `target`; false if delivery stopped on an error (logged as a
  // warning when `first_failure`, else at debug level).
  asio::awaitable<bool> deliver(const std::string& target, const std::string& address, bool first_failure) {
    std::uint64_t delivered = 0;
    for (int pages = 0; pages < 100 && !stopping_; ++pages) {
      // Named lambdas and optionals, never temporaries with destructors inside a co_await
      // expression: GCC 12 destroys those twice.
      auto read = [this, &target]() -> asio::awaitable<Result<storage::HintPage>> {
        co_return store_.read_hints(target, 1000);
      };
      auto page = co_await asio::co_spawn(storage_pool_, read, asio::use_awaitable);
      if (!page) {
        log_->error("cannot read hints for {}: {}", target, page.error().to_string());
        co_return false;
      }
      for (const auto& batch : page->batches) {
        std::optional<std::string> no_hint;
        Status sent = co_await peers_->send(address, PeerClient::Kind::kDeliverHints, batch,
                                            std::move(no_hint), options_.replica_timeout);
        if (!sent) {
          log_->log(first_failure ? spdlog::level::warn : spdlog::level::debug,
                    "hinted handoff to {} paused (retrying with back-off): {}", target,
                    sent.error().to_string());
          co_return false;
        }
        auto remove = [this, &target, &batch]() -> asio::awaitable<Status> {
          co_return store_.delete_hints(target, batch);
        };
        Status deleted = co_await asio::co_spawn(storage_pool_, remove, asio::use_awaitable);
        if (!deleted) {
          log_->error("cannot delete delivered hints for {}: {}", target, deleted.error().to_string());
          co_return false;
        }
        delivered += batch.size();
      }
      if (page->done || page->batches.empty()) break;
    }
    if (delivered > 0) log_->info("delivered {} hinted events to {}", delivered, target);
    co_return true;
  }

  const BrokerOptions& options_;
  std::string node_id_;
  storage::EventStore& store_;
  asio::any_io_executor executor_;
  asio::thread_pool& storage_pool_;
  std::shared_ptr<spdlog::logger> log_;
  SteadyGossipClock clock_;
  SeededGossipRandom random_;
  std::unique_ptr<UdpGossipTransport> transport_;
  std::unique_ptr<Gossiper> gossiper_;
  std::unique_ptr<PeerClient> peers_;
  std::unique_ptr<BrokerReplicaWriter> writer_;
  std::unique_ptr<GossipMembership> membership_;
  std::unique_ptr<ReplicatingCoordinator> coordinator_;
  std::unique_ptr<GossipTicker> ticker_;
  struct Retry {
    std::chrono::milliseconds delay{0};
    std::chrono::steady_clock::time_point next_attempt;
  };
  std::map<std::string, Retry> retry_;  // hint owners whose delivery failed; cluster executor only
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace

Result<std::unique_ptr<Cluster>> Cluster::start(const BrokerOptions& options, const std::string& node_id,
                                                const std::string& client_address,
                                                const std::string& peer_address,
                                                storage::EventStore& store, asio::any_io_executor executor,
                                                asio::thread_pool& storage_pool,
                                                std::shared_ptr<spdlog::logger> log) {
  if (peer_address.empty()) {
    return Error(ErrorCode::kBadRequest, "a cluster member needs a peer listener (--peer-listen)");
  }
  auto cluster = std::make_unique<ClusterImpl>(options, node_id, store, std::move(executor), storage_pool,
                                               std::move(log));
  if (auto st = cluster->init(client_address, peer_address); !st) return st.error();
  return std::unique_ptr<Cluster>(std::move(cluster));
}

}  // namespace alldata::broker
