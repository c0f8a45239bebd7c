#include "scan_merge.h"

namespace alldata::client::detail {

ScanMerger::ScanMerger(std::size_t slots) : slots_(slots), starving_(slots) {}

void ScanMerger::add(std::size_t slot, std::vector<Event> events, bool done) {
  Slot& s = slots_[slot];
  const bool was_starving = s.events.empty() && !s.done;
  const bool had_head = !s.events.empty();
  for (auto& e : events) s.events.push_back(std::move(e));
  s.done = s.done || done;
  if (!had_head && !s.events.empty()) heap_.emplace(s.events.front().key, slot);
  if (was_starving && (!s.events.empty() || s.done)) --starving_;
}

std::optional<std::pair<std::size_t, Event>> ScanMerger::pop() {
  if (starving_ > 0 || heap_.empty()) return std::nullopt;
  const std::size_t slot = heap_.top().second;
  heap_.pop();
  Slot& s = slots_[slot];
  std::pair<std::size_t, Event> out{slot, std::move(s.events.front())};
  s.events.pop_front();
  if (!s.events.empty()) {
    heap_.emplace(s.events.front().key, slot);
  } else if (!s.done) {
    ++starving_;
  }
  return out;
}

}  // namespace alldata::client::detail
