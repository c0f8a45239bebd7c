// Three real brokers (in-process, real RocksDB, real TCP and UDP on loopback, OS-chosen
// ports) form a cluster through gossip: any broker coordinates a write, every event lands
// on its replicas, a stopped broker does not stop QUORUM writes, and its hints are
// delivered when it returns.
#include "test_support.h"

#include <map>
#include <set>
#include <thread>

namespace alldata::testing {
namespace {

constexpr std::uint32_t kPartitions = 4;

class ClusterTest : public ::testing::Test {
 protected:
  broker::BrokerOptions options_for(int i, const std::string& seed) {
    auto o = cluster_options(dir_.path(), i, seed, kPartitions);
    // A short acceptance window, so the watermark trails the clock by seconds, not minutes.
    o.max_key_skew = std::chrono::seconds(2);
    o.produce_timeout = std::chrono::seconds(3);
    return o;
  }

  std::uint64_t watermark(int i) {
    RawConnection c(brokers_[i]->client_port());
    c.hello();
    return c.metadata().get().getMetadata().getWatermarkMs();
  }

  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      options_.push_back(options_for(i, i == 0 ? "" : brokers_[0]->gossip_address()));
      brokers_.push_back(start_broker(options_.back()));
      ASSERT_TRUE(brokers_.back());
    }
    ASSERT_TRUE(eventually([&] { return live_members(0) == 3 && live_members(1) == 3 && live_members(2) == 3; }))
        << "the brokers did not all see each other live";
  }

  int live_members(int i) { return brokers_[i] ? normal_members(brokers_[i]->client_port()) : 0; }

  // Produces `n` events through broker i with QUORUM, in batches over every partition.
  std::vector<Key> produce(int i, int n, const std::string& prefix) {
    RawConnection c(brokers_[i]->client_port());
    c.hello();
    std::vector<Key> keys;
    for (int b = 0; b < n; b += 100) {
      std::vector<TestEvent> events;
      for (int j = b; j < std::min(n, b + 100); ++j) events.push_back({prefix + std::to_string(j), {}});
      capnp::MallocMessageBuilder mb;
      auto req = mb.initRoot<wire::Request>();
      req.setCorrelationId(b + 1);
      auto p = req.initProduce();
      p.setStream("events");
      p.setPartition(static_cast<std::uint32_t>(b / 100) % kPartitions);
      p.setCommitLevel(wire::CommitLevel::QUORUM);
      auto list = p.initEvents(static_cast<unsigned>(events.size()));
      for (unsigned k = 0; k < events.size(); ++k) list[k].setPayload(protocol::data(events[k].payload));
      auto r = c.call(mb);
      EXPECT_EQ(r.error(), ErrorCode::kOk) << r.message();
      if (r.error() != ErrorCode::kOk) return keys;
      EXPECT_GE(r.get().getProduce().getReplicas(), 2u);
      for (auto k : keys_of(r)) keys.push_back(k);
    }
    return keys;
  }

  // Every key broker i holds in its own copy of the stream.
  std::set<Key> held_by(int i) { return keys_held(brokers_[i]->client_port(), "events", kPartitions); }

  TempDir dir_;
  std::vector<broker::BrokerOptions> options_;
  std::vector<std::unique_ptr<broker::Broker>> brokers_;
};

TEST_F(ClusterTest, AnyBrokerCoordinatesAndEveryReplicaGetsEveryEvent) {
  std::set<Key> all;
  for (int i = 0; i < 3; ++i) {
    for (auto k : produce(i, 600, "via-" + std::to_string(i) + "-")) all.insert(k);
  }
  ASSERT_EQ(all.size(), 1800u);
  // RF 3 on 3 brokers: every broker holds every event (the third copy may trail the ack).
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(eventually([&] { return held_by(i) == all; })) << "broker " << i << " misses events";
  }
}

TEST_F(ClusterTest, EveryBrokerReportsTheSameReplicaSets) {
  std::vector<std::vector<std::vector<std::string>>> views;
  for (int i = 0; i < 3; ++i) {
    RawConnection c(brokers_[i]->client_port());
    c.hello();
    auto r = c.metadata("events");
    ASSERT_EQ(r.error(), ErrorCode::kOk);
    auto meta = r.get().getMetadata();
    EXPECT_EQ(meta.getReplicationFactor(), 3u);
    ASSERT_EQ(meta.getMembers().size(), 3u);
    EXPECT_EQ(std::string(meta.getMembers()[0].getNodeId().cStr()), "node-" + std::to_string(i))
        << "the answering broker comes first";
    std::vector<std::vector<std::string>> sets;
    for (auto set : meta.getReplicaSets()) {
      EXPECT_EQ(set.getPartition(), sets.size());
      std::vector<std::string> ids;
      for (auto id : set.getNodeIds()) ids.emplace_back(id.cStr());
      EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 3u);
      sets.push_back(ids);
    }
    EXPECT_EQ(sets.size(), kPartitions);
    views.push_back(sets);
  }
  EXPECT_EQ(views[0], views[1]);
  EXPECT_EQ(views[0], views[2]);
}

TEST_F(ClusterTest, StoppedBrokerDoesNotStopQuorumWritesAndGetsItsHintsBack) {
  std::set<Key> all;
  for (auto k : produce(0, 400, "before-")) all.insert(k);

  // Broker 2 goes away; QUORUM writes go on with the two others plus hints for it.
  auto stopped_options = options_[2];
  stopped_options.client_listen = brokers_[2]->client_address();
  stopped_options.peer_listen = brokers_[2]->peer_address();
  stopped_options.gossip_listen = brokers_[2]->gossip_address();
  brokers_[2]->stop();
  brokers_[2].reset();
  const auto during = produce(0, 1000, "during-");
  for (auto k : during) all.insert(k);
  for (auto k : produce(1, 1000, "during-b-")) all.insert(k);
  ASSERT_EQ(all.size(), 2400u);
  EXPECT_EQ(held_by(0), all);
  EXPECT_EQ(held_by(1), all);
  // Hints for broker 2 are pending: the cluster does not claim those times complete, however
  // long it waits, while it moves on past them once they are delivered.
  const std::uint64_t first_hinted = during.front().time_ms();
  std::this_thread::sleep_for(std::chrono::seconds(6));  // longer than skew + produce timeout
  EXPECT_GT(watermark(0), 0u);
  EXPECT_LE(watermark(0), first_hinted);

  // It comes back on the same addresses with its data; hinted handoff fills the gap.
  brokers_[2] = start_broker(stopped_options);
  ASSERT_TRUE(brokers_[2]);
  EXPECT_TRUE(eventually([&] { return held_by(2) == all; })) << "hints were not delivered";
  EXPECT_TRUE(eventually([&] { return watermark(0) > first_hinted && watermark(2) > first_hinted; }))
      << "the watermark did not move past the delivered hints";
}

}  // namespace
}  // namespace alldata::testing
