// Placement (rendezvous hashing with the original AllData zone/region policy) and the
// replicating coordinator (commit levels, failover to hints, errors), without a network:
// the coordinator writes through a fake ReplicaWriter whose per-node outcome and delay each
// test sets, on an io_context run with a deadline.
#include "alldata/broker/placement.h"
#include "alldata/broker/replicating_coordinator.h"

#include "alldata/protocol/partitioner.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <map>
#include <set>

namespace alldata::broker {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr auto kDeadline = 20s;

MemberInfo member(std::string id, std::string zone = "z1", std::string region = "r1",
                  bool live = true) {
  return MemberInfo{std::move(id), std::move(zone), std::move(region), live};
}

const MemberInfo& find(const std::vector<MemberInfo>& members, const std::string& id) {
  for (const auto& m : members) {
    if (m.node_id == id) return m;
  }
  throw std::runtime_error("no member " + id);
}

// Members sorted by descending rendezvous weight, computed independently of placement.cc.
std::vector<std::string> weight_order(std::string_view stream, std::uint32_t partition,
                                      const std::vector<MemberInfo>& members) {
  std::vector<std::string> ids;
  for (const auto& m : members) ids.push_back(m.node_id);
  std::sort(ids.begin(), ids.end(), [&](const std::string& a, const std::string& b) {
    return rendezvous_weight(stream, partition, a) > rendezvous_weight(stream, partition, b);
  });
  return ids;
}

// ---- placement -------------------------------------------------------------------------------

class PlacementTest : public ::testing::Test {
 protected:
  // The original's demo cluster: 3 regions x 2 zones, one broker each.
  static std::vector<MemberInfo> demo_cluster() {
    return {member("a", "z1", "r1"), member("b", "z2", "r1"), member("c", "z3", "r2"),
            member("d", "z4", "r2"), member("e", "z5", "r3"), member("f", "z6", "r3")};
  }
};

TEST_F(PlacementTest, RendezvousWeightHashesTheDocumentedBytes) {
  const std::string stream = "clicks";
  std::string bytes;
  bytes += std::string("\x00\x00\x00\x06", 4);  // u32 BE stream length
  bytes += stream;
  bytes += std::string("\x00\x00\x01\x02", 4);  // u32 BE partition 258
  bytes += "node-7";
  EXPECT_EQ(rendezvous_weight(stream, 258, "node-7"), protocol::hash64(bytes));
  EXPECT_NE(rendezvous_weight(stream, 258, "node-7"), rendezvous_weight(stream, 259, "node-7"));
}

TEST_F(PlacementTest, WithoutZonePolicyReplicaSetIsTheHighestWeights) {
  std::vector<MemberInfo> members;
  for (int i = 0; i < 7; ++i) members.push_back(member("n" + std::to_string(i)));
  PlacementPolicy policy{3, 0, 0};
  for (std::uint32_t p = 0; p < 32; ++p) {
    const auto list = preference_list("s", p, members, policy, "z1", "r1");
    EXPECT_EQ(list, weight_order("s", p, members)) << "partition " << p;
    EXPECT_EQ(replica_set("s", p, members, policy),
              std::vector<std::string>(list.begin(), list.begin() + 3));
  }
}

TEST_F(PlacementTest, OnlyTheHomeWhenReplicationFactorIsOne) {
  const auto members = demo_cluster();
  for (std::uint32_t p = 0; p < 16; ++p) {
    const auto set = replica_set("s", p, members, PlacementPolicy{1, 1, 1});
    ASSERT_EQ(set.size(), 1u);
    EXPECT_EQ(set[0], weight_order("s", p, members)[0]);
  }
}

TEST_F(PlacementTest, HomeThenOtherZoneThenOtherRegion) {
  const auto members = demo_cluster();
  for (std::uint32_t p = 0; p < 64; ++p) {
    const auto set = replica_set("events", p, members, PlacementPolicy{3, 1, 1});
    ASSERT_EQ(set.size(), 3u);
    const auto& home = find(members, set[0]);
    const auto& zone = find(members, set[1]);
    const auto& region = find(members, set[2]);
    EXPECT_EQ(home.node_id, weight_order("events", p, members)[0]);
    EXPECT_EQ(zone.region, home.region) << "partition " << p;
    EXPECT_NE(zone.zone, home.zone) << "partition " << p;
    EXPECT_NE(region.region, home.region) << "partition " << p;
  }
}

TEST_F(PlacementTest, OtherZoneAndRegionReplicasAreInDistinctZonesAndRegions) {
  const auto members = demo_cluster();  // r1..r3, each with two zones
  std::vector<MemberInfo> wide = members;
  wide.push_back(member("g", "z7", "r1"));  // r1 now has three zones
  for (std::uint32_t p = 0; p < 64; ++p) {
    const auto set = replica_set("s", p, wide, PlacementPolicy{5, 2, 2});
    ASSERT_EQ(set.size(), 5u);
    const auto& home = find(wide, set[0]);
    std::set<std::string> regions;
    for (const auto& id : set) regions.insert(find(wide, id).region);
    EXPECT_EQ(regions.size(), 3u) << "two other regions, each once; partition " << p;
    if (home.region == "r1") {
      std::set<std::string> zones;
      for (const auto& id : set) {
        if (find(wide, id).region == "r1") zones.insert(find(wide, id).zone);
      }
      EXPECT_EQ(zones.size(), 3u) << "home zone plus two distinct other zones";
    }
  }
}

TEST_F(PlacementTest, ReplicationFactorFourIsHomeZoneRegionAndLocalZone) {
  // Every zone has two brokers, so the fourth replica can be in the home's own zone.
  const std::vector<MemberInfo> members = {
      member("a1", "z1", "r1"), member("a2", "z1", "r1"), member("b1", "z2", "r1"),
      member("b2", "z2", "r1"), member("c1", "z3", "r2"), member("c2", "z3", "r2")};
  int homes_in_r1 = 0;
  for (std::uint32_t p = 0; p < 64; ++p) {
    const auto set = replica_set("s", p, members, PlacementPolicy{4, 1, 1});
    ASSERT_EQ(set.size(), 4u);
    const auto& home = find(members, set[0]);
    if (home.region == "r2") {
      // r2 has one zone: no zone peer, so the set is home, region, local zone, any.
      EXPECT_EQ(find(members, set[1]).region, "r1");
      EXPECT_EQ(find(members, set[2]).zone, "z3") << "partition " << p;
      EXPECT_EQ(find(members, set[3]).region, "r1");
      continue;
    }
    ++homes_in_r1;
    const auto& zone = find(members, set[1]);
    const auto& region = find(members, set[2]);
    const auto& local = find(members, set[3]);
    EXPECT_EQ(zone.region, home.region);
    EXPECT_NE(zone.zone, home.zone);
    EXPECT_NE(region.region, home.region);
    EXPECT_EQ(local.zone, home.zone) << "partition " << p;
    EXPECT_EQ(local.region, home.region) << "partition " << p;
  }
  EXPECT_GT(homes_in_r1, 0);
}

TEST_F(PlacementTest, NoZonePeersFallsBackToRegionsThenLocalZone) {
  // r1 has a single zone: a zone replica of an r1 home has to go to another region.
  const std::vector<MemberInfo> members = {member("a", "z1", "r1"), member("b", "z1", "r1"),
                                           member("c", "z1", "r1"), member("d", "z1", "r1"),
                                           member("e", "z9", "r2")};
  int homes_in_r1 = 0;
  for (std::uint32_t p = 0; p < 64; ++p) {
    const auto set = replica_set("s", p, members, PlacementPolicy{3, 1, 0});
    ASSERT_EQ(set.size(), 3u);
    if (find(members, set[0]).region != "r1") continue;
    ++homes_in_r1;
    EXPECT_EQ(set[1], "e") << "zone shortfall is taken from another region";
    EXPECT_EQ(find(members, set[2]).zone, "z1") << "the rest in the home's zone";
  }
  EXPECT_GT(homes_in_r1, 0);

  // No zone peers and no other region: everything in the local zone.
  const std::vector<MemberInfo> flat = {member("a"), member("b"), member("c")};
  EXPECT_EQ(replica_set("s", 3, flat, PlacementPolicy{3, 1, 1}).size(), 3u);
}

TEST_F(PlacementTest, NoRegionPeersFallsBackToZonesThenLocalZone) {
  // One region with three zones: the region replica has to go to another zone.
  const std::vector<MemberInfo> members = {member("a", "z1"), member("b", "z1"),
                                           member("c", "z1"), member("d", "z2"),
                                           member("e", "z3")};
  for (std::uint32_t p = 0; p < 64; ++p) {
    const auto set = replica_set("s", p, members, PlacementPolicy{3, 0, 1});
    ASSERT_EQ(set.size(), 3u);
    const auto& home = find(members, set[0]);
    EXPECT_NE(find(members, set[1]).zone, home.zone) << "region shortfall taken from a zone";
    if (home.zone == "z1") {
      EXPECT_EQ(find(members, set[2]).zone, "z1") << "the rest in the home's zone";
    }
  }
}

TEST_F(PlacementTest, EmptyLocalZoneFallsBackToAnyMember) {
  // Every broker is alone in its zone: the third replica can only be "any".
  const std::vector<MemberInfo> members = {member("a", "z1"), member("b", "z2"),
                                           member("c", "z3"), member("d", "z4")};
  for (std::uint32_t p = 0; p < 16; ++p) {
    const auto set = replica_set("s", p, members, PlacementPolicy{3, 1, 0});
    EXPECT_EQ(std::set<std::string>(set.begin(), set.end()).size(), 3u);
  }
}

TEST_F(PlacementTest, ReplicationFactorLargerThanClusterGivesEveryMember) {
  const std::vector<MemberInfo> members = {member("a"), member("b", "z2")};
  const auto list = preference_list("s", 0, members, PlacementPolicy{3, 1, 1}, "z1", "r1");
  EXPECT_EQ(std::set<std::string>(list.begin(), list.end()),
            (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(replica_set("s", 0, members, PlacementPolicy{3, 1, 1}).size(), 2u);
  EXPECT_TRUE(preference_list("s", 0, {}, PlacementPolicy{3, 0, 0}, "z1", "r1").empty());
}

TEST_F(PlacementTest, ReplicaSetDoesNotDependOnCoordinatorOrMemberOrder) {
  auto members = demo_cluster();
  const PlacementPolicy policy{3, 1, 1};
  for (std::uint32_t p = 0; p < 32; ++p) {
    const auto ref = preference_list("s", p, members, policy, "z1", "r1");
    for (const auto& coordinator : members) {
      auto shuffled = members;
      std::rotate(shuffled.begin(), shuffled.begin() + p % shuffled.size(), shuffled.end());
      std::reverse(shuffled.begin(), shuffled.end());
      const auto list =
          preference_list("s", p, shuffled, policy, coordinator.zone, coordinator.region);
      EXPECT_EQ(std::vector<std::string>(list.begin(), list.begin() + 3),
                std::vector<std::string>(ref.begin(), ref.begin() + 3));
      EXPECT_EQ(list.size(), members.size());
    }
  }
}

TEST_F(PlacementTest, LivenessDoesNotMoveReplicas) {
  auto members = demo_cluster();
  const auto before = replica_set("s", 5, members, PlacementPolicy{3, 1, 1});
  for (auto& m : members) m.live = (m.node_id != before[1]);
  EXPECT_EQ(replica_set("s", 5, members, PlacementPolicy{3, 1, 1}), before);
}

TEST_F(PlacementTest, FailoverOrderPrefersTheCoordinatorsZoneThenRegion) {
  const std::vector<MemberInfo> members = {
      member("a1", "z1", "r1"), member("a2", "z1", "r1"), member("a3", "z1", "r1"),
      member("b1", "z2", "r1"), member("b2", "z2", "r1"), member("c1", "z3", "r2"),
      member("c2", "z3", "r2"), member("c3", "z3", "r2")};
  for (std::uint32_t p = 0; p < 32; ++p) {
    const auto list = preference_list("s", p, members, PlacementPolicy{2, 0, 0}, "z3", "r2");
    ASSERT_EQ(list.size(), members.size());
    // After the replica set: z3 members, then r2 (none other), then the rest.
    int last_rank = 0;
    for (std::size_t i = 2; i < list.size(); ++i) {
      const int rank = find(members, list[i]).zone == "z3" ? 0 : 2;
      EXPECT_GE(rank, last_rank) << "partition " << p << " position " << i;
      last_rank = rank;
    }
  }
}

TEST_F(PlacementTest, PartitionsSpreadEvenlyOverMembers) {
  std::vector<MemberInfo> members;
  for (int i = 0; i < 10; ++i) members.push_back(member("broker-" + std::to_string(i)));
  std::map<std::string, int> homes;
  std::map<std::string, int> replicas;
  constexpr int kPartitions = 2000;
  for (int p = 0; p < kPartitions; ++p) {
    const auto set = replica_set("stream-" + std::to_string(p % 7), static_cast<std::uint32_t>(p),
                                 members, PlacementPolicy{3, 0, 0});
    ++homes[set[0]];
    for (const auto& id : set) ++replicas[id];
  }
  ASSERT_EQ(homes.size(), members.size());
  for (const auto& [id, n] : homes) {
    EXPECT_GT(n, kPartitions / 10 * 7 / 10) << id;  // within 30% of the mean
    EXPECT_LT(n, kPartitions / 10 * 13 / 10) << id;
  }
  for (const auto& [id, n] : replicas) {
    EXPECT_GT(n, kPartitions * 3 / 10 * 8 / 10) << id;
    EXPECT_LT(n, kPartitions * 3 / 10 * 12 / 10) << id;
  }
}

TEST_F(PlacementTest, RemovingAMemberMovesOnlyItsPartitions) {
  std::vector<MemberInfo> members;
  for (int i = 0; i < 9; ++i) {
    members.push_back(member("n" + std::to_string(i), "z" + std::to_string(i % 3),
                             i < 6 ? "r1" : "r2"));
  }
  for (const PlacementPolicy policy : {PlacementPolicy{3, 0, 0}, PlacementPolicy{3, 1, 1}}) {
    for (std::size_t gone = 0; gone < members.size(); ++gone) {
      auto fewer = members;
      fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(gone));
      const std::string& removed = members[gone].node_id;
      int moved = 0;
      for (std::uint32_t p = 0; p < 200; ++p) {
        const auto before = replica_set("s", p, members, policy);
        const auto after = replica_set("s", p, fewer, policy);
        const bool had = std::find(before.begin(), before.end(), removed) != before.end();
        if (!had) {
          EXPECT_EQ(after, before) << "partition " << p << " without " << removed;
        } else {
          ++moved;
          if (policy.other_zone_replicas == 0 && policy.other_region_replicas == 0 &&
              removed != before[0]) {
            // Same home, so the same zone preference: the survivors keep their replicas.
            for (const auto& id : before) {
              if (id != removed) {
                EXPECT_NE(std::find(after.begin(), after.end(), id), after.end());
              }
            }
          }
        }
      }
      EXPECT_GT(moved, 0);
    }
  }
}

// ---- coordinator -------------------------------------------------------------------------------

// A ReplicaWriter whose per-node outcome and delay the test sets. Delays are steady_timer
// waits on the io_context, never sleeps.
class FakeWriter final : public ReplicaWriter {
 public:
  struct Behaviour {
    std::chrono::milliseconds delay{0};
    bool fail = false;
  };
  struct Call {
    std::string node;
    std::optional<std::string> hint_for;
    std::string records;  // the batch as given
  };

  asio::awaitable<Status> write(const std::string& node_id, const storage::EventBatch& batch,
                                std::optional<std::string> hint_for) override {
    const Behaviour b = behaviour[node_id];
    started.push_back(Call{node_id, hint_for, batch.records()});
    if (b.delay.count() > 0) {
      asio::steady_timer t(co_await asio::this_coro::executor, b.delay);
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (b.fail) co_return Error(ErrorCode::kStorageError, "disk full on " + node_id);
    stored.push_back(Call{node_id, hint_for, batch.records()});
    co_return Status{};
  }

  std::map<std::string, Behaviour> behaviour;
  std::vector<Call> started;
  std::vector<Call> stored;
};

class ReplicatingCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    logger_ = std::make_shared<spdlog::logger>("coordinator-test",
                                               std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger_->set_level(spdlog::level::err);
  }

  // `n` brokers in one zone; the first is this node.
  void make_cluster(int n, PlacementPolicy policy = {3, 0, 0}) {
    std::vector<MemberInfo> members;
    for (int i = 0; i < n; ++i) members.push_back(member("b" + std::to_string(i)));
    members_ = members;
    membership_ = std::make_unique<StaticViewSource>(members, "b0", policy);
    ReplicationOptions o;
    o.policy = policy;
    o.replica_timeout = 200ms;
    o.logger = logger_;
    coordinator_ = std::make_unique<ReplicatingCoordinator>(*membership_, writer_, o);
    list_ = preference_list(kStream, kPartition, members_, policy, "z1", "r1");
  }

  static storage::EventBatch batch() {
    storage::EventBatch b(kStream, kPartition);
    b.add(Key::make(1'700'000'000'000, 0, 42), "first");
    b.add(Key::make(1'700'000'000'001, 0, 42), "second");
    return b;
  }

  struct Answer {
    Result<ProduceOutcome> result = Error(ErrorCode::kInternal, "no answer");
    std::size_t stored_at_answer = 0;  // writes stored when the answer came
    std::chrono::steady_clock::duration elapsed{};
  };

  // Runs one produce to its answer (not beyond).
  Answer produce(CommitLevel level, std::chrono::milliseconds timeout = 5s) {
    std::optional<Answer> out;
    const auto start = std::chrono::steady_clock::now();
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          Answer a;
          a.result = co_await coordinator_->produce(batch(), level, timeout);
          a.stored_at_answer = writer_.stored.size();
          a.elapsed = std::chrono::steady_clock::now() - start;
          out = std::move(a);
        },
        asio::detached);
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (!out && std::chrono::steady_clock::now() < deadline) io_.run_one_for(100ms);
    EXPECT_TRUE(out) << "no answer before the deadline";
    return out ? std::move(*out) : Answer{};
  }

  // Lets the writes that go on after the answer finish.
  void drain() {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (coordinator_->writes_in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(100ms);
    }
    EXPECT_EQ(coordinator_->writes_in_flight(), 0u);
  }

  std::vector<FakeWriter::Call> hints() const {
    std::vector<FakeWriter::Call> out;
    for (const auto& c : writer_.stored) {
      if (c.hint_for) out.push_back(c);
    }
    return out;
  }

  static constexpr std::string_view kStream = "orders";
  static constexpr std::uint32_t kPartition = 5;

  std::shared_ptr<spdlog::logger> logger_;
  std::vector<MemberInfo> members_;
  std::vector<std::string> list_;  // the preference list of (kStream, kPartition)
  FakeWriter writer_;
  std::unique_ptr<StaticViewSource> membership_;
  std::unique_ptr<ReplicatingCoordinator> coordinator_;
  asio::io_context io_;  // declared last: destroyed first, with any unfinished write
};

TEST_F(ReplicatingCoordinatorTest, OneAnswersAfterTheFirstAck) {
  make_cluster(3);
  writer_.behaviour[list_[0]].delay = 10ms;
  writer_.behaviour[list_[1]].delay = 3s;
  writer_.behaviour[list_[2]].delay = 3s;
  const Answer a = produce(CommitLevel::kOne);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  EXPECT_EQ(a.result->replicas, 1u);
  EXPECT_EQ(a.stored_at_answer, 1u);
  EXPECT_LT(a.elapsed, 2s);
}

TEST_F(ReplicatingCoordinatorTest, QuorumAnswersAfterTwoOfThree) {
  make_cluster(3);
  writer_.behaviour[list_[0]].delay = 10ms;
  writer_.behaviour[list_[1]].delay = 30ms;
  writer_.behaviour[list_[2]].delay = 150ms;  // within the replica timeout
  const Answer a = produce(CommitLevel::kQuorum);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  EXPECT_EQ(a.result->replicas, 2u);
  EXPECT_EQ(a.stored_at_answer, 2u);
  drain();
  EXPECT_EQ(writer_.stored.size(), 3u) << "the third write goes on after the answer";
  EXPECT_TRUE(hints().empty());
}

TEST_F(ReplicatingCoordinatorTest, UnsettledWritesHoldTheOldestInFlightTime) {
  make_cluster(3);
  EXPECT_FALSE(coordinator_->oldest_in_flight_ms());
  writer_.behaviour[list_[0]].delay = 10ms;
  writer_.behaviour[list_[1]].delay = 10ms;
  writer_.behaviour[list_[2]].delay = 150ms;  // answered at QUORUM before this one lands
  const Answer a = produce(CommitLevel::kQuorum);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  EXPECT_EQ(coordinator_->oldest_in_flight_ms(), std::optional<std::uint64_t>(1'700'000'000'000))
      << "the third copy is still on its way";
  drain();
  EXPECT_FALSE(coordinator_->oldest_in_flight_ms()) << "every copy settled";
}

TEST_F(ReplicatingCoordinatorTest, AllAnswersAfterThreeOfThree) {
  make_cluster(3);
  writer_.behaviour[list_[0]].delay = 10ms;
  writer_.behaviour[list_[1]].delay = 30ms;
  writer_.behaviour[list_[2]].delay = 100ms;
  const Answer a = produce(CommitLevel::kAll);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  EXPECT_EQ(a.result->replicas, 3u);
  EXPECT_EQ(a.stored_at_answer, 3u);
  EXPECT_GE(a.elapsed, 100ms);
}

TEST_F(ReplicatingCoordinatorTest, OnlyTheOwnerWhenReplicationFactorIsOne) {
  make_cluster(3, PlacementPolicy{1, 0, 0});
  const Answer a = produce(CommitLevel::kAll);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  drain();
  ASSERT_EQ(writer_.started.size(), 1u);
  EXPECT_EQ(writer_.started[0].node, list_[0]);
}

TEST_F(ReplicatingCoordinatorTest, SameKeysAndEventsOnEveryReplica) {
  make_cluster(3);
  ASSERT_TRUE(produce(CommitLevel::kAll).result);
  ASSERT_EQ(writer_.stored.size(), 3u);
  for (const auto& c : writer_.stored) EXPECT_EQ(c.records, batch().records());
}

TEST_F(ReplicatingCoordinatorTest, FailingReplicaIsReplacedByNextBrokerWithHint) {
  make_cluster(5);
  writer_.behaviour[list_[1]].fail = true;
  const Answer a = produce(CommitLevel::kQuorum);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  EXPECT_EQ(a.result->replicas, 2u);
  drain();
  const auto h = hints();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].node, list_[3]) << "the next broker in the preference order";
  EXPECT_EQ(h[0].hint_for, list_[1]) << "the hint names the intended owner";
  EXPECT_EQ(h[0].records, batch().records());
}

TEST_F(ReplicatingCoordinatorTest, HintsDoNotCountForAll) {
  make_cluster(5);
  writer_.behaviour[list_[2]].fail = true;
  const Answer a = produce(CommitLevel::kAll);
  ASSERT_FALSE(a.result);
  EXPECT_EQ(a.result.error().code, ErrorCode::kNotEnoughReplicas);
  EXPECT_NE(a.result.error().message.find("2 created"), std::string::npos)
      << a.result.error().message;
  EXPECT_NE(a.result.error().message.find("1 replica has NOT been created"), std::string::npos)
      << a.result.error().message;
  drain();
  ASSERT_EQ(hints().size(), 1u) << "the failed copy still lands as a hint";
  EXPECT_EQ(hints()[0].hint_for, list_[2]);
}

TEST_F(ReplicatingCoordinatorTest, FailedHintMovesOnToTheNextCandidate) {
  make_cluster(5);
  writer_.behaviour[list_[0]].fail = true;
  writer_.behaviour[list_[3]].fail = true;  // first fallback fails too
  ASSERT_TRUE(produce(CommitLevel::kQuorum).result);
  drain();
  const auto h = hints();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].node, list_[4]);
  EXPECT_EQ(h[0].hint_for, list_[0]);
}

TEST_F(ReplicatingCoordinatorTest, EachBrokerGetsTheBatchAtMostOnce) {
  make_cluster(5);
  writer_.behaviour[list_[0]].fail = true;
  writer_.behaviour[list_[1]].fail = true;
  const Answer a = produce(CommitLevel::kOne);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  drain();
  std::set<std::string> nodes;
  for (const auto& c : writer_.started) {
    EXPECT_TRUE(nodes.insert(c.node).second) << c.node << " was written twice";
  }
  EXPECT_EQ(hints().size(), 2u);
}

TEST_F(ReplicatingCoordinatorTest, TimingOutReplicaIsReplaced) {
  make_cluster(4);
  writer_.behaviour[list_[2]].delay = 5s;  // far beyond the 200 ms replica timeout
  const Answer a = produce(CommitLevel::kQuorum);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  EXPECT_LT(a.elapsed, 1s) << "QUORUM does not wait for the slow replica";
  // Run until the hint is stored (the slow write itself may go on).
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (hints().empty() && std::chrono::steady_clock::now() < deadline) io_.run_one_for(100ms);
  const auto h = hints();
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].node, list_[3]);
  EXPECT_EQ(h[0].hint_for, list_[2]);
}

TEST_F(ReplicatingCoordinatorTest, ErrorNamesCountsWhenReplicasRunOut) {
  make_cluster(3);  // no broker outside the replica set
  writer_.behaviour[list_[1]].fail = true;
  writer_.behaviour[list_[2]].fail = true;
  const Answer a = produce(CommitLevel::kQuorum);
  ASSERT_FALSE(a.result);
  EXPECT_EQ(a.result.error().code, ErrorCode::kNotEnoughReplicas);
  const std::string& m = a.result.error().message;
  EXPECT_NE(m.find("QUORUM needs 2 replicas"), std::string::npos) << m;
  EXPECT_NE(m.find("1 created"), std::string::npos) << m;
  EXPECT_NE(m.find("1 replica has NOT been created"), std::string::npos) << m;
  EXPECT_NE(m.find("disk full"), std::string::npos) << "names the failures: " << m;
}

TEST_F(ReplicatingCoordinatorTest, AnyIsSatisfiedByAHint) {
  make_cluster(4);
  for (int i = 0; i < 3; ++i) writer_.behaviour[list_[i]].fail = true;
  const Answer a = produce(CommitLevel::kAny);
  ASSERT_TRUE(a.result) << a.result.error().to_string();
  EXPECT_EQ(a.result->replicas, 0u) << "no replica, one hint";
  EXPECT_EQ(a.stored_at_answer, 1u);
  ASSERT_EQ(hints().size(), 1u);
  EXPECT_EQ(hints()[0].node, list_[3]);
}

TEST_F(ReplicatingCoordinatorTest, AnyFailsWhenNoBrokerStoresIt) {
  make_cluster(3);
  for (const auto& id : list_) writer_.behaviour[id].fail = true;
  const Answer a = produce(CommitLevel::kAny);
  ASSERT_FALSE(a.result);
  EXPECT_EQ(a.result.error().code, ErrorCode::kNotEnoughReplicas);
  EXPECT_NE(a.result.error().message.find("1 replica has NOT been created"), std::string::npos)
      << a.result.error().message;
}

TEST_F(ReplicatingCoordinatorTest, UpFrontFailureWhenTooFewLiveReplicas) {
  make_cluster(3);
  membership_->set_live(list_[1], false);
  membership_->set_live(list_[2], false);
  const Answer a = produce(CommitLevel::kQuorum);
  ASSERT_FALSE(a.result);
  EXPECT_EQ(a.result.error().code, ErrorCode::kNotEnoughReplicas);
  EXPECT_NE(a.result.error().message.find("0 created"), std::string::npos)
      << a.result.error().message;
  EXPECT_TRUE(writer_.started.empty()) << "nothing is written when the level cannot be met";
}

TEST_F(ReplicatingCoordinatorTest, UpFrontFailureWhenClusterIsSmallerThanTheLevel) {
  make_cluster(2);  // RF 3
  const Answer all = produce(CommitLevel::kAll);
  ASSERT_FALSE(all.result);
  EXPECT_EQ(all.result.error().code, ErrorCode::kNotEnoughReplicas);
  EXPECT_NE(all.result.error().message.find("3 replicas have NOT been created"),
            std::string::npos)
      << all.result.error().message;
  EXPECT_TRUE(writer_.started.empty());
  // QUORUM of RF 3 needs 2: both members suffice.
  const Answer quorum = produce(CommitLevel::kQuorum);
  ASSERT_TRUE(quorum.result) << quorum.result.error().to_string();
  EXPECT_EQ(quorum.result->replicas, 2u);
}

TEST_F(ReplicatingCoordinatorTest, DeadOwnerIsHintedWithoutBeingTried) {
  make_cluster(4);
  membership_->set_live(list_[1], false);
  ASSERT_TRUE(produce(CommitLevel::kQuorum).result);
  drain();
  for (const auto& c : writer_.started) EXPECT_NE(c.node, list_[1]);
  ASSERT_EQ(hints().size(), 1u);
  EXPECT_EQ(hints()[0].node, list_[3]);
  EXPECT_EQ(hints()[0].hint_for, list_[1]);
}

TEST_F(ReplicatingCoordinatorTest, CoordinatorHoldsTheHintWhenNoOtherBrokerIsLeft) {
  make_cluster(3);  // RF 3 on 3 brokers: no broker outside the replica set
  const std::string dead = list_[0] == "b0" ? list_[1] : list_[0];
  membership_->set_live(dead, false);
  ASSERT_TRUE(produce(CommitLevel::kQuorum).result);
  drain();
  ASSERT_EQ(hints().size(), 1u);
  EXPECT_EQ(hints()[0].node, "b0") << "the coordinator keeps the hint itself";
  EXPECT_EQ(hints()[0].hint_for, dead);
  EXPECT_EQ(coordinator_->copies_lost(), 0u);
}

TEST_F(ReplicatingCoordinatorTest, TimeoutWhenTheLevelIsNotMetInTime) {
  make_cluster(3);
  for (const auto& id : list_) writer_.behaviour[id].delay = 150ms;
  const Answer a = produce(CommitLevel::kOne, 50ms);
  ASSERT_FALSE(a.result);
  EXPECT_EQ(a.result.error().code, ErrorCode::kTimeout);
  EXPECT_LT(a.elapsed, 140ms);
  drain();
  EXPECT_EQ(writer_.stored.size(), 3u) << "the writes still land after the timeout";
}

}  // namespace
}  // namespace alldata::broker
