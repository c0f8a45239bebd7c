#include "membership/timer_queue.h"

#include <vector>

namespace alldata::broker {

TimerQueue::Id TimerQueue::at(std::uint64_t when_ms, std::function<void()> fn) {
  const Id id = next_id_++;
  const bool earlier = order_.empty() || when_ms < order_.begin()->first;
  order_.emplace(when_ms, id);
  by_id_.emplace(id, std::make_pair(when_ms, std::move(fn)));
  if (earlier && on_earlier_) on_earlier_(when_ms);
  return id;
}

void TimerQueue::cancel(Id id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return;
  order_.erase({it->second.first, id});
  by_id_.erase(it);
}

std::uint64_t TimerQueue::run_due(std::uint64_t now_ms) {
  std::uint64_t pause = 0;
  if (!order_.empty() && now_ms > order_.begin()->first &&
      now_ms - order_.begin()->first > pause_threshold_ms_) {
    // Push everything back by the overshoot and half the threshold: the earliest timer
    // then falls due a little after now, once what queued up on the sockets is handled.
    pause = now_ms - order_.begin()->first + pause_threshold_ms_ / 2;
    ++pauses_;
    std::set<std::pair<std::uint64_t, Id>> shifted;
    for (const auto& [when, id] : order_) {
      shifted.emplace(when + pause, id);
      by_id_[id].first = when + pause;
    }
    order_.swap(shifted);
    return pause;
  }
  while (!order_.empty() && order_.begin()->first <= now_ms) {
    const Id id = order_.begin()->second;
    order_.erase(order_.begin());
    auto node = by_id_.extract(id);
    node.mapped().second();
  }
  return pause;
}

std::optional<std::uint64_t> TimerQueue::next_deadline() const {
  if (order_.empty()) return std::nullopt;
  return order_.begin()->first;
}

}  // namespace alldata::broker
