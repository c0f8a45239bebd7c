// Membership as operators meet it: real `alldata-broker` processes on loopback. Brokers
// started in any order and with any delays form one cluster; a broker stopped with SIGSTOP
// is declared dead once by every other broker and refutes it when continued, without
// accusing anyone; a restarted broker is a new incarnation of the same member. Membership
// ports are reserved up front (seeds must be known before they start); everything else is
// chosen by the OS.
#include "process_support.h"
#include "test_support.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>

#include <algorithm>
#include <fstream>
#include <random>
#include <regex>

namespace alldata::testing {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Info about one member as broker `port` reports it.
struct Seen {
  bool present = false;
  wire::Liveness liveness = wire::Liveness::ALIVE;
  std::uint64_t incarnation = 0;
  std::size_t members = 0;
};

Seen seen_by(std::uint16_t port, const std::string& node_id) {
  RawConnection c(port);
  c.hello();
  auto r = c.metadata();
  Seen s;
  if (r.error() != ErrorCode::kOk) return s;
  for (auto m : r.get().getMetadata().getMembers()) {
    ++s.members;
    if (std::string_view(m.getNodeId().cStr()) != node_id) continue;
    s.present = true;
    s.liveness = m.getLiveness();
    s.incarnation = m.getIncarnation();
  }
  return s;
}

std::size_t count_matches(const std::string& text, const std::regex& re) {
  return static_cast<std::size_t>(std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator()));
}

class MembershipProcessTest : public ::testing::Test {
 protected:
  // Five brokers b0..b4 with reserved membership ports; b0, b1 and b2 are every broker's seeds.
  void prepare(int run) {
    brokers_.clear();
    ports_.clear();
    const auto dir = dir_.path() / ("run-" + std::to_string(run));
    std::filesystem::create_directories(dir);
    for (int i = 0; i < 5; ++i) ports_.push_back(free_membership_port());
    const std::string seeds = "127.0.0.1:" + std::to_string(ports_[0]) + ",127.0.0.1:" + std::to_string(ports_[1]) +
                              ",127.0.0.1:" + std::to_string(ports_[2]);
    for (int i = 0; i < 5; ++i) {
      brokers_.push_back(std::make_unique<BrokerProcess>(
          dir / ("b" + std::to_string(i)),
          std::vector<std::string>{"--node-id", "b" + std::to_string(i), "--peer-listen", "127.0.0.1:0",
                                   "--gossip-listen", "127.0.0.1:" + std::to_string(ports_[i]), "--seeds", seeds,
                                   "--gossip-interval", "100ms", "--partitions", "4", "--log-level", "info"}));
    }
  }

  // Every running broker is ready and reports all five alive and normal.
  bool one_cluster(std::chrono::seconds timeout) {
    return eventually(
        [&] {
          for (auto& b : brokers_) {
            if (b->address().empty() || normal_members(port_of(b->address())) != 5) return false;
          }
          return true;
        },
        timeout);
  }

  std::string logs() const {
    std::string all;
    for (const auto& b : brokers_) all += b->log() + "\n----\n";
    return all;
  }

  TempDir dir_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::unique_ptr<BrokerProcess>> brokers_;
};

TEST_F(MembershipProcessTest, FiveBrokersStartedInAnyOrderFormOneCluster) {
  std::mt19937 random(20261202);
  for (int run = 0; run < 20; ++run) {
    prepare(run);
    std::vector<int> order = {0, 1, 2, 3, 4};
    std::shuffle(order.begin(), order.end(), random);
    std::string started;
    for (int i : order) {
      std::this_thread::sleep_for(std::chrono::milliseconds(random() % 1500));  // the delay is the scenario
      ASSERT_TRUE(brokers_[i]->start()) << brokers_[i]->log();
      started += " b" + std::to_string(i);
    }
    ASSERT_TRUE(one_cluster(30s)) << "run " << run << ", started" << started << "\n" << logs();
  }
}

TEST_F(MembershipProcessTest, AStoppedBrokerIsDeclaredDeadOnceAndRefutesWhenContinued) {
  prepare(0);
  for (auto& b : brokers_) ASSERT_TRUE(b->start()) << b->log();
  ASSERT_TRUE(one_cluster(30s)) << logs();
  const std::uint16_t observer = port_of(brokers_[0]->address());
  const std::uint64_t before = seen_by(observer, "b4").incarnation;

  ASSERT_EQ(brokers_[4]->signal(SIGSTOP), 0);
  const auto stopped = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] {
    for (int i = 0; i < 4; ++i) {
      if (seen_by(port_of(brokers_[i]->address()), "b4").liveness != wire::Liveness::DEAD) return false;
    }
    return true;
  }, 20s)) << logs();
  // Stopped for 20 s in all: the scenario itself, not a wait for a condition.
  std::this_thread::sleep_until(stopped + 20s);
  ASSERT_EQ(brokers_[4]->signal(SIGCONT), 0);
  ASSERT_TRUE(one_cluster(30s)) << logs();

  const std::regex verdict_on_b4("membership: b4 is dead");
  const std::regex back("membership: b4 is alive again");
  const std::regex any_verdict("membership: b[0-3] is dead");
  for (int i = 0; i < 4; ++i) {
    const std::string log = brokers_[i]->log();
    EXPECT_EQ(count_matches(log, verdict_on_b4), 1u) << "broker b" << i << ":\n" << log;
    EXPECT_EQ(count_matches(log, back), 1u) << "broker b" << i << ":\n" << log;
    EXPECT_EQ(count_matches(log, any_verdict), 0u) << "broker b" << i << ":\n" << log;
    EXPECT_GT(seen_by(port_of(brokers_[i]->address()), "b4").incarnation, before);
  }
  const std::string woken = brokers_[4]->log();
  EXPECT_EQ(count_matches(woken, any_verdict), 0u) << "the stopped broker accused others:\n" << woken;
  EXPECT_GE(count_matches(woken, std::regex("refuting a suspicion")), 1u) << woken;
}

TEST_F(MembershipProcessTest, ARestartedBrokerIsANewIncarnationNotASecondMember) {
  prepare(0);
  for (auto& b : brokers_) ASSERT_TRUE(b->start()) << b->log();
  ASSERT_TRUE(one_cluster(30s)) << logs();
  const std::uint16_t observer = port_of(brokers_[0]->address());
  const Seen before = seen_by(observer, "b2");
  ASSERT_TRUE(before.present);

  brokers_[2]->kill_hard();
  ASSERT_TRUE(eventually([&] { return seen_by(observer, "b2").liveness == wire::Liveness::DEAD; }, 20s)) << logs();
  ASSERT_TRUE(brokers_[2]->start()) << brokers_[2]->log();
  ASSERT_TRUE(one_cluster(30s)) << logs();
  for (int i = 0; i < 5; ++i) {
    const Seen s = seen_by(port_of(brokers_[i]->address()), "b2");
    EXPECT_EQ(s.members, 5u) << "broker b" << i << " lists a second b2";
    EXPECT_GT(s.incarnation, before.incarnation) << "broker b" << i;
  }
  // It came back as the owner it was: normal from its stored lifecycle, not joining.
  EXPECT_NE(brokers_[2]->log().find("seeds, normal)"), std::string::npos) << brokers_[2]->log();
}

}  // namespace
}  // namespace alldata::testing
