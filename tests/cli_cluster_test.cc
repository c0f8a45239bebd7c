// The cluster as a user meets it: three `alldata-broker` processes on loopback (gossip,
// peer and client listeners on OS-chosen ports), `alldata produce` at QUORUM with sync on
// while one broker is killed with SIGKILL and later restarted. Every acknowledged event
// must end up on every replica once hints are delivered, and a scan through each broker
// must return every acknowledged event exactly once.
#include "process_support.h"
#include "test_support.h"

#include <set>
#include <sstream>

namespace alldata::testing {
namespace {

class CliClusterTest : public ::testing::Test {
 protected:
  std::vector<std::string> cluster_args(int i, const std::string& seed) {
    std::vector<std::string> a = {"--node-id", "n" + std::to_string(i), "--peer-listen", "127.0.0.1:0",
                                  "--gossip-listen", "127.0.0.1:0", "--gossip-interval", "100ms",
                                  "--sync", "on", "--replication-factor", "3", "--partitions", "8"};
    if (!seed.empty()) a.insert(a.end(), {"--seeds", seed});
    return a;
  }

  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      const std::string seed = i == 0 ? "" : brokers_[0]->ready_value("gossip");
      brokers_.push_back(std::make_unique<BrokerProcess>(dir_.path() / ("b" + std::to_string(i)),
                                                         cluster_args(i, seed)));
      ASSERT_TRUE(brokers_.back()->start()) << brokers_.back()->log();
    }
    ASSERT_TRUE(all_live(std::chrono::seconds(30))) << last_cluster_output_;
  }

  // True once every broker is ready and reports 3 alive, normal members (alldata cluster --json).
  bool all_live(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      bool ok = true;
      for (auto& b : brokers_) {
        auto c = run_tool({"cluster", "-b", b->address(), "--json"}, dir_.path());
        std::size_t live = 0;
        const std::string member = "\"liveness\":\"alive\",\"lifecycle\":\"normal\"";
        for (auto at = c.out.find(member); at != std::string::npos; at = c.out.find(member, at + 1)) ++live;
        ok = ok && c.status == 0 && live == 3 && c.out.find("\"membership\":\"ready\"") != std::string::npos;
        last_cluster_output_ = c.out + c.err;
      }
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  std::vector<std::string> scan_through(int i, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"scan", "-b", brokers_[i]->address(), "-s", "kill", "--format", "raw"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto s = run_tool(args, dir_.path());
    EXPECT_EQ(s.status, 0) << s.err;
    return lines_of(s.out);
  }

  TempDir dir_;
  std::vector<std::unique_ptr<BrokerProcess>> brokers_;
  std::string last_cluster_output_;
};

TEST_F(CliClusterTest, KillOneOfThreeDuringQuorumWritesLosesNothing) {
  constexpr int kLines = 50000;
  const auto input = dir_.path() / "in.txt";
  {
    std::ofstream f(input);
    for (int i = 1; i <= kLines; ++i) f << i << "\n";
  }
  const auto acks = dir_.path() / "acks.txt";
  const auto err = dir_.path() / "produce.err";
  const std::string bootstrap = brokers_[0]->address() + "," + brokers_[1]->address();
  const pid_t producer = spawn({env_or("ALLDATA_TOOL_BIN", "alldata"), "produce", "-b", bootstrap, "-s", "kill",
                                "--commit-level", "QUORUM", "--acks", acks.string(), "--delivery-timeout", "50s"},
                               input.string(), (dir_.path() / "produce.out").string(), err.string());
  ASSERT_GT(producer, 0);

  auto wait_acks = [&](std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (lines_of(read_file(acks)).size() < n && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  };
  wait_acks(2000);
  brokers_[2]->kill_hard();
  const auto acked_at_kill = lines_of(read_file(acks)).size();
  wait_acks(acked_at_kill + 5000);
  ASSERT_TRUE(brokers_[2]->start()) << brokers_[2]->log();

  auto status = wait_exit(producer, std::chrono::seconds(120));
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0) << read_file(err);
  EXPECT_LT(acked_at_kill, static_cast<std::size_t>(kLines)) << "the kill came after the last write";
  ASSERT_EQ(lines_of(read_file(acks)).size(), static_cast<std::size_t>(kLines)) << read_file(err);

  std::vector<std::string> expected;
  for (int i = 1; i <= kLines; ++i) expected.push_back(std::to_string(i));
  // Every broker's own copy (--replica) ends up with every acknowledged event exactly once,
  // in key order (= input order: the producer makes keys as it reads); the killed broker
  // catches up through hinted handoff.
  auto wait_for = [&](int i, const std::vector<std::string>& extra) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    std::vector<std::string> got;
    do {
      got = scan_through(i, extra);
      if (got == expected) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } while (std::chrono::steady_clock::now() < deadline);
    return got;
  };
  for (int i = 0; i < 3; ++i) {
    auto got = wait_for(i, {"--replica", "n" + std::to_string(i)});
    EXPECT_EQ(got.size(), expected.size()) << "replica n" << i;
    EXPECT_TRUE(got == expected) << "replica n" << i << ": events differ from the input";
  }
  // A scan through any broker (reading each partition from a live replica) returns every
  // acknowledged event exactly once, at either consistency.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(scan_through(i) == expected) << "scan through broker " << i;
    EXPECT_TRUE(scan_through(i, {"--consistency", "quorum"}) == expected) << "quorum scan through broker " << i;
  }
  // The killed broker's copies went through hinted handoff, not some other path.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((brokers_[0]->log() + brokers_[1]->log()).find("hinted events to n2") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE((brokers_[0]->log() + brokers_[1]->log()).find("hinted events to n2"), std::string::npos);
}

}  // namespace
}  // namespace alldata::testing
