// The broker's side of membership, above the protocol: it turns the member table into
// ClusterView snapshots for the rest of the broker (rebuilt shortly after any change,
// placement shared while the owners stay the same), and publishes what the broker knows of
// itself (its completeness watermark, the hints it holds, its load) at a bounded rate, so
// that a thousand brokers do not flood each other with updates.
//
// The watermark is published as "held at W" only while something (a pending hint, a write
// still settling) holds it back, and otherwise as "W at publication, advancing with time":
// a broker holding nothing back publishes nothing. A hold is published `watermark_lead`
// before it binds, so readers learn of it before their extrapolation could pass it.
//
// Executor-only, like Membership; borrows everything it is given.
#pragma once

#include "membership/cluster_view.h"
#include "membership/membership.h"

#include <chrono>
#include <functional>
#include <map>
#include <optional>

namespace alldata::broker {

// Where this broker's pull (joining) or push (leaving) of partitions stands.
struct HandOver {
  std::uint64_t partitions_left = 0;
  std::uint64_t bytes_moved = 0;
};

// What the broker knows of itself, read on the membership's executor (must not block).
class LocalState {
 public:
  virtual ~LocalState() = default;
  virtual std::uint64_t wall_ms() = 0;                         // the system clock
  virtual std::optional<std::uint64_t> oldest_hint_ms() = 0;    // event time of the oldest hint
  virtual std::optional<std::uint64_t> oldest_in_flight_ms() = 0;  // of writes not settled
  virtual std::uint64_t pending_hints() = 0;
  virtual std::uint64_t load() = 0;                            // replica writes in flight
  virtual HandOver hand_over() { return {}; }
  // Event time of the oldest copy known to be stored nowhere, until repair restores it
  // (repair/repair_debts.h).
  virtual std::optional<std::uint64_t> oldest_debt_ms() { return std::nullopt; }
  // Members that may lack events from a time on: hints held for them, debts owed to them.
  virtual std::map<std::string, std::uint64_t> owed() { return {}; }
};

// `owed` as published: the oldest first, at most kMaxOwed entries and about
// kOwedBudgetBytes of ids; the rest folded into one entry (empty id: every other member)
// at their oldest time.
inline constexpr std::size_t kOwedBudgetBytes = 512;
std::vector<Owed> fold_owed(const std::map<std::string, std::uint64_t>& owed);
// True when `now` says some member may lack events that `before` did not say it lacks
// (a new entry, or an earlier time): worth publishing at once.
bool owes_more(const std::vector<Owed>& before, const std::vector<Owed>& now);

struct AgentOptions {
  PlacementPolicy policy;
  std::uint32_t partitions = 16;
  // A broker's own watermark trails its clock by this (max-key-skew + produce-timeout).
  std::chrono::milliseconds watermark_margin{90'000};
  std::chrono::milliseconds watermark_lead{10'000};
  std::chrono::milliseconds check_interval{1000};   // own state is looked at this often
  std::chrono::milliseconds min_republish{5000};    // a hold or a hint count moves this rarely
  std::chrono::milliseconds view_delay{100};        // changes are gathered this long
};

class ClusterAgent {
 public:
  ClusterAgent(Membership& membership, TimerQueue& timers, Clock& clock, LocalState& local, ViewHolder& views,
               AgentOptions options, std::shared_ptr<spdlog::logger> logger);
  ~ClusterAgent();
  ClusterAgent(const ClusterAgent&) = delete;
  ClusterAgent& operator=(const ClusterAgent&) = delete;

  // Publishes the first view and state; starts the periodic checks.
  void start();
  // Called (on the executor) when this broker's own lifecycle changes, e.g. to persist it.
  void on_lifecycle(std::function<void(Lifecycle)> fn) { on_lifecycle_ = std::move(fn); }

  std::uint64_t views_built() const noexcept { return views_built_; }
  std::uint64_t states_published() const noexcept { return states_published_; }

 private:
  void changed();
  void rebuild();
  void check_state();
  MemberState wanted_state(std::uint64_t now);

  Membership& membership_;
  TimerQueue& timers_;
  Clock& clock_;
  LocalState& local_;
  ViewHolder& views_;
  AgentOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<int> life_ = std::make_shared<int>(0);
  std::uint64_t subscription_ = 0;
  bool rebuild_armed_ = false;
  Lifecycle lifecycle_;
  std::function<void(Lifecycle)> on_lifecycle_;
  std::uint64_t last_publish_ms_ = 0;
  std::uint64_t views_built_ = 0;
  std::uint64_t states_published_ = 0;
};

}  // namespace alldata::broker
