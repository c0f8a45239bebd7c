// When and where hinted handoff (hinted_handoff.h) sends the hints held for one owner: its
// decisions without its I/O, on the monotonic time it is given, so they are tested on a
// manual clock. An owner that is alive (not suspect) gets its hints; one that left, was
// removed, or is no longer known to a complete view has them re-targeted to its
// partitions' current owners; anything else waits. A failed attempt backs off 1 s,
// doubling to 30 s; a success forgets the owner's back-off. Not thread-safe.
#pragma once

#include "membership/cluster_view.h"

#include <cstdint>
#include <map>
#include <string>

namespace alldata::broker {

enum class HintAction { kWait, kDeliver, kRetarget };

struct HintDecision {
  HintAction action = HintAction::kWait;
  std::string address;         // kDeliver: the owner's peer address
  bool first_failure = false;  // no failure since the last success: a failure is worth a warning
};

class HintSchedule {
 public:
  static constexpr std::uint64_t kFirstBackoffMs = 1000;
  static constexpr std::uint64_t kMaxBackoffMs = 30'000;

  // What to do at `now_ms` with the hints held for `target`, given `view` (may be null).
  HintDecision decide(const std::string& target, const ClusterView* view, std::uint64_t now_ms) const;
  // An attempt decided at `now_ms` ended; false = it stopped on a failure.
  void finished(const std::string& target, bool ok, std::uint64_t now_ms);

 private:
  struct Retry {
    std::uint64_t delay_ms = 0;
    std::uint64_t next_ms = 0;
  };
  std::map<std::string, Retry> retry_;
};

}  // namespace alldata::broker
