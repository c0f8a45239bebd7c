// Half-done writes are repaired, as operators meet it: three real `alldata-broker`
// processes (sync on, RF 3), `alldata produce` at commit level ONE through broker b0, and
// b0 killed with SIGKILL in the middle, several times. An event b0 acknowledged may then
// live on b0 alone (its replicas were never written, and no hint exists: the coordinator
// died). Nothing acknowledged may be lost, and every acknowledged event ends on all three
// with no repair asked for: the restarted b0 knows it died (its lease) and has every owner
// repair the times it had in flight; an `alldata repair` afterwards finds nothing to do.
// ALLDATA_KILL_ROUNDS sets the rounds (default 3).
// And a broker that lost its data folder gets its copy back before it serves reads; and one
// replaced with --replace takes over a dead broker's id; and one
// whose disk filled up (a 16 MiB tmpfs, when the test may mount one) gets every event it
// missed once it has room again.
#include "process_support.h"
#include "test_support.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

namespace alldata::testing {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kPartitions = 4;
const std::string kStream = "kill";

int rounds() {
  const char* v = std::getenv("ALLDATA_KILL_ROUNDS");
  return v != nullptr ? std::atoi(v) : 3;
}

class RepairProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    before_start();
    if (IsSkipped()) return;
    seed_port_ = free_membership_port();
    for (int i = 0; i < 3; ++i) {
      const std::string gossip =
          "127.0.0.1:" + std::to_string(i == 0 ? seed_port_ : 0);
      brokers_.push_back(std::make_unique<BrokerProcess>(
          dir_.path() / ("b" + std::to_string(i)),
          std::vector<std::string>{"--node-id", "b" + std::to_string(i), "--peer-listen",
                                   "127.0.0.1:0", "--gossip-listen", gossip, "--seeds",
                                   "127.0.0.1:" + std::to_string(seed_port_), "--gossip-interval",
                                   "100ms", "--partitions", std::to_string(kPartitions),
                                   "--sync", "on", "--repair-interval", "0",
                                   "--replica-timeout", "1s"}));
      ASSERT_TRUE(brokers_.back()->start()) << brokers_.back()->log();
    }
    ASSERT_TRUE(one_cluster()) << logs();
  }

  // Runs before the brokers start (their folders are dir_ / "b<i>").
  virtual void before_start() {}

  bool one_cluster() {
    return eventually(
        [&] {
          for (auto& b : brokers_) {
            if (normal_members(port_of(b->address())) != 3) return false;
          }
          return true;
        },
        30s);
  }

  std::string logs() const {
    std::string all;
    for (const auto& b : brokers_) all += b->log() + "\n----\n";
    return all;
  }

  // How many brokers hold each acknowledged key.
  std::map<int, std::size_t> copies_histogram(const std::set<Key>& acked) {
    std::vector<std::set<Key>> held;
    for (auto& b : brokers_) held.push_back(keys_held(port_of(b->address()), kStream, kPartitions));
    std::map<int, std::size_t> histogram;
    for (const auto& k : acked) {
      int n = 0;
      for (const auto& h : held) n += h.count(k) ? 1 : 0;
      ++histogram[n];
    }
    return histogram;
  }

  // Hints every broker holds for others, as each reports itself (its own metadata).
  std::uint64_t hints_pending() {
    std::uint64_t total = 0;
    for (auto& b : brokers_) {
      RawConnection c(port_of(b->address()));
      c.hello();
      auto r = c.metadata();
      if (r.error() != ErrorCode::kOk) return ~std::uint64_t{0};
      auto m = r.get().getMetadata();
      for (auto member : m.getMembers()) {
        if (std::string_view(member.getNodeId().cStr()) == std::string_view(m.getNodeId().cStr())) {
          total += member.getPendingHints();
        }
      }
    }
    return total;
  }

  static std::string text(const std::map<int, std::size_t>& h) {
    std::string out;
    for (const auto& [copies, n] : h) {
      out += std::to_string(n) + " on " + std::to_string(copies) + " cop" +
             (copies == 1 ? "y" : "ies") + "; ";
    }
    return out;
  }

  TempDir dir_;
  std::uint16_t seed_port_ = 0;
  std::vector<std::unique_ptr<BrokerProcess>> brokers_;
};

TEST_F(RepairProcessTest, KilledCoordinatorsLeaveNoAcknowledgedEventShortOfCopiesAfterRepair) {
  const auto input = dir_.path() / "lines.txt";
  {
    std::ofstream out(input);
    for (int i = 0; i < 100000; ++i) out << "event " << i << "\n";
  }
  const std::string bootstrap = brokers_[0]->address() + "," + brokers_[1]->address() + "," +
                                brokers_[2]->address();
  std::set<Key> acked;
  for (int round = 0; round < rounds(); ++round) {
    const auto acks = dir_.path() / ("acks-" + std::to_string(round) + ".txt");
    const auto out = dir_.path() / ("produce-" + std::to_string(round) + ".out");
    const pid_t producer = spawn({env_or("ALLDATA_TOOL_BIN", "alldata"), "produce", "-b",
                                  bootstrap, "-s", kStream, "--commit-level", "ONE", "--acks",
                                  acks.string()},
                                 input.string(), out.string(), out.string() + ".err");
    ASSERT_GT(producer, 0);
    // Kill the coordinator once it has acknowledged a good part of the round.
    ASSERT_TRUE(eventually([&] { return read_file(acks).size() > 100000; }, 60s))
        << read_file(out.string() + ".err");
    brokers_[0]->kill_hard();
    // The producer fails over to b1 and b2 and ends (whatever it could not get
    // acknowledged is reported, not counted).
    ASSERT_TRUE(wait_exit(producer, 120s).has_value()) << "the producer did not end";
    ASSERT_TRUE(brokers_[0]->start()) << brokers_[0]->log();
    ASSERT_TRUE(one_cluster()) << logs();
    const auto round_keys = acked_keys(acks);
    acked.insert(round_keys.begin(), round_keys.end());
  }
  ASSERT_GT(acked.size(), 0u);

  // Hinted handoff settles what it can (the writes b0 missed while it was down). What it
  // cannot (writes b0 had in flight when it died) the restarted b0 knows it may have left
  // half done: its lease says it did not stop cleanly, so every owner repairs those times,
  // with background repair off.
  EXPECT_NE(brokers_[0]->log().find("did not stop cleanly"), std::string::npos) << brokers_[0]->log();
  ASSERT_TRUE(eventually([&] { return hints_pending() == 0; }, 120s))
      << "hints never settled: " << hints_pending() << " pending\n" << logs();
  const auto before = copies_histogram(acked);
  std::printf("once hints settled: %zu acknowledged events: %s\n", acked.size(), text(before).c_str());
  EXPECT_EQ(before.count(0), 0u) << "acknowledged events were lost: " << text(before);
  EXPECT_TRUE(eventually([&] { return copies_histogram(acked) == std::map<int, std::size_t>{{3, acked.size()}}; },
                         120s))
      << "the restarted coordinator's repair debts did not restore every copy: " << text(copies_histogram(acked));

  // And a repair run finds nothing left.
  for (auto& b : brokers_) {
    auto r = run_tool({"repair", "-b", b->address()}, dir_.path(), "", 300s);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    std::printf("%s", r.out.c_str());
    EXPECT_NE(r.out.find("received 0 events"), std::string::npos) << r.out;
  }
  const auto after = copies_histogram(acked);
  std::printf("after repair: %s\n", text(after).c_str());
  EXPECT_EQ(after.size(), 1u) << text(after);
  EXPECT_EQ(after.count(3), 1u) << text(after);
}

TEST_F(RepairProcessTest, ABrokerThatLostItsDiskGetsItsCopyBackBeforeItServesReads) {
  const auto input = dir_.path() / "lines.txt";
  {
    std::ofstream out(input);
    for (int i = 0; i < 50000; ++i) out << "line " << i << "\n";
  }
  auto produced = run_tool({"produce", "-b", brokers_[0]->address(), "-s", kStream,
                            "--commit-level", "ALL"},
                           dir_.path(), input.string());
  ASSERT_EQ(produced.status, 0) << produced.err;
  ASSERT_EQ(keys_held(port_of(brokers_[2]->address()), kStream, kPartitions).size(), 50000u);

  // b2 loses its disk and comes back under its node id with an empty folder: it is a new
  // broker to itself, so it joins, and pulls its partitions before it owns them again.
  brokers_[2]->kill_hard();
  std::filesystem::remove_all(dir_.path() / "b2");
  ASSERT_TRUE(brokers_[2]->start()) << brokers_[2]->log();
  // Meanwhile default scans read the other replicas.
  auto during = run_tool({"scan", "-b", brokers_[0]->address(), "-s", kStream}, dir_.path());
  EXPECT_EQ(std::count(during.out.begin(), during.out.end(), '\n'), 50000) << during.err;
  ASSERT_TRUE(one_cluster()) << logs();
  const auto b2_port = port_of(brokers_[2]->address());
  EXPECT_EQ(keys_held(b2_port, kStream, kPartitions).size(), 50000u);
  EXPECT_NE(brokers_[2]->log().find("joined with data: pulled 50000 events"), std::string::npos)
      << brokers_[2]->log();
  auto after = run_tool({"scan", "-b", brokers_[2]->address(), "-s", kStream}, dir_.path());
  EXPECT_EQ(std::count(after.out.begin(), after.out.end(), '\n'), 50000) << after.err;
  // Nothing is left for repair.
  auto r = run_tool({"repair", "-b", brokers_[2]->address()}, dir_.path(), "", 300s);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("received 0 events"), std::string::npos) << r.out;
}

// A broker lost for good (disk and all) is replaced by a new process that takes its node
// id: --replace refuses an id the cluster holds alive, an id it does not know and a folder
// that holds a store; for a dead one it pulls the partitions before it owns them.
TEST_F(RepairProcessTest, ReplaceTakesOverADeadBrokersIdAndRefusesMistakes) {
  const auto input = dir_.path() / "lines.txt";
  {
    std::ofstream out(input);
    for (int i = 0; i < 20000; ++i) out << "line " << i << "\n";
  }
  auto produced = run_tool({"produce", "-b", brokers_[0]->address(), "-s", kStream, "--commit-level", "ALL"},
                           dir_.path(), input.string());
  ASSERT_EQ(produced.status, 0) << produced.err;
  const std::string seed = "127.0.0.1:" + std::to_string(seed_port_);
  auto replacement = [&](const std::string& folder, const std::string& id) {
    return std::make_unique<BrokerProcess>(
        dir_.path() / folder,
        std::vector<std::string>{"--replace", id, "--peer-listen", "127.0.0.1:0", "--gossip-listen", "127.0.0.1:0",
                                 "--seeds", seed, "--gossip-interval", "100ms", "--partitions",
                                 std::to_string(kPartitions), "--repair-interval", "0", "--replica-timeout", "1s"});
  };
  auto alive = replacement("new", "b2");
  EXPECT_FALSE(alive->start());
  EXPECT_NE(alive->log().find("holds b2 alive"), std::string::npos) << alive->log();
  auto unknown = replacement("new", "b9");
  EXPECT_FALSE(unknown->start());
  EXPECT_NE(unknown->log().find("no seed knows a member b9"), std::string::npos) << unknown->log();
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "new" / "events")) << "a refused attempt touched the folder";

  brokers_[2]->kill_hard();  // and its disk is gone: it never returns
  ASSERT_TRUE(eventually(
      [&] {
        auto r = run_tool({"cluster", "--json", "-b", brokers_[0]->address()}, dir_.path());
        const auto at = r.out.find("\"node_id\":\"b2\"");
        return at != std::string::npos && r.out.find("\"liveness\":\"dead\"", at) < r.out.find('}', at);
      },
      30s));
  auto used = replacement("b1", "b2");  // b1's own folder holds a store
  EXPECT_FALSE(used->start());
  EXPECT_NE(used->log().find("holds a store"), std::string::npos) << used->log();

  brokers_[2] = replacement("new", "b2");
  ASSERT_TRUE(brokers_[2]->start()) << brokers_[2]->log();
  ASSERT_TRUE(one_cluster()) << logs();
  EXPECT_EQ(keys_held(port_of(brokers_[2]->address()), kStream, kPartitions).size(), 20000u);
  EXPECT_NE(brokers_[2]->log().find("joined with data: pulled 20000 events"), std::string::npos)
      << brokers_[2]->log();
}

// b2's folder is a 16 MiB tmpfs: it fills up while QUORUM writes go on through b0.
class FullDiskTest : public RepairProcessTest {
 protected:
  void before_start() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small filesystem for b2 (CI runs as root)";
    mount_ = dir_.path() / "b2";
    std::filesystem::create_directories(mount_);
    if (!sh("mount -t tmpfs -o size=16m alldata-full " + mount_.string())) {
      mount_.clear();
      GTEST_SKIP() << "cannot mount a tmpfs here (no CAP_SYS_ADMIN?)";
    }
  }
  void TearDown() override {
    brokers_.clear();
    if (!mount_.empty()) sh("umount -l " + mount_.string());
  }
  static bool sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }

  std::filesystem::path mount_;
};

TEST_F(FullDiskTest, ABrokerWhoseDiskFilledUpGetsEveryEventItMissedOnceItHasRoom) {
  const auto input = dir_.path() / "lines.txt";
  {
    std::ofstream out(input);
    for (int i = 0; i < 300000; ++i) out << std::string(90, 'x') << " " << i << "\n";  // ~29 MB
  }
  const auto acks = dir_.path() / "acks.txt";
  auto produced = run_tool({"produce", "-b", brokers_[0]->address(), "-s", kStream, "--commit-level", "QUORUM",
                            "--acks", acks.string()},
                           dir_.path(), input.string(), 300s);
  EXPECT_EQ(produced.status, 0) << produced.err;
  const auto acked = acked_keys(acks);
  ASSERT_GT(acked.size(), 0u);
  const bool full = brokers_[2]->log().find("disk full") != std::string::npos ||
                    brokers_[2]->log().find("No space left") != std::string::npos;
  EXPECT_TRUE(full) << "b2 never ran out of room: the test shows nothing\n" << brokers_[2]->log();
  EXPECT_TRUE(brokers_[2]->running()) << "b2 died of its full disk\n" << brokers_[2]->log();
  // QUORUM promised 2 copies: with b2 out of room (or stopped by it), b0 and b1 hold each.
  for (int i = 0; i < 2; ++i) {
    const auto held = keys_held(port_of(brokers_[i]->address()), kStream, kPartitions);
    std::size_t missing = 0;
    for (const auto& k : acked) missing += held.count(k) == 0 ? 1 : 0;
    EXPECT_EQ(missing, 0u) << "b" << i << " lacks events of " << acked.size();
  }

  // Still full: b2 stops cleanly and starts again (serving reads, refusing writes).
  const std::size_t b2_held = keys_held(port_of(brokers_[2]->address()), kStream, kPartitions).size();
  EXPECT_EQ(brokers_[2]->stop(SIGTERM), 0) << brokers_[2]->log();
  ASSERT_TRUE(brokers_[2]->start()) << "b2 does not start on its full disk\n" << brokers_[2]->log();
  EXPECT_EQ(keys_held(port_of(brokers_[2]->address()), kStream, kPartitions).size(), b2_held);
  EXPECT_EQ(brokers_[2]->log().find("Assertion"), std::string::npos) << brokers_[2]->log();

  // Healing: room again; b2 takes writes again without a restart.
  ASSERT_TRUE(sh("mount -o remount,size=512m " + mount_.string()));
  ASSERT_TRUE(one_cluster()) << logs();
  ASSERT_TRUE(eventually([&] { return hints_pending() == 0; }, 120s)) << logs();
  for (auto& b : brokers_) {
    auto r = run_tool({"repair", "-b", b->address()}, dir_.path(), "", 300s);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
  }
  const auto after = copies_histogram(acked);
  std::printf("after healing and repair: %s\n", text(after).c_str());
  EXPECT_EQ(after.size(), 1u) << text(after);
  EXPECT_EQ(after.count(3), 1u) << text(after);
}

}  // namespace
}  // namespace alldata::testing
