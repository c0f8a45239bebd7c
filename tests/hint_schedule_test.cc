// Hinted handoff's decisions on a manual clock: which owners get their hints, which have
// them re-targeted, and how a failing owner backs off.
#include "hint_schedule.h"

#include <gtest/gtest.h>

namespace alldata::broker {
namespace {

ViewMember member(const std::string& id, Lifecycle l, Liveness live = Liveness::kAlive) {
  ViewMember m;
  m.node_id = id;
  m.peer_address = "127.0.0.1:" + std::to_string(7000 + id.back());
  m.lifecycle = l;
  m.liveness = live;
  return m;
}

ClusterView view(std::vector<ViewMember> others, bool ready = true) {
  ClusterView::Inputs in;
  in.policy.replication_factor = 3;
  in.ready = ready;
  in.members.push_back(member("b0", Lifecycle::kNormal));
  in.members.front().self = true;
  for (auto& m : others) in.members.push_back(std::move(m));
  return ClusterView(std::move(in));
}

TEST(HintScheduleTest, OnlyAnAliveOwnerGetsItsHintsAndAGoneOneHasThemRetargeted) {
  HintSchedule s;
  const ClusterView v = view({member("b1", Lifecycle::kNormal), member("b2", Lifecycle::kNormal, Liveness::kSuspect),
                              member("b3", Lifecycle::kNormal, Liveness::kDead), member("b4", Lifecycle::kLeft),
                              member("b5", Lifecycle::kRemoved, Liveness::kDead)});
  const HintDecision alive = s.decide("b1", &v, 0);
  EXPECT_EQ(alive.action, HintAction::kDeliver);
  EXPECT_EQ(alive.address, v.member("b1")->peer_address);
  EXPECT_TRUE(alive.first_failure);
  EXPECT_EQ(s.decide("b2", &v, 0).action, HintAction::kWait);  // suspect: it may be gone a moment
  EXPECT_EQ(s.decide("b3", &v, 0).action, HintAction::kWait);  // dead: its hints wait for it
  EXPECT_EQ(s.decide("b4", &v, 0).action, HintAction::kRetarget);
  EXPECT_EQ(s.decide("b5", &v, 0).action, HintAction::kRetarget);
  // Unknown to a complete view (reaped): re-targeted; to an incomplete one, or with no
  // view at all: it waits.
  EXPECT_EQ(s.decide("b9", &v, 0).action, HintAction::kRetarget);
  const ClusterView joining = view({member("b1", Lifecycle::kNormal)}, false);
  EXPECT_EQ(s.decide("b9", &joining, 0).action, HintAction::kWait);
  EXPECT_EQ(s.decide("b1", nullptr, 0).action, HintAction::kWait);
}

TEST(HintScheduleTest, AFailingOwnerBacksOffDoublingToThirtySecondsAndASuccessResets) {
  HintSchedule s;
  const ClusterView v = view({member("b1", Lifecycle::kNormal), member("b2", Lifecycle::kNormal)});
  std::uint64_t now = 10'000;
  std::uint64_t expected = 1000;
  for (int failure = 0; failure < 8; ++failure) {
    const HintDecision d = s.decide("b1", &v, now);
    ASSERT_EQ(d.action, HintAction::kDeliver) << "failure " << failure;
    EXPECT_EQ(d.first_failure, failure == 0) << "only the first failure is worth a warning";
    s.finished("b1", false, now);
    EXPECT_EQ(s.decide("b1", &v, now + expected - 1).action, HintAction::kWait) << failure;
    EXPECT_EQ(s.decide("b2", &v, now).action, HintAction::kDeliver) << "another owner is not held back";
    now += expected;
    expected = std::min<std::uint64_t>(expected * 2, HintSchedule::kMaxBackoffMs);
  }
  EXPECT_EQ(expected, HintSchedule::kMaxBackoffMs);
  s.finished("b1", true, now);
  const HintDecision again = s.decide("b1", &v, now);
  EXPECT_EQ(again.action, HintAction::kDeliver);
  EXPECT_TRUE(again.first_failure);
  s.finished("b1", false, now);
  EXPECT_EQ(s.decide("b1", &v, now + 999).action, HintAction::kWait);
  EXPECT_EQ(s.decide("b1", &v, now + 1000).action, HintAction::kDeliver) << "back to 1 s after a success";
}

}  // namespace
}  // namespace alldata::broker
