// The k-way merge behind a Scanner: each slot (one stream partition) delivers pages of
// events in key order; the merger hands out events in global key order, and says when it
// cannot decide the next event because an unfinished slot has nothing buffered (the
// scanner must fetch that slot's next page first). Not thread-safe. Internal.
#pragma once

#include "alldata/client/types.h"
#include "alldata/protocol/key.h"

#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <queue>
#include <utility>
#include <vector>

namespace alldata::client::detail {

class ScanMerger {
 public:
  explicit ScanMerger(std::size_t slots);

  // Appends a page for `slot`; `done` means the slot has nothing after these events.
  // Events of one slot must come in increasing key order across pages.
  void add(std::size_t slot, std::vector<Event> events, bool done);

  // True while some unfinished slot has no buffered event: pop() cannot decide.
  bool blocked() const noexcept { return starving_ > 0; }
  // True once every slot is done and drained.
  bool finished() const noexcept { return starving_ == 0 && heap_.empty(); }

  // The smallest buffered head, with its slot; nullopt when blocked() or finished().
  std::optional<std::pair<std::size_t, Event>> pop();

  std::size_t buffered(std::size_t slot) const noexcept { return slots_[slot].events.size(); }
  bool done(std::size_t slot) const noexcept { return slots_[slot].done; }

 private:
  struct Slot {
    std::deque<Event> events;
    bool done = false;
  };
  using Head = std::pair<Key, std::size_t>;

  std::vector<Slot> slots_;
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heap_;
  std::size_t starving_;  // slots with no buffered event and not done
};

}  // namespace alldata::client::detail
