// ClusterView's future placement: while a broker is joining or leaving, every view knows
// which partitions move to whom (so coordinators also write to the incoming owners); the
// table is reused while it does not change, and a joining broker that is not live is left
// out.
#include "alldata/broker/placement.h"
#include "membership/cluster_view.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace alldata::broker {
namespace {

constexpr std::uint32_t kPartitions = 16;

ViewMember member(const std::string& id, Lifecycle l, Liveness live = Liveness::kAlive) {
  ViewMember m;
  m.node_id = id;
  m.peer_address = "127.0.0.1:1";
  m.lifecycle = l;
  m.liveness = live;
  return m;
}

ClusterView::Inputs inputs(Liveness joiner = Liveness::kAlive) {
  ClusterView::Inputs in;
  in.members = {member("b0", Lifecycle::kNormal), member("b1", Lifecycle::kNormal),
                member("b2", Lifecycle::kNormal), member("b3", Lifecycle::kJoining, joiner)};
  in.members.front().self = true;
  in.policy.replication_factor = 3;
  in.partitions = kPartitions;
  return in;
}

TEST(ClusterViewTest, AJoiningBrokerIsNamedForThePartitionsItWillOwn) {
  const ClusterView view(inputs());
  std::vector<MemberInfo> future;
  for (const char* id : {"b0", "b1", "b2", "b3"}) future.push_back(MemberInfo{id, "", "", true});
  std::size_t owned = 0;
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto set = replica_set("s", p, future, view.placement().policy());
    const bool will_own = std::find(set.begin(), set.end(), "b3") != set.end();
    const auto joining = view.incoming_replicas("s", p);
    EXPECT_EQ(joining, will_own ? std::vector<std::string>{"b3"} : std::vector<std::string>{})
        << "partition " << p;
    owned += will_own ? 1 : 0;
  }
  EXPECT_GT(owned, 0u);
  EXPECT_LT(owned, kPartitions);
  // Today's owners do not include it.
  EXPECT_FALSE(view.placement().index_of("b3").has_value());
}

TEST(ClusterViewTest, TheFuturePlacementIsReusedWhileUnchangedAndAbsentWithoutJoiners) {
  const ClusterView first(inputs());
  ClusterView::Inputs again = inputs();
  again.previous = first.placement_ptr();
  again.previous_future = first.future_placement_ptr();
  const ClusterView second(std::move(again));
  ASSERT_NE(first.future_placement(), nullptr);
  EXPECT_EQ(second.future_placement(), first.future_placement());
  EXPECT_EQ(&second.placement(), &first.placement());

  ClusterView::Inputs none = inputs();
  none.members.pop_back();
  const ClusterView without(std::move(none));
  EXPECT_EQ(without.future_placement(), nullptr);
  EXPECT_TRUE(without.incoming_replicas("s", 0).empty());
}

TEST(ClusterViewTest, AJoiningBrokerThatIsDeadGetsNoWrites) {
  const ClusterView view(inputs(Liveness::kDead));
  EXPECT_EQ(view.future_placement(), nullptr);
  for (std::uint32_t p = 0; p < kPartitions; ++p) EXPECT_TRUE(view.incoming_replicas("s", p).empty());
}

TEST(ClusterViewTest, ALeavingBrokersPartitionsAreNamedForTheOwnersThatTakeThemOver) {
  ClusterView::Inputs in = inputs();
  in.members[3].lifecycle = Lifecycle::kNormal;
  in.members[2].lifecycle = Lifecycle::kLeaving;
  const ClusterView view(std::move(in));
  ASSERT_NE(view.future_placement(), nullptr);
  // b2 still owns its partitions until it has left.
  ASSERT_TRUE(view.placement().index_of("b2").has_value());
  EXPECT_FALSE(view.future_placement()->index_of("b2").has_value());
  std::vector<MemberInfo> now, after;
  for (const char* id : {"b0", "b1", "b2", "b3"}) now.push_back(MemberInfo{id, "", "", true});
  for (const char* id : {"b0", "b1", "b3"}) after.push_back(MemberInfo{id, "", "", true});
  std::size_t moved = 0;
  for (std::uint32_t p = 0; p < kPartitions; ++p) {
    const auto before_set = replica_set("s", p, now, view.placement().policy());
    const auto after_set = replica_set("s", p, after, view.placement().policy());
    std::vector<std::string> expected;
    for (const auto& id : after_set) {
      if (std::find(before_set.begin(), before_set.end(), id) == before_set.end()) expected.push_back(id);
    }
    EXPECT_EQ(view.incoming_replicas("s", p), expected) << "partition " << p;
    const bool b2_owned = std::find(before_set.begin(), before_set.end(), "b2") != before_set.end();
    EXPECT_EQ(!expected.empty(), b2_owned) << "only b2's partitions move; partition " << p;
    moved += expected.size();
  }
  EXPECT_GT(moved, 0u);
}

}  // namespace
}  // namespace alldata::broker
