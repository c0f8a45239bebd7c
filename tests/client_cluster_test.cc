// The client Scanner against a real 3-broker cluster (in-process brokers, real RocksDB,
// TCP and UDP gossip on loopback, OS-chosen ports, RF 3): it reads each partition from its
// replicas whatever broker it was bootstrapped at, fails over when a replica goes away
// (before or during the scan), reads one named replica's own copy, and with quorum
// consistency merges two replicas so an event missing on one replica is still returned once.
#include "alldata/client/client.h"
#include "client_support.h"
#include "test_support.h"

#include <algorithm>
#include <ostream>
#include <set>
#include <thread>

namespace alldata {
// Readable keys in failure messages.
inline void PrintTo(const Key& k, std::ostream* os) { *os << k.to_text(); }
}  // namespace alldata

namespace alldata::testing {
namespace {

using client::ReadConsistency;
using client::ScanOptions;
using client::Scanner;

constexpr std::uint32_t kPartitions = 4;
constexpr int kEvents = 600;
const std::string kStream = "events";

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::vector<Key> keys_of(const std::vector<client::Event>& events) {
  std::vector<Key> out;
  for (const auto& e : events) out.push_back(e.key);
  return out;
}

class ClusterScanTest : public ::testing::Test {
 protected:
  broker::BrokerOptions options_for(int i, const std::string& seed) {
    return cluster_options(dir_.path(), i, seed, kPartitions);
  }

  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      brokers_.push_back(start_broker(options_for(i, i == 0 ? "" : brokers_[0]->gossip_address())));
      ASSERT_TRUE(brokers_.back());
    }
    ASSERT_TRUE(eventually([&] { return live_members(0) == 3 && live_members(1) == 3 && live_members(2) == 3; }))
        << "the brokers did not all see each other live";
  }

  int live_members(int i) {
    auto admin = client::Admin::connect(config({brokers_[i]->client_address()}));
    if (!admin) return 0;
    auto meta = (*admin)->metadata(false);
    if (!meta) return 0;
    if (meta->membership_status != "ready") return 0;
    int live = 0;
    for (const auto& m : meta->members) {
      live += m.liveness == client::Liveness::kAlive && m.lifecycle == client::Lifecycle::kNormal ? 1 : 0;
    }
    return live;
  }

  static client::ClientConfig config(std::vector<std::string> bootstrap) {
    client::ClientConfig c;
    c.bootstrap = std::move(bootstrap);
    c.request_timeout = std::chrono::seconds(5);
    c.retry_timeout = std::chrono::seconds(5);
    c.logger = test_logger();  // ALLDATA_TEST_LOG=1 shows the scanner's failovers
    return c;
  }

  std::string address(int i) const { return brokers_[i]->client_address(); }

  // Produces kEvents events with the client Producer (QUORUM) through broker 0, then waits
  // until every broker holds all of them (the third copy may trail the acknowledgement).
  void produce_everywhere() {
    client::ProducerConfig pc;
    pc.bootstrap = {address(0)};
    pc.commit_level = client::CommitLevel::kQuorum;
    pc.linger = std::chrono::milliseconds(1);
    pc.batch_bytes = 2000;  // many batches: every partition gets events
    auto producer = client::Producer::create(pc);
    ASSERT_TRUE(producer) << producer.error().to_string();
    for (int i = 0; i < kEvents; ++i) {
      auto k = (*producer)->send(kStream, "event-" + std::to_string(i));
      ASSERT_TRUE(k) << k.error().to_string();
      keys_.push_back(*k);
    }
    auto flushed = (*producer)->flush();
    ASSERT_TRUE(flushed) << flushed.error().to_string();
    ASSERT_TRUE((*producer)->close());
    std::sort(keys_.begin(), keys_.end());
    const std::set<Key> all(keys_.begin(), keys_.end());
    ASSERT_EQ(all.size(), static_cast<std::size_t>(kEvents));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(eventually([&] { return held_by(i) == all; })) << "broker " << i << " misses events";
    }
  }

  // Every key broker i holds in its own copy (raw protocol, not the code under test).
  std::set<Key> held_by(int i) { return keys_held(brokers_[i]->client_port(), kStream, kPartitions); }

  // Where each partition of the stream lives, as the cluster reports it.
  std::vector<std::vector<std::string>> replica_sets() {
    auto admin = client::Admin::connect(config({address(1)}));
    EXPECT_TRUE(admin) << admin.error().to_string();
    if (!admin) return {};
    auto meta = (*admin)->metadata(false, kStream);
    EXPECT_TRUE(meta) << meta.error().to_string();
    if (!meta) return {};
    return meta->replica_sets;
  }

  // Stores one event only on broker i, as replication would (a peer session on its peer
  // listener): the other replicas lack it.
  void store_only_on(int i, std::uint32_t partition, const Key& key, const std::string& payload) {
    RawConnection peer(port_of(brokers_[i]->peer_address()));
    ASSERT_EQ(peer.hello(true).error(), ErrorCode::kOk);
    auto r = peer.replicate(kStream, partition, {{key, payload}});
    ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
  }

  void stop(int i) {
    brokers_[i]->stop();
    brokers_[i].reset();
  }

  // Reads the whole scan, failing the test on an error.
  std::vector<client::Event> scan_all(const std::string& bootstrap, ScanOptions options) {
    return testing::scan_all(config({bootstrap}), std::move(options));
  }

  TempDir dir_;
  std::vector<std::unique_ptr<broker::Broker>> brokers_;
  std::vector<Key> keys_;  // what produce_everywhere() stored, in key order
};

TEST_F(ClusterScanTest, EveryReplicaSetNamesThreeLiveMembers) {
  auto sets = replica_sets();
  ASSERT_EQ(sets.size(), kPartitions);
  for (const auto& s : sets) {
    EXPECT_EQ(std::set<std::string>(s.begin(), s.end()),
              (std::set<std::string>{"node-0", "node-1", "node-2"}));
  }
}

TEST_F(ClusterScanTest, ScannerAtAnotherBrokerReturnsEveryEventOnceInKeyOrder) {
  produce_everywhere();
  auto scanner = Scanner::open(config({address(1)}), ScanOptions{.stream = kStream, .page_events = 32});
  ASSERT_TRUE(scanner) << scanner.error().to_string();
  EXPECT_EQ((*scanner)->broker().node_id, "node-1");
  std::vector<client::Event> events;
  for (;;) {
    auto page = (*scanner)->next_page(100);
    ASSERT_TRUE(page) << page.error().to_string();
    if (page->empty()) break;
    for (auto& e : *page) events.push_back(std::move(e));
  }
  EXPECT_EQ(keys_of(events), keys_);
  EXPECT_EQ((*scanner)->cursor(), keys_.back().successor());
  // Each event comes with its partition and payload.
  std::set<std::uint32_t> partitions;
  for (const auto& e : events) partitions.insert(e.partition);
  EXPECT_EQ(partitions.size(), kPartitions);

  // One partition alone, and a bounded range, from yet another broker.
  auto p0 = scan_all(address(2), ScanOptions{.stream = kStream, .partition = 0});
  for (const auto& e : p0) EXPECT_EQ(e.partition, 0u);
  auto range = scan_all(address(2), ScanOptions{.stream = kStream, .from = keys_[100], .to = keys_[200]});
  EXPECT_EQ(keys_of(range), std::vector<Key>(keys_.begin() + 100, keys_.begin() + 200));
}

TEST_F(ClusterScanTest, StoppedReplicaIsSkippedAndTheScanStillReturnsEverything) {
  produce_everywhere();
  stop(2);  // gossip may still call it live: the scanner meets a refused connection
  EXPECT_EQ(keys_of(scan_all(address(1), ScanOptions{.stream = kStream})), keys_);
  EXPECT_EQ(keys_of(scan_all(address(0), ScanOptions{.stream = kStream,
                                                     .consistency = ReadConsistency::kQuorum})),
            keys_);
}

TEST_F(ClusterScanTest, ReplicaStoppedMidScanIsReplacedFromThePartitionsCursor) {
  produce_everywhere();
  // The preferred replica of partition 0 is the one the scanner reads it from.
  auto sets = replica_sets();
  ASSERT_EQ(sets.size(), kPartitions);
  const std::string victim = sets[0][0];
  const int victim_index = victim.back() - '0';
  const int bootstrap = victim_index == 1 ? 2 : 1;

  auto scanner = Scanner::open(config({address(bootstrap)}),
                               ScanOptions{.stream = kStream, .page_events = 8});
  ASSERT_TRUE(scanner) << scanner.error().to_string();
  std::vector<client::Event> events;
  auto first = (*scanner)->next_page(50);
  ASSERT_TRUE(first) << first.error().to_string();
  ASSERT_EQ(first->size(), 50u);
  for (auto& e : *first) events.push_back(std::move(e));
  stop(victim_index);
  for (;;) {
    auto page = (*scanner)->next_page(100);
    ASSERT_TRUE(page) << page.error().to_string();
    if (page->empty()) break;
    for (auto& e : *page) events.push_back(std::move(e));
  }
  EXPECT_EQ(keys_of(events), keys_) << "events lost or repeated across the failover";
}

TEST_F(ClusterScanTest, ConflictingKeyIsRefusedAndEveryReplicaKeepsTheFirstContent) {
  const Key key = Key::make(now_ms(), 0, 0xabc);
  RawConnection c0(brokers_[0]->client_port());
  ASSERT_EQ(c0.hello().error(), ErrorCode::kOk);
  auto first = c0.produce(kStream, 2, {{"first", key}}, wire::CommitLevel::ALL);
  ASSERT_EQ(first.error(), ErrorCode::kOk) << first.message();

  // An identical retry through another broker succeeds and stores nothing new.
  RawConnection c1(brokers_[1]->client_port());
  ASSERT_EQ(c1.hello().error(), ErrorCode::kOk);
  auto retry = c1.produce(kStream, 2, {{"first", key}}, wire::CommitLevel::ALL);
  EXPECT_EQ(retry.error(), ErrorCode::kOk) << retry.message();

  // Other content under the same key: refused, naming the key, at any commit level.
  for (auto level : {wire::CommitLevel::ONE, wire::CommitLevel::QUORUM}) {
    RawConnection c2(brokers_[2]->client_port());
    ASSERT_EQ(c2.hello().error(), ErrorCode::kOk);
    auto changed = c2.produce(kStream, 2, {{"second", key}}, level);
    EXPECT_EQ(changed.error(), ErrorCode::kKeyConflict) << changed.message();
    EXPECT_NE(changed.message().find(key.to_text()), std::string::npos) << changed.message();
  }
  for (int i = 0; i < 3; ++i) {
    RawConnection c(brokers_[i]->client_port());
    c.hello();
    const auto held = c.scan_all(kStream, 2);
    ASSERT_EQ(held.size(), 1u) << "broker " << i;
    EXPECT_EQ(held[0].second, "first") << "broker " << i;
  }
}

TEST_F(ClusterScanTest, ReplicaOptionReadsOnlyThatBrokersOwnCopy) {
  produce_everywhere();
  const Key only_on_0 = Key::make(now_ms(), 0, 0xc0ffee);
  store_only_on(0, 1, only_on_0, "only on node-0");

  // Bootstrapped at node-1, reading node-0's copy: it has the extra event.
  auto on_0 = scan_all(address(1), ScanOptions{.stream = kStream, .replica = "node-0"});
  std::vector<Key> expected = keys_;
  expected.insert(std::lower_bound(expected.begin(), expected.end(), only_on_0), only_on_0);
  EXPECT_EQ(keys_of(on_0), expected);
  // node-2's copy has not.
  EXPECT_EQ(keys_of(scan_all(address(1), ScanOptions{.stream = kStream, .replica = "node-2"})), keys_);

  auto unknown = Scanner::open(config({address(1)}), ScanOptions{.stream = kStream, .replica = "node-9"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::kBadRequest);
  EXPECT_NE(unknown.error().message.find("node-9"), std::string::npos);
  auto both = Scanner::open(config({address(1)}), ScanOptions{.stream = kStream,
                                                             .consistency = ReadConsistency::kQuorum,
                                                             .replica = "node-0"});
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().code, ErrorCode::kBadRequest);

  // No failover: a stopped replica is an error naming the partition and the replica.
  stop(2);
  auto c = config({address(1)});
  c.retry_timeout = std::chrono::milliseconds(300);
  auto scanner = Scanner::open(c, ScanOptions{.stream = kStream, .replica = "node-2"});
  ASSERT_TRUE(scanner) << scanner.error().to_string();
  auto r = (*scanner)->next();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kConnectionFailed);
  EXPECT_NE(r.error().message.find("partition "), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("node-2"), std::string::npos) << r.error().message;
  // The scanner stays failed.
  EXPECT_FALSE((*scanner)->next());
}

TEST_F(ClusterScanTest, QuorumReadSeesAnEventOneReplicaLacksAndReturnsEachEventOnce) {
  produce_everywhere();
  auto sets = replica_sets();
  ASSERT_EQ(sets.size(), kPartitions);
  // An event on the 2nd and 3rd replicas of partition 2 only: the preferred replica lags.
  const std::uint32_t p = 2;
  const Key lagging = Key::make(now_ms(), 7, 0xbadcafe);
  store_only_on(sets[p][1].back() - '0', p, lagging, "on two of three");
  store_only_on(sets[p][2].back() - '0', p, lagging, "on two of three");
  std::vector<Key> expected = keys_;
  expected.insert(std::lower_bound(expected.begin(), expected.end(), lagging), lagging);

  // The preferred replica really lacks it (so a ONE read from it would miss it).
  EXPECT_EQ(keys_of(scan_all(address(0), ScanOptions{.stream = kStream, .replica = sets[p][0]})), keys_);

  for (int b = 0; b < 3; ++b) {
    auto events = scan_all(address(b), ScanOptions{.stream = kStream, .page_events = 16,
                                                   .consistency = ReadConsistency::kQuorum});
    EXPECT_EQ(keys_of(events), expected) << "quorum scan bootstrapped at broker " << b;
    for (const auto& e : events) {
      if (e.key == lagging) {
        EXPECT_EQ(e.payload, "on two of three");
        EXPECT_EQ(e.partition, p);
      }
    }
  }
}

TEST_F(ClusterScanTest, QuorumWithTwoReplicasDownIsAnErrorNamingThePartitionAndReplicas) {
  produce_everywhere();
  stop(0);
  stop(2);
  auto c = config({address(1)});
  c.retry_timeout = std::chrono::milliseconds(300);
  auto scanner = Scanner::open(c, ScanOptions{.stream = kStream, .consistency = ReadConsistency::kQuorum});
  ASSERT_TRUE(scanner) << scanner.error().to_string();
  auto r = (*scanner)->next_page(1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kConnectionFailed);
  EXPECT_NE(r.error().message.find("partition "), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("quorum"), std::string::npos) << r.error().message;
  EXPECT_TRUE(r.error().message.find("node-0") != std::string::npos ||
              r.error().message.find("node-2") != std::string::npos)
      << r.error().message;
  // With ONE, the last broker standing serves every partition.
  EXPECT_EQ(keys_of(scan_all(address(1), ScanOptions{.stream = kStream})), keys_);
}

}  // namespace
}  // namespace alldata::testing
