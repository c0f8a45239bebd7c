// Decommission, as operators meet it: four real brokers (RF 3) hold 20,000 events; one is
// decommissioned with `alldata cluster decommission` while 30,000 more are produced at
// QUORUM. It pushes its partitions to the brokers that take them over, leaves and exits
// by itself; scans through the others, sampled during and after, return every
// acknowledged event exactly once, and each event ends on all three survivors' own
// copies. Background repair is off, so only the hand-over can have moved the data. A
// second test kills the leaving broker with SIGKILL mid-push and restarts it: it carries on.
#include "process_support.h"
#include "test_support.h"

#include <fstream>
#include <map>

namespace alldata::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kPartitions = 4;
const std::string kStream = "decom";

class DecommissionProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 4; ++i) {
      brokers_.push_back(broker(i));
      ASSERT_TRUE(brokers_.back()->start()) << brokers_.back()->log();
    }
    ASSERT_TRUE(normal_everywhere(4));
    // 32 partition keys, so that every partition holds events (sticky round robin may
    // leave one empty, and then its push takes no time to kill in the middle of).
    for (int k = 0; k < 32; ++k) {
      auto keys = produce(k * 625, (k + 1) * 625, "before-" + std::to_string(k), "key-" + std::to_string(k));
      acked_.insert(keys.begin(), keys.end());
    }
    ASSERT_EQ(acked_.size(), 20000u);
  }

  std::unique_ptr<BrokerProcess> broker(int i) {
    const std::string gossip = "127.0.0.1:" + std::to_string(i == 0 ? seed_port_ : 0);
    return std::make_unique<BrokerProcess>(
        dir_.path() / ("b" + std::to_string(i)),
        std::vector<std::string>{"--node-id", "b" + std::to_string(i), "--peer-listen", "127.0.0.1:0",
                                 "--gossip-listen", gossip, "--seeds",
                                 "127.0.0.1:" + std::to_string(seed_port_), "--gossip-interval", "100ms",
                                 "--partitions", std::to_string(kPartitions), "--repair-interval", "0",
                                 // A push of some seconds, so that a kill can land mid-push.
                                 "--repair-bytes-per-sec", "100000"});
  }

  // Every broker of the first `n` sees `n` normal members.
  bool normal_everywhere(std::size_t n) {
    return eventually(
        [&] {
          for (std::size_t i = 0; i < n; ++i) {
            if (normal_members(port_of(brokers_[i]->address())) != static_cast<int>(n)) return false;
          }
          return true;
        },
        60s);
  }

  std::filesystem::path lines(int from, int to, const std::string& name) {
    const auto input = dir_.path() / (name + ".txt");
    std::ofstream out(input);
    for (int i = from; i < to; ++i) out << "event " << i << "\n";
    return input;
  }

  // Lines [from, to) at QUORUM through b0 and b1 (with `partition_key`, if any); the keys
  // acknowledged.
  std::set<Key> produce(int from, int to, const std::string& name, const std::string& partition_key = "") {
    const auto input = lines(from, to, name);
    const auto acks = dir_.path() / (name + ".acks");
    std::vector<std::string> args = {"produce", "-b", brokers_[0]->address() + "," + brokers_[1]->address(),
                                     "-s", kStream, "--commit-level", "QUORUM", "--acks", acks.string()};
    if (!partition_key.empty()) args.insert(args.end(), {"--partition-key", partition_key});
    auto r = run_tool(args, dir_.path(), input.string(), 300s);
    EXPECT_EQ(r.status, 0) << r.err;
    return acked_keys(acks);
  }

  // The same in the background; returns its pid.
  pid_t produce_in_background(int from, int to, const std::string& name) {
    const auto input = lines(from, to, name);
    return spawn({env_or("ALLDATA_TOOL_BIN", "alldata"), "produce", "-b",
                  brokers_[0]->address() + "," + brokers_[1]->address(), "-s", kStream, "--commit-level",
                  "QUORUM", "--acks", (dir_.path() / (name + ".acks")).string()},
                 input.string(), (dir_.path() / (name + ".out")).string(),
                 (dir_.path() / (name + ".err")).string());
  }

  // A default scan through each of b0..b2 returns `acked_` exactly once.
  void scans_see_everything(const std::string& when) {
    for (int i = 0; i < 3; ++i) {
      auto r = run_tool({"scan", "-b", brokers_[i]->address(), "-s", kStream, "--format", "jsonl"}, dir_.path(),
                        "", 120s);
      ASSERT_EQ(r.status, 0) << when << ": " << r.err;
      const auto keys = scanned_keys(r.out);
      std::size_t missing = 0, twice = 0;
      for (const auto& k : acked_) {
        const auto n = keys.count(k.to_text());
        missing += n == 0 ? 1 : 0;
        twice += n > 1 ? 1 : 0;
      }
      EXPECT_EQ(missing, 0u) << when << ", scan through b" << i << ": " << missing << " of " << acked_.size()
                             << " acknowledged events missing";
      EXPECT_EQ(twice, 0u) << when << ": " << twice << " events returned more than once";
    }
  }

  // Acknowledged events not on all of b0..b2's own copies.
  std::size_t short_of_three() {
    std::map<Key, int> copies;
    for (int i = 0; i < 3; ++i) {
      for (const auto& k : keys_held(port_of(brokers_[i]->address()), kStream, kPartitions)) ++copies[k];
    }
    std::size_t n = 0;
    for (const auto& k : acked_) n += copies[k] < 3 ? 1 : 0;
    return n;
  }

  void finish_load(pid_t producer, const std::string& name) {
    ASSERT_TRUE(wait_exit(producer, 300s).has_value());
    const auto during = acked_keys(dir_.path() / (name + ".acks"));
    EXPECT_GT(during.size(), 0u) << read_file(dir_.path() / (name + ".err"));
    acked_.insert(during.begin(), during.end());
  }

  TempDir dir_;
  std::uint16_t seed_port_ = free_membership_port();
  std::vector<std::unique_ptr<BrokerProcess>> brokers_;
  std::set<Key> acked_;
};

TEST_F(DecommissionProcessTest, ABrokerDecommissionedUnderLoadHandsOverEverythingAndExits) {
  const pid_t producer = produce_in_background(20000, 50000, "during");
  ASSERT_GT(producer, 0);
  auto r = run_tool({"cluster", "decommission", "b3", "-b", brokers_[0]->address(), "--timeout", "240"},
                    dir_.path(), "", 300s);
  EXPECT_EQ(r.status, 0) << r.out << r.err << brokers_[3]->log();
  EXPECT_NE(r.out.find("b3 has left the cluster"), std::string::npos) << r.out;
  scans_see_everything("right after the departure");
  EXPECT_EQ(brokers_[3]->wait_exit_for(30s), std::optional<int>(0)) << brokers_[3]->log();
  finish_load(producer, "during");
  ASSERT_TRUE(normal_everywhere(3));
  scans_see_everything("after the departure");
  EXPECT_EQ(short_of_three(), 0u) << "of " << acked_.size();
  const std::string log = brokers_[3]->log();
  EXPECT_NE(log.find("leaving: pushed"), std::string::npos) << log;
  // Its node id may not come back.
  BrokerProcess again(dir_.path() / "b3", {"--node-id", "b3", "--peer-listen", "127.0.0.1:0", "--gossip-listen",
                                           "127.0.0.1:0", "--seeds", "127.0.0.1:" + std::to_string(seed_port_)});
  EXPECT_FALSE(again.start());
  EXPECT_NE(again.log().find("left the cluster"), std::string::npos) << again.log();
}

TEST_F(DecommissionProcessTest, ALeavingBrokerKilledMidPushCarriesOnAfterARestart) {
  auto r = run_tool({"cluster", "decommission", "b3", "-b", brokers_[3]->address(), "--no-wait"}, dir_.path(), "",
                    60s);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(eventually([&] { return brokers_[3]->log().find("leaving: pushing") != std::string::npos; }, 60s))
      << brokers_[3]->log();
  brokers_[3]->kill_hard();
  ASSERT_TRUE(brokers_[3]->start()) << brokers_[3]->log();
  EXPECT_EQ(brokers_[3]->wait_exit_for(240s), std::optional<int>(0)) << brokers_[3]->log();
  EXPECT_NE(brokers_[3]->log().find("was leaving the cluster when it stopped"), std::string::npos);
  ASSERT_TRUE(normal_everywhere(3));
  scans_see_everything("after the departure");
  EXPECT_EQ(short_of_three(), 0u) << "of " << acked_.size();
}

}  // namespace
}  // namespace alldata::testing
