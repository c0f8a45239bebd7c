// A join moves data, as operators meet it: three real brokers (RF 3) hold 20,000 events;
// two more are started with --seeds while 30,000 more are produced at QUORUM. A joining
// broker pulls the partitions it will own (and receives new writes for them) before it
// becomes normal, so scans through every broker, sampled during and after the join,
// return every acknowledged event exactly once; afterwards each event is on at least RF of
// the brokers' own copies. And a join while another broker is down.
#include "process_support.h"
#include "test_support.h"

#include <fstream>
#include <map>
#include <set>

namespace alldata::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kPartitions = 4;
const std::string kStream = "join";

class JoinProcessTest : public ::testing::Test {
 protected:
  std::unique_ptr<BrokerProcess> broker(int i) {
    const std::string gossip = "127.0.0.1:" + std::to_string(i == 0 ? seed_port_ : 0);
    return std::make_unique<BrokerProcess>(
        dir_.path() / ("b" + std::to_string(i)),
        std::vector<std::string>{"--node-id", "b" + std::to_string(i), "--peer-listen",
                                 "127.0.0.1:0", "--gossip-listen", gossip, "--seeds",
                                 "127.0.0.1:" + std::to_string(seed_port_), "--gossip-interval",
                                 "100ms", "--partitions", std::to_string(kPartitions),
                                 "--repair-interval", "0"});
  }

  // Every running broker but `skip` sees n normal, alive members.
  bool normal_everywhere(std::size_t n, int skip = -1) {
    return eventually(
        [&] {
          for (std::size_t i = 0; i < brokers_.size(); ++i) {
            if (static_cast<int>(i) == skip) continue;
            if (normal_members(port_of(brokers_[i]->address())) != static_cast<int>(n)) return false;
          }
          return true;
        },
        60s);
  }

  // Produces lines [from, to) at QUORUM through the first three brokers; returns the keys
  // acknowledged.
  std::set<Key> produce(int from, int to, const std::string& name) {
    const auto input = dir_.path() / (name + ".txt");
    {
      std::ofstream out(input);
      for (int i = from; i < to; ++i) out << "event " << i << "\n";
    }
    const auto acks = dir_.path() / (name + ".acks");
    auto r = run_tool({"produce", "-b", brokers_[0]->address() + "," + brokers_[1]->address(),
                       "-s", kStream, "--commit-level", "QUORUM", "--acks", acks.string()},
                      dir_.path(), input.string(), 300s);
    EXPECT_EQ(r.status, 0) << r.err;
    return acked_keys(acks);
  }

  // Checks that a default scan through every running broker returns `acked` exactly once.
  void scans_see_everything(const std::set<Key>& acked, const std::string& when, int skip = -1) {
    for (std::size_t i = 0; i < brokers_.size(); ++i) {
      if (static_cast<int>(i) == skip) continue;
      auto& b = brokers_[i];
      auto r = run_tool({"scan", "-b", b->address(), "-s", kStream, "--format", "jsonl"},
                        dir_.path(), "", 120s);
      ASSERT_EQ(r.status, 0) << when << ": " << r.err;
      const auto keys = scanned_keys(r.out);
      std::size_t missing = 0;
      std::size_t twice = 0;
      for (const auto& k : acked) {
        const auto n = keys.count(k.to_text());
        missing += n == 0 ? 1 : 0;
        twice += n > 1 ? 1 : 0;
      }
      EXPECT_EQ(missing, 0u) << when << ", scan through " << b->address() << ": " << missing
                             << " of " << acked.size() << " acknowledged events missing";
      EXPECT_EQ(twice, 0u) << when << ": " << twice << " events returned more than once";
    }
  }

  // Starts brokers 0..n-1, waits until all are normal, produces 20,000 events into `acked`.
  void start_with_events(int n, std::set<Key>& acked) {
    for (int i = 0; i < n; ++i) {
      brokers_.push_back(broker(i));
      ASSERT_TRUE(brokers_.back()->start()) << brokers_.back()->log();
    }
    ASSERT_TRUE(normal_everywhere(static_cast<std::size_t>(n)));
    acked = produce(0, 20000, "before");
    ASSERT_EQ(acked.size(), 20000u);
  }

  // How many of `acked` are on fewer than RF (3) of the brokers' own copies.
  std::size_t short_of_rf(const std::set<Key>& acked) {
    std::map<Key, int> copies;
    for (auto& b : brokers_) {
      for (const auto& k : keys_held(port_of(b->address()), kStream, kPartitions)) ++copies[k];
    }
    std::size_t n = 0;
    for (const auto& k : acked) n += copies[k] < 3 ? 1 : 0;
    return n;
  }

  TempDir dir_;
  std::uint16_t seed_port_ = free_membership_port();
  std::vector<std::unique_ptr<BrokerProcess>> brokers_;
};

TEST_F(JoinProcessTest, ScansMissNothingWhileTwoBrokersJoinUnderLoad) {
  std::set<Key> acked;
  ASSERT_NO_FATAL_FAILURE(start_with_events(3, acked));

  // Two brokers join while more events arrive.
  const auto more = dir_.path() / "during.txt";
  {
    std::ofstream out(more);
    for (int i = 20000; i < 50000; ++i) out << "event " << i << "\n";
  }
  const auto acks = dir_.path() / "during.acks";
  const pid_t producer = spawn({env_or("ALLDATA_TOOL_BIN", "alldata"), "produce", "-b",
                                brokers_[0]->address() + "," + brokers_[1]->address(), "-s",
                                kStream, "--commit-level", "QUORUM", "--acks", acks.string()},
                               more.string(), (dir_.path() / "during.out").string(),
                               (dir_.path() / "during.err").string());
  ASSERT_GT(producer, 0);
  for (int i = 3; i < 5; ++i) {
    brokers_.push_back(broker(i));
    ASSERT_TRUE(brokers_.back()->start()) << brokers_.back()->log();
  }
  // Sampled while the newcomers join.
  scans_see_everything(acked, "during the join");
  ASSERT_TRUE(wait_exit(producer, 300s).has_value());
  const auto during = acked_keys(acks);
  acked.insert(during.begin(), during.end());
  ASSERT_TRUE(normal_everywhere(5)) << brokers_[3]->log() << brokers_[4]->log();
  scans_see_everything(acked, "after the join");

  // Each acknowledged event is on at least RF (3) of the brokers' own copies.
  EXPECT_EQ(short_of_rf(acked), 0u) << "of " << acked.size();
  for (int i = 3; i < 5; ++i) {
    EXPECT_NE(brokers_[i]->log().find("joined with data"), std::string::npos) << brokers_[i]->log();
  }
}

// Two changes at once: a broker dies for a while (SIGKILL) and another joins meanwhile.
// The joiner pulls from the live owners (RF 3 of 4 leaves two per partition), scans miss
// nothing during and after, and once the dead one is back every event is on RF copies.
TEST_F(JoinProcessTest, AJoinWhileAnotherBrokerIsDownMissesNothing) {
  std::set<Key> acked;
  ASSERT_NO_FATAL_FAILURE(start_with_events(4, acked));
  brokers_[3]->kill_hard();
  brokers_.push_back(broker(4));
  ASSERT_TRUE(brokers_.back()->start()) << brokers_.back()->log();
  const auto during = produce(20000, 30000, "during");
  acked.insert(during.begin(), during.end());
  scans_see_everything(acked, "while b3 is down and b4 joins", 3);
  ASSERT_TRUE(normal_everywhere(4, 3)) << brokers_[4]->log();
  EXPECT_NE(brokers_[4]->log().find("joined with data"), std::string::npos) << brokers_[4]->log();
  scans_see_everything(acked, "after b4 joined, b3 still down", 3);

  ASSERT_TRUE(brokers_[3]->start()) << brokers_[3]->log();
  ASSERT_TRUE(normal_everywhere(5));
  scans_see_everything(acked, "after b3 came back");
  // Hints bring b3 what it missed; every event ends on at least RF copies.
  EXPECT_TRUE(eventually([&] { return short_of_rf(acked) == 0; }, 60s));
}

}  // namespace
}  // namespace alldata::testing
