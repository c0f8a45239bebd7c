// Timers for code that must run on a real event loop and in a simulation alike: callbacks
// due at a time in milliseconds, run in (deadline, order of arming) order when the owner
// calls run_due(now). The owner arms one real timer (or a simulated event) for
// next_deadline() and is told when that moves earlier, so the queue itself does no I/O.
//
// Pauses. If run_due() is called more than `pause_threshold` after the earliest deadline,
// the process did not run for a while (SIGSTOP, a VM freeze, CPU starvation): every
// pending timer is pushed back by the overshoot plus half the threshold, and none runs in
// that call, so a node never judges its peers by the
// time it was not listening to them (Lifeguard's lesson: a slow node must not accuse
// healthy ones). What arrived meanwhile is handled before the timers come due again.
//
// Single-threaded; not copyable.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace alldata::broker {

class TimerQueue {
 public:
  using Id = std::uint64_t;

  explicit TimerQueue(std::uint64_t pause_threshold_ms = UINT64_MAX) : pause_threshold_ms_(pause_threshold_ms) {}
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Runs `fn` once run_due() reaches `when_ms`. Returns an id for cancel() (never 0).
  Id at(std::uint64_t when_ms, std::function<void()> fn);
  // Cancels a pending timer; unknown or already run ids are ignored.
  void cancel(Id id);

  // Runs every timer due at `now_ms`, including those armed by the callbacks that are due
  // by then; or, after a pause (above), only pushes them back. Returns the push (0 if none).
  std::uint64_t run_due(std::uint64_t now_ms);

  std::optional<std::uint64_t> next_deadline() const;
  std::size_t size() const noexcept { return by_id_.size(); }
  std::uint64_t pauses() const noexcept { return pauses_; }

  // Called whenever next_deadline() becomes earlier than it was (a new earliest timer), so
  // the owner can re-arm its real timer. Called from inside at().
  void set_on_earlier(std::function<void(std::uint64_t deadline_ms)> fn) { on_earlier_ = std::move(fn); }

 private:
  std::uint64_t pause_threshold_ms_;
  std::uint64_t next_id_ = 1;
  std::uint64_t pauses_ = 0;
  std::set<std::pair<std::uint64_t, Id>> order_;  // (deadline, id)
  std::map<Id, std::pair<std::uint64_t, std::function<void()>>> by_id_;
  std::function<void(std::uint64_t)> on_earlier_;
};

}  // namespace alldata::broker
