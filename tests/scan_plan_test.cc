// The order a scan tries a partition's replicas in: live and known complete for the range
// first, then live ones that may lack events (the later that starts, the sooner), then dead
// ones; and whether it must merge because no live replica is known complete.
#include "scan_plan.h"

#include <gtest/gtest.h>

namespace alldata::client::detail {
namespace {

TEST(ScanPlanTest, CompleteLiveReplicasComeFirstInPreferenceOrder) {
  const ReplicaOrder o = order_replicas({{0, true, 0}, {1, true, 0}, {2, true, 0}}, 1000);
  EXPECT_EQ(o.candidates, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(o.live_complete, 3u);
  EXPECT_EQ(o.live, 3u);
}

TEST(ScanPlanTest, AReplicaOwedEventsInTheRangeIsReadAfterTheCompleteOnes) {
  // Node 0 may lack events from 500 on: the scan ends at 1000, so it goes last of the live.
  const ReplicaOrder o = order_replicas({{0, true, 500}, {1, true, 0}, {2, false, 0}}, 1000);
  EXPECT_EQ(o.candidates, (std::vector<int>{1, 0, 2}));
  EXPECT_EQ(o.live_complete, 1u);
  EXPECT_EQ(o.live, 2u);
  // A scan that ends before its incompleteness starts reads it as complete.
  const ReplicaOrder early = order_replicas({{0, true, 500}, {1, true, 0}}, 400);
  EXPECT_EQ(early.candidates, (std::vector<int>{0, 1}));
  EXPECT_EQ(early.live_complete, 2u);
}

TEST(ScanPlanTest, WithNoCompleteLiveReplicaTheLatestIncompletenessComesFirst) {
  const ReplicaOrder o = order_replicas({{0, true, 100}, {1, true, 700}, {2, true, 400}, {1, true, 700}}, 1000);
  EXPECT_EQ(o.candidates, (std::vector<int>{1, 2, 0}));  // node 1 once
  EXPECT_EQ(o.live_complete, 0u);
  EXPECT_EQ(o.live, 3u);
}

TEST(ScanPlanTest, AWildcardHostIsReachedThroughTheBootstrapHost) {
  EXPECT_EQ(reachable_address("0.0.0.0:7401", "10.1.2.3:9000"), "10.1.2.3:7401");
  EXPECT_EQ(reachable_address("10.0.0.9:7401", "10.1.2.3:9000"), "10.0.0.9:7401");
}

}  // namespace
}  // namespace alldata::client::detail
