// The membership protocol (broker/src/membership/), run for real on the simulated world of
// tests/sim: a clock that moves only when events run, a lossy network, crashes, pauses and
// partitions. Every test is deterministic (seeded) and bounded in simulated time.
#include "sim_cluster.h"

#include "membership/broadcast_queue.h"
#include "membership/codec.h"
#include "membership/suspicion.h"
#include "membership/timer_queue.h"

#include <gtest/gtest.h>

namespace alldata::sim {
namespace {

using broker::Lifecycle;
using broker::Liveness;
using broker::MemberState;
using Kind = MembershipEvent::Kind;

MembershipOptions base_options() { return simulated_broker_options(); }

class MembershipTest : public ::testing::Test {
 protected:
  void make(std::size_t n, std::vector<std::size_t> seeds = {0}, MembershipOptions o = base_options()) {
    cluster_ = std::make_unique<SimCluster>(world_, o, n, std::move(seeds));
    cluster_->on_event([this](std::size_t observer, const MembershipEvent& e) {
      events_.push_back({observer, e});
    });
  }
  void start_all() {
    for (std::size_t i = 0; i < cluster_->size(); ++i) cluster_->start(i);
  }
  bool run_for(std::uint64_t ms, const std::function<bool()>& done) {
    return world_.run_until(world_.now() + ms, done, 50);
  }
  bool converge(std::uint64_t ms = 60'000) {
    return run_for(ms, [&] { return cluster_->converged(); });
  }
  std::size_t count(Kind kind, std::size_t subject) const {
    std::size_t n = 0;
    for (const auto& [observer, e] : events_) n += e.kind == kind && e.node_id == SimCluster::id(subject) ? 1 : 0;
    return n;
  }

  World world_{42};
  std::unique_ptr<SimCluster> cluster_;
  std::vector<std::pair<std::size_t, MembershipEvent>> events_;
};

TEST_F(MembershipTest, ThreeBrokersFormOneClusterAndBecomeNormal) {
  make(3);
  start_all();
  ASSERT_TRUE(converge()) << cluster_->node(1)->status();
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(cluster_->node(i)->ready());
    EXPECT_EQ(cluster_->node(i)->status(), "ready");
    EXPECT_EQ(cluster_->node(i)->size(), 3u);
    EXPECT_EQ(cluster_->node(i)->state().lifecycle, Lifecycle::kNormal);
  }
  EXPECT_EQ(cluster_->false_deaths(), 0u);
}

TEST_F(MembershipTest, ACrashIsDeclaredDeadOnceAndARestartIsANewIncarnation) {
  make(5);
  start_all();
  ASSERT_TRUE(converge());
  const std::uint64_t before = cluster_->node(1)->member(SimCluster::id(4))->incarnation;
  cluster_->crash(4);
  ASSERT_TRUE(run_for(30'000, [&] { return cluster_->holding(4, Liveness::kDead) == 4; }));
  EXPECT_EQ(count(Kind::kDead, 4), 4u) << "one verdict per observer";
  EXPECT_EQ(cluster_->false_deaths(), 0u);

  cluster_->start(4);
  ASSERT_TRUE(converge());
  for (std::size_t i = 0; i < 4; ++i) {
    const auto* m = cluster_->node(i)->member(SimCluster::id(4));
    ASSERT_NE(m, nullptr);
    EXPECT_GT(m->incarnation, before);
    EXPECT_EQ(cluster_->node(i)->size(), 5u) << "the restarted broker is not a second member";
  }
  EXPECT_EQ(count(Kind::kDead, 4), 4u) << "no further verdicts";
}

TEST_F(MembershipTest, ASuspicionIsRefutedNotFatal) {
  MembershipOptions o = base_options();
  o.indirect_checks = 0;  // no help from others: one lost ping is a suspicion
  make(5, {0}, o);
  start_all();
  ASSERT_TRUE(converge());
  // n0 cannot reach n3 (one way): n0 suspects it, n3 hears of it from the others and
  // refutes, again and again, and nobody declares it dead.
  world_.block(SimCluster::address(0), SimCluster::address(3));
  events_.clear();
  run_for(60'000, [] { return false; });
  EXPECT_GT(count(Kind::kSuspect, 3), 0u);
  EXPECT_EQ(count(Kind::kDead, 3), 0u);
  EXPECT_EQ(cluster_->false_deaths(), 0u);
  EXPECT_EQ(cluster_->holding(3, Liveness::kDead), 0u);
}

TEST_F(MembershipTest, APauseLongerThanTheSuspicionIsOneVerdictAndRefutedOnResume) {
  make(5);
  start_all();
  ASSERT_TRUE(converge());
  events_.clear();
  cluster_->pause(2);
  ASSERT_TRUE(run_for(20'000, [&] { return cluster_->holding(2, Liveness::kDead) == 4; }));
  run_for(20'000 - 0, [] { return false; });
  cluster_->resume(2);
  ASSERT_TRUE(converge(30'000));
  EXPECT_EQ(count(Kind::kDead, 2), 4u) << "exactly one verdict per observer";
  EXPECT_EQ(count(Kind::kAlive, 2), 4u) << "refuted on resume";
  for (std::size_t s = 0; s < 5; ++s) {
    if (s != 2) EXPECT_EQ(count(Kind::kDead, s), 0u) << "the paused broker accused n" << s;
  }
  EXPECT_GE(cluster_->node(2)->stats().pauses, 1u);
}

TEST_F(MembershipTest, GroupsThatStartedApartMerge) {
  MembershipOptions o = base_options();
  o.seed_wait = std::chrono::seconds(5);
  make(8, {0, 4}, o);
  for (std::size_t a = 0; a < 4; ++a) {
    for (std::size_t b = 4; b < 8; ++b) {
      world_.block(SimCluster::address(a), SimCluster::address(b));
      world_.block(SimCluster::address(b), SimCluster::address(a));
    }
  }
  start_all();
  run_for(30'000, [] { return false; });
  EXPECT_EQ(cluster_->node(0)->size(), 4u);
  EXPECT_EQ(cluster_->node(5)->size(), 4u);
  EXPECT_TRUE(cluster_->node(0)->ready()) << cluster_->node(0)->status();
  world_.unblock_all();
  ASSERT_TRUE(converge(60'000));
  EXPECT_EQ(cluster_->node(1)->size(), 8u);
  EXPECT_EQ(cluster_->node(6)->size(), 8u);
}

TEST_F(MembershipTest, APartitionLongerThanReapAfterStillHealsIntoOneCluster) {
  MembershipOptions o = base_options();
  o.reap_after = std::chrono::seconds(60);
  make(8, {0, 4}, o);
  start_all();
  ASSERT_TRUE(converge());
  for (std::size_t a = 0; a < 4; ++a) {
    for (std::size_t b = 4; b < 8; ++b) {
      world_.block(SimCluster::address(a), SimCluster::address(b));
      world_.block(SimCluster::address(b), SimCluster::address(a));
    }
  }
  // Each side declares the other dead, then forgets it.
  ASSERT_TRUE(run_for(300'000, [&] {
    return cluster_->node(0)->size() == 4 && cluster_->node(7)->size() == 4;
  }));
  EXPECT_EQ(count(Kind::kReaped, 7), 4u);
  world_.unblock_all();
  ASSERT_TRUE(converge(120'000)) << cluster_->node(0)->status();
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(cluster_->node(i)->size(), 8u) << "n" << i;
  EXPECT_FALSE(cluster_->node(0)->tombstoned(SimCluster::id(7))) << "came back under a new incarnation";
}

TEST_F(MembershipTest, APartitionThatHealsLeavesOneCluster) {
  make(8, {0, 4});
  start_all();
  ASSERT_TRUE(converge());
  auto cut = [&] {
    for (std::size_t a = 0; a < 4; ++a) {
      for (std::size_t b = 4; b < 8; ++b) {
        world_.block(SimCluster::address(a), SimCluster::address(b));
        world_.block(SimCluster::address(b), SimCluster::address(a));
      }
    }
  };
  cut();
  // Each side declares the other dead.
  ASSERT_TRUE(run_for(60'000, [&] {
    return cluster_->holding(0, Liveness::kDead) == 4 && cluster_->holding(7, Liveness::kDead) == 4;
  }));
  run_for(60'000, [] { return false; });
  world_.unblock_all();
  const std::uint64_t healed = world_.now();
  ASSERT_TRUE(converge(60'000)) << cluster_->node(0)->status();
  EXPECT_LT(world_.now() - healed, 40'000u) << "merged by seed retries or reconnects";
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(cluster_->node(i)->size(), 8u);
}

TEST_F(MembershipTest, ABrokerWithoutAReachableSeedSaysSoAndJoinsWhenTheSeedComes) {
  make(3);
  cluster_->start(1);
  cluster_->start(2);
  run_for(20'000, [] { return false; });
  EXPECT_FALSE(cluster_->node(1)->ready());
  EXPECT_EQ(cluster_->node(1)->state().lifecycle, Lifecycle::kJoining);
  EXPECT_NE(cluster_->node(1)->status().find("no seed reachable"), std::string::npos) << cluster_->node(1)->status();
  EXPECT_NE(cluster_->node(1)->status().find(SimCluster::address(0)), std::string::npos);
  cluster_->start(0);
  ASSERT_TRUE(converge(60'000));
}

TEST_F(MembershipTest, ALeftBrokerIsReapedAndItsIdRefused) {
  MembershipOptions o = base_options();
  o.reap_after = std::chrono::seconds(60);
  make(4, {0}, o);
  start_all();
  ASSERT_TRUE(converge());
  cluster_->node(3)->leave();
  ASSERT_TRUE(run_for(10'000, [&] {
    for (std::size_t i = 0; i < 3; ++i) {
      const auto* m = cluster_->node(i)->member(SimCluster::id(3));
      if (m == nullptr || m->lifecycle() != Lifecycle::kLeft) return false;
    }
    return true;
  }));
  EXPECT_EQ(count(Kind::kLeft, 3), 3u);
  EXPECT_EQ(count(Kind::kDead, 3), 0u) << "leaving is not dying";
  cluster_->crash(3);
  ASSERT_TRUE(run_for(120'000, [&] { return cluster_->node(0)->member(SimCluster::id(3)) == nullptr; }));
  EXPECT_TRUE(cluster_->node(0)->tombstoned(SimCluster::id(3)));
  cluster_->start(3);  // the same id again
  run_for(20'000, [] { return false; });
  EXPECT_EQ(cluster_->node(0)->member(SimCluster::id(3)), nullptr);
  EXPECT_FALSE(cluster_->node(3)->ready());
  EXPECT_NE(cluster_->node(3)->status().find("may not rejoin"), std::string::npos) << cluster_->node(3)->status();
}

TEST_F(MembershipTest, ARemovedBrokerStopsTakingPart) {
  make(4);
  start_all();
  ASSERT_TRUE(converge());
  ASSERT_TRUE(cluster_->node(0)->remove(SimCluster::id(2)));
  EXPECT_FALSE(cluster_->node(0)->remove(SimCluster::id(0)));
  EXPECT_FALSE(cluster_->node(0)->remove("nobody"));
  ASSERT_TRUE(run_for(10'000, [&] {
    return cluster_->node(2)->status().rfind("removed by n0", 0) == 0 &&
           cluster_->node(1)->member(SimCluster::id(2))->lifecycle() == Lifecycle::kRemoved;
  }));
  EXPECT_FALSE(cluster_->node(2)->ready());
  EXPECT_FALSE(cluster_->node(2)->set_state(cluster_->node(2)->state()));
}

TEST_F(MembershipTest, ASeedThatIsThisBrokerUnderAnotherNameIsRecognised) {
  make(3);
  // n1 lists itself under a second name (as a host name would be): its push-pull to that
  // seed reaches itself, which must count as reaching a seed, not as a refusal.
  world_.alias("n1.example:7402", SimCluster::address(1));
  for (std::size_t i = 0; i < 3; ++i) {
    cluster_->start(i, [](MembershipOptions& o) { o.seeds.push_back("n1.example:7402"); });
  }
  ASSERT_TRUE(converge(8'000)) << "waited for seed-wait (10 s): " << cluster_->node(1)->status();
  EXPECT_EQ(cluster_->node(1)->status(), "ready");
}

TEST_F(MembershipTest, DifferentClusterSettingsAreRefused) {
  make(3);
  cluster_->start(0);
  cluster_->start(1);
  cluster_->start(2, [](MembershipOptions& o) { o.state.partitions = 32; });
  run_for(20'000, [] { return false; });
  EXPECT_EQ(cluster_->node(0)->member(SimCluster::id(2)), nullptr);
  EXPECT_NE(cluster_->node(0)->member(SimCluster::id(1)), nullptr);
  EXPECT_NE(cluster_->node(2)->status().find("partitions"), std::string::npos) << cluster_->node(2)->status();
  EXPECT_FALSE(cluster_->node(2)->ready());
}

TEST_F(MembershipTest, TheMemberTableIsBoundedAndSaysSo) {
  MembershipOptions o = base_options();
  o.max_members = 4;
  make(6, {0}, o);
  start_all();
  run_for(30'000, [] { return false; });
  EXPECT_EQ(cluster_->node(0)->size(), 4u);
}

TEST_F(MembershipTest, GarbageDatagramsAreDroppedAndCounted) {
  make(2);
  start_all();
  ASSERT_TRUE(converge());
  Host& rogue = world_.add_host("rogue:1");
  const std::string target = SimCluster::address(0);
  rogue.datagrams().send(target, "not eight bytes");
  rogue.datagrams().send(target, std::string(64, '\xff'));
  broker::Datagram other;
  other.cluster = "another";
  other.from = "x";
  other.from_address = "rogue:1";
  other.messages.push_back(broker::PingMsg{1, SimCluster::id(0)});
  rogue.datagrams().send(target, broker::encode(other));
  broker::Datagram clash = other;
  clash.cluster = "alldata";
  clash.from = SimCluster::id(0);
  rogue.datagrams().send(target, broker::encode(clash));
  run_for(1000, [] { return false; });
  const auto stats = cluster_->node(0)->stats();
  EXPECT_GE(stats.malformed_dropped, 3u);
  EXPECT_EQ(stats.foreign_dropped, 1u);
  EXPECT_TRUE(converge(1000)) << "the cluster is unharmed";
}

TEST_F(MembershipTest, EveryDatagramFitsTheBoundUnderAFlood) {
  make(40, {0, 1, 2});
  start_all();
  ASSERT_TRUE(converge(120'000));
  for (std::size_t i = 0; i < 40; ++i) {
    EXPECT_LE(cluster_->node(i)->stats().largest_datagram, 1400u);
  }
}

// ---- the parts -------------------------------------------------------------------------

TEST(TimerQueueTest, RunsInDeadlineOrderAndPushesBackAfterAPause) {
  broker::TimerQueue q(2000);
  std::vector<int> ran;
  q.at(100, [&] { ran.push_back(1); });
  const auto cancelled = q.at(150, [&] { ran.push_back(99); });
  q.at(100, [&] { ran.push_back(2); });
  q.at(200, [&] { ran.push_back(3); });
  q.cancel(cancelled);
  q.run_due(150);
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  // Called 10 s late: nothing runs, everything moves back by the overshoot.
  EXPECT_GT(q.run_due(10'200), 10'000u);
  EXPECT_EQ(ran.size(), 2u);
  EXPECT_GT(*q.next_deadline(), 10'200u);
  q.run_due(*q.next_deadline());
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
}

TEST(SuspicionTest, ConfirmationsShortenTheTimeoutToTheMinimum) {
  broker::Suspicion s("a", 3, 2000, 12'000, 0);
  EXPECT_EQ(s.deadline_ms(), 12'000u);
  EXPECT_TRUE(s.confirm("b"));
  EXPECT_FALSE(s.confirm("b"));
  const auto one = s.deadline_ms();
  EXPECT_LT(one, 12'000u);
  EXPECT_TRUE(s.confirm("c"));
  EXPECT_TRUE(s.confirm("d"));
  EXPECT_EQ(s.deadline_ms(), 2000u);
  EXPECT_FALSE(s.confirm("e"));
  EXPECT_EQ(broker::Suspicion("a", 0, 2000, 12'000, 5).deadline_ms(), 2005u);
}

TEST(BroadcastQueueTest, OneUpdatePerMemberFreshestFirstAndSentALimitedNumberOfTimes) {
  broker::BroadcastQueue q;
  q.push("a", broker::SuspectMsg{"a", 1, "x"});
  q.push("a", broker::DeadMsg{"a", 1, "x"});  // replaces the suspicion
  q.push("b", broker::SuspectMsg{"b", 1, "x"});
  EXPECT_EQ(q.size(), 2u);
  std::vector<broker::Message> out;
  q.take(1400, 2, out);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<broker::DeadMsg>(out[0]) || std::holds_alternative<broker::DeadMsg>(out[1]));
  out.clear();
  q.take(1400, 2, out);
  EXPECT_EQ(out.size(), 2u);
  EXPECT_TRUE(q.empty()) << "each sent twice, the limit";
  q.push("c", broker::SuspectMsg{"c", 1, "x"});
  out.clear();
  EXPECT_EQ(q.take(10, 4, out), 0u) << "nothing fits 10 bytes";
}

TEST(CodecTest, DatagramsRoundTripAndBadFieldsAreRefused) {
  broker::Datagram d;
  d.cluster = "alldata";
  d.from = "b1";
  d.from_address = "10.0.0.1:7402";
  d.from_incarnation = 77;
  broker::AliveMsg a{"b2", "10.0.0.2:7402", 9, {}};
  a.state.lifecycle = Lifecycle::kLeaving;
  a.state.watermark_ms = 123;
  a.state.watermark_held = true;
  d.messages = {broker::PingMsg{5, "b2"}, a, broker::SuspectMsg{"b3", 2, "b1"}};
  std::size_t expected = broker::header_bytes(d);
  for (const auto& m : d.messages) expected += broker::encoded_bytes(m);
  const std::string bytes = broker::encode(d);
  EXPECT_EQ(bytes.size(), expected) << "the size estimate is exact";
  auto back = broker::decode_datagram(bytes);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->from_incarnation, 77u);
  ASSERT_EQ(back->messages.size(), 3u);
  const auto& alive = std::get<broker::AliveMsg>(back->messages[1]);
  EXPECT_EQ(alive.state.lifecycle, Lifecycle::kLeaving);
  EXPECT_TRUE(alive.state.watermark_held);

  broker::Datagram bad = d;
  bad.from = std::string(300, 'x');
  EXPECT_FALSE(broker::decode_datagram(broker::encode(bad)));
  bad.from = "";
  EXPECT_FALSE(broker::decode_datagram(broker::encode(bad)));
  EXPECT_FALSE(broker::decode_datagram(std::string(16, 0)));
}

}  // namespace
}  // namespace alldata::sim
