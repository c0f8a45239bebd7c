#include "sim_cluster.h"

#include <spdlog/sinks/null_sink.h>

namespace alldata::sim {

using broker::Liveness;

class SimCluster::FakeLocal final : public broker::LocalState {
 public:
  explicit FakeLocal(const SimCluster& c) : c_(c) {}
  std::uint64_t wall_ms() override { return c_.wall_ms(); }
  std::optional<std::uint64_t> oldest_hint_ms() override { return hold; }
  std::optional<std::uint64_t> oldest_in_flight_ms() override { return std::nullopt; }
  std::uint64_t pending_hints() override { return hold ? 1 : 0; }
  std::uint64_t load() override { return 0; }
  std::optional<std::uint64_t> hold;

 private:
  const SimCluster& c_;
};

SimCluster::Node::Node() = default;
SimCluster::Node::~Node() = default;
SimCluster::Node::Node(Node&&) noexcept = default;

void SimCluster::set_hold(std::size_t i, std::optional<std::uint64_t> wall_ms) {
  if (nodes_[i].local) nodes_[i].local->hold = wall_ms;
}

MembershipOptions simulated_broker_options() {
  MembershipOptions o;
  o.state.partitions = 16;
  o.state.replication_factor = 3;
  o.state.client_address = "10.0.0.1:7400";
  o.state.peer_address = "10.0.0.1:7401";
  o.state.zone = "zone-1";
  o.state.region = "region-1";
  return o;
}

SimCluster::SimCluster(World& world, MembershipOptions base, std::size_t n, std::vector<std::size_t> seeds,
                       std::shared_ptr<spdlog::logger> logger)
    : world_(world), base_(std::move(base)), log_(std::move(logger)) {
  if (!log_) log_ = std::make_shared<spdlog::logger>("sim", std::make_shared<spdlog::sinks::null_sink_mt>());
  for (std::size_t s : seeds) seeds_.push_back(address(s));
  nodes_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    nodes_[i].host = &world_.add_host(address(i), static_cast<std::uint64_t>(base_.pause_threshold.count()));
  }
}

SimCluster::~SimCluster() {
  for (auto& n : nodes_) {
    n.agent.reset();
    n.membership.reset();
  }
}

void SimCluster::start(std::size_t i, const std::function<void(MembershipOptions&)>& edit) {
  Node& n = nodes_[i];
  if (n.membership) return;
  if (!n.host->up()) world_.restart(*n.host);
  MembershipOptions o = base_;
  o.node_id = id(i);
  o.seeds = seeds_;
  o.initial_incarnation = world_.now();  // the wall clock, as a broker does
  if (edit) edit(o);
  n.random = std::make_unique<SeededRandom>(world_.random().next() ^ (i * 0x9e3779b97f4a7c15ULL));
  n.membership = std::make_unique<Membership>(o, n.host->datagrams(), n.host->streams(), n.host->timers(),
                                              world_.clock(), *n.random, log_);
  n.membership->subscribe([this, i](const MembershipEvent& e) {
    if (e.kind == MembershipEvent::Kind::kDead) {
      ++deaths_;
      const std::size_t s = index_of(e.node_id);
      if (s < nodes_.size() && running(s)) ++false_deaths_;
    } else if (e.kind == MembershipEvent::Kind::kSuspect) {
      ++suspicions_;
    }
    if (observer_) observer_(i, e);
  });
  n.started = true;
  ++n.lives;
  n.membership->start();
  if (agent_options_) {
    n.local = std::make_unique<FakeLocal>(*this);
    n.views = std::make_unique<broker::ViewHolder>();
    n.agent = std::make_unique<broker::ClusterAgent>(*n.membership, n.host->timers(), world_.clock(), *n.local,
                                                     *n.views, *agent_options_, log_);
    n.agent->start();
  }
}

void SimCluster::crash(std::size_t i) {
  Node& n = nodes_[i];
  world_.crash(*n.host);
  n.agent.reset();
  n.membership.reset();
}

void SimCluster::pause(std::size_t i) { world_.pause(*nodes_[i].host); }
void SimCluster::resume(std::size_t i) { world_.resume(*nodes_[i].host); }

bool SimCluster::running(std::size_t i) const {
  const Node& n = nodes_[i];
  return n.membership != nullptr && n.host->up() && !n.host->paused();
}

std::size_t SimCluster::index_of(const std::string& node_id) const {
  if (node_id.size() < 2 || node_id[0] != 'n') return SIZE_MAX;
  return std::stoul(node_id.substr(1));
}

bool SimCluster::converged(bool normal) const {
  std::size_t running_count = 0;
  for (std::size_t i = 0; i < nodes_.size(); ++i) running_count += running(i) ? 1 : 0;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (!running(i)) continue;
    const Membership& m = *nodes_[i].membership;
    if (!m.ready()) return false;
    for (std::size_t j = 0; j < nodes_.size(); ++j) {
      if (!running(j)) continue;
      const auto* member = m.member(id(j));
      if (member == nullptr || member->liveness != Liveness::kAlive) return false;
      if (normal && member->state.lifecycle != broker::Lifecycle::kNormal) return false;
    }
  }
  return running_count > 0;
}

std::size_t SimCluster::holding(std::size_t subject, Liveness liveness) const {
  std::size_t count = 0;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (i == subject || !running(i)) continue;
    const auto* member = nodes_[i].membership->member(id(subject));
    if (member != nullptr && member->liveness == liveness) ++count;
  }
  return count;
}

std::size_t SimCluster::knowing(std::size_t subject) const {
  std::size_t count = 0;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (i == subject || !running(i)) continue;
    if (nodes_[i].membership->member(id(subject)) != nullptr) ++count;
  }
  return count;
}

}  // namespace alldata::sim
