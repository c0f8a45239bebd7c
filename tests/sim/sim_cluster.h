// N brokers' membership on a simulated World: node i runs the real Membership on host
// "n<i>:7402" with node id "n<i>", a generator seeded from the world, and incarnations from
// the simulated wall clock. Nodes start, crash, restart and pause on command; every event
// every node raises is counted, and verdicts about nodes that were in fact running are
// counted as false. Optionally every node also runs the broker glue (ClusterAgent) with a
// fake local state whose watermark hold a test sets. Used by membership_test.cc and by the
// simulator (membership_sim.cc).
#pragma once

#include "sim_world.h"

#include "membership/cluster_agent.h"
#include "membership/membership.h"

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace alldata::sim {

using broker::Membership;
using broker::MembershipEvent;
using broker::MembershipOptions;

// Options a simulated broker starts from: 16 partitions, RF 3, addresses, one zone.
MembershipOptions simulated_broker_options();

class SimCluster {
 public:
  // `base` is every node's options (node id, seeds and incarnation are set per node);
  // `seeds` are the indices whose addresses every node is given as seeds.
  SimCluster(World& world, MembershipOptions base, std::size_t n, std::vector<std::size_t> seeds,
             std::shared_ptr<spdlog::logger> logger = nullptr);
  ~SimCluster();

  std::size_t size() const noexcept { return nodes_.size(); }
  static std::string id(std::size_t i) {
    std::string s = "n";
    s += std::to_string(i);
    return s;
  }
  static std::string address(std::size_t i) { return id(i) + ":7402"; }

  // Starts node i (again, after a crash: a new incarnation). `edit` may change its options.
  void start(std::size_t i, const std::function<void(MembershipOptions&)>& edit = nullptr);
  void crash(std::size_t i);
  void pause(std::size_t i);
  void resume(std::size_t i);
  bool running(std::size_t i) const;  // started, not crashed, not paused
  Membership* node(std::size_t i) { return nodes_[i].membership.get(); }
  Host& host(std::size_t i) { return *nodes_[i].host; }

  // Every running node is ready and holds every running node alive; with `normal`, also
  // every one of them normal.
  bool converged(bool normal = true) const;
  // Running nodes that hold node `subject` in `liveness` (or, for kDead, also no more).
  std::size_t holding(std::size_t subject, broker::Liveness liveness) const;
  std::size_t knowing(std::size_t subject) const;  // running nodes that have it in their view

  // Death verdicts (kDead events) whose subject was running when they were reached.
  std::uint64_t false_deaths() const noexcept { return false_deaths_; }
  std::uint64_t deaths() const noexcept { return deaths_; }
  std::uint64_t suspicions() const noexcept { return suspicions_; }
  void reset_counts() { false_deaths_ = deaths_ = suspicions_ = 0; }
  // Called for every event of every node: observer index, event.
  void on_event(std::function<void(std::size_t, const MembershipEvent&)> fn) { observer_ = std::move(fn); }
  std::size_t index_of(const std::string& node_id) const;

  // Runs the broker glue on every node started from now on.
  void enable_agents(broker::AgentOptions options) { agent_options_ = options; }
  const broker::ViewHolder* views(std::size_t i) const { return nodes_[i].views.get(); }
  // Holds node i's watermark at `wall_ms` (as a pending hint of that time would); nullopt
  // releases it.
  void set_hold(std::size_t i, std::optional<std::uint64_t> wall_ms);
  // The simulated wall clock (ms since the epoch).
  std::uint64_t wall_ms() const { return world_.now() + kWallOffsetMs; }
  static constexpr std::uint64_t kWallOffsetMs = 1'700'000'000'000;

 private:
  class FakeLocal;
  struct Node {
    Node();
    ~Node();
    Node(Node&&) noexcept;
    Host* host = nullptr;
    std::unique_ptr<SeededRandom> random;
    std::unique_ptr<Membership> membership;
    std::unique_ptr<FakeLocal> local;
    std::unique_ptr<broker::ViewHolder> views;
    std::unique_ptr<broker::ClusterAgent> agent;
    bool started = false;
    std::size_t lives = 0;
  };
  World& world_;
  MembershipOptions base_;
  std::vector<std::string> seeds_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<Node> nodes_;
  std::function<void(std::size_t, const MembershipEvent&)> observer_;
  std::optional<broker::AgentOptions> agent_options_;
  std::uint64_t false_deaths_ = 0;
  std::uint64_t deaths_ = 0;
  std::uint64_t suspicions_ = 0;
};

}  // namespace alldata::sim
