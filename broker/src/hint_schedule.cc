#include "hint_schedule.h"

#include <algorithm>

namespace alldata::broker {

HintDecision HintSchedule::decide(const std::string& target, const ClusterView* view, std::uint64_t now_ms) const {
  HintDecision d;
  const ViewMember* member = view ? view->member(target) : nullptr;
  // Gone: it left, was removed, or is no longer known to a complete view (reaped).
  const bool gone =
      (member != nullptr && (member->lifecycle == Lifecycle::kLeft || member->lifecycle == Lifecycle::kRemoved)) ||
      (member == nullptr && view != nullptr && view->ready() && view->members().size() > 1);
  if (!gone && (member == nullptr || !member->live() || member->liveness != Liveness::kAlive ||
                member->peer_address.empty())) {
    return d;
  }
  const auto it = retry_.find(target);
  if (it != retry_.end() && now_ms < it->second.next_ms) return d;
  d.first_failure = it == retry_.end() || it->second.delay_ms == 0;
  if (gone) {
    d.action = HintAction::kRetarget;
  } else {
    d.action = HintAction::kDeliver;
    d.address = member->peer_address;
  }
  return d;
}

void HintSchedule::finished(const std::string& target, bool ok, std::uint64_t now_ms) {
  if (ok) {
    retry_.erase(target);
    return;
  }
  Retry& r = retry_[target];
  r.delay_ms = std::min(std::max(r.delay_ms * 2, kFirstBackoffMs), kMaxBackoffMs);
  r.next_ms = now_ms + r.delay_ms;
}

}  // namespace alldata::broker
