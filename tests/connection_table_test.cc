// The broker's connection slots on a manual clock: silent sockets evict only each other,
// sessions past the limit take the place of the idlest idle one (clients before peers), and
// busy or recently used sessions are never evicted.
#include "connection_table.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace alldata::broker {
namespace {

class ConnectionTableTest : public ::testing::Test {
 protected:
  // Admits a connection named `name` whose close is recorded in closed_.
  std::shared_ptr<ConnectionTable::Entry> admit(ConnectionTable& t, const std::string& name,
                                                std::uint64_t now_ms) {
    return t.admit([this, name] { closed_.push_back(name); }, now_ms);
  }
  std::vector<std::string> closed_;
};

TEST_F(ConnectionTableTest, ASilentFloodEvictsOnlyTheOldestPendingConnections) {
  ConnectionTable t({.max_pending = 3, .max_sessions = 2, .evict_idle_after_ms = 10'000});
  auto healthy = admit(t, "healthy", 0);
  ASSERT_TRUE(t.promote(healthy, false, 1));
  std::vector<std::shared_ptr<ConnectionTable::Entry>> silent;
  for (int i = 0; i < 5; ++i) silent.push_back(admit(t, "silent-" + std::to_string(i), 10 + i));
  EXPECT_EQ(closed_, (std::vector<std::string>{"silent-0", "silent-1"}));
  EXPECT_EQ(t.pending(), 3u);
  EXPECT_EQ(t.sessions(), 1u);
  EXPECT_EQ(t.evicted(), 2u);

  // A newcomer still gets in and says hello, evicting the oldest silent one.
  auto newcomer = admit(t, "newcomer", 100);
  EXPECT_EQ(closed_.back(), "silent-2");
  EXPECT_TRUE(t.promote(newcomer, false, 101));
  EXPECT_EQ(t.sessions(), 2u);
  EXPECT_EQ(t.pending(), 2u);

  // An evicted connection that answers hello late is refused, not counted.
  auto late = t.promote(silent[0], false, 102);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::kOverloaded);
  EXPECT_EQ(t.sessions(), 2u);
}

TEST_F(ConnectionTableTest, ASessionPastTheLimitReplacesTheIdlestIdleOneClientsFirst) {
  ConnectionTable t({.max_pending = 10, .max_sessions = 3, .evict_idle_after_ms = 10'000});
  auto peer = admit(t, "peer", 0);
  auto old_client = admit(t, "old-client", 0);
  auto young_client = admit(t, "young-client", 0);
  ASSERT_TRUE(t.promote(peer, true, 0));
  ASSERT_TRUE(t.promote(old_client, false, 1000));
  ASSERT_TRUE(t.promote(young_client, false, 2000));

  // Nobody has been idle for 10 s yet: refused, nothing closed.
  auto early = admit(t, "early", 5000);
  auto refused = t.promote(early, false, 5000);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kOverloaded);
  EXPECT_NE(refused.error().message.find("max-connections"), std::string::npos);
  EXPECT_TRUE(closed_.empty());
  t.release(early);

  // The peer is idle the longest, but client sessions go first: the older client.
  auto next = admit(t, "next", 20'000);
  ASSERT_TRUE(t.promote(next, false, 20'000));
  EXPECT_EQ(closed_, (std::vector<std::string>{"old-client"}));
  t.release(old_client);  // its session ends later: nothing changes
  EXPECT_EQ(t.sessions(), 3u);

  // Then the other client; then, with the clients in use, the peer.
  auto third = admit(t, "third", 30'000);
  ASSERT_TRUE(t.promote(third, false, 30'000));
  next->active(40'000, false);
  third->active(40'000, false);
  auto fourth = admit(t, "fourth", 45'000);
  ASSERT_TRUE(t.promote(fourth, false, 45'000));
  EXPECT_EQ(closed_, (std::vector<std::string>{"old-client", "young-client", "peer"}));
}

TEST_F(ConnectionTableTest, ABusyOrRecentlyActiveSessionIsNeverEvicted) {
  ConnectionTable t({.max_pending = 10, .max_sessions = 2, .evict_idle_after_ms = 10'000});
  auto busy = admit(t, "busy", 0);
  auto active = admit(t, "active", 0);
  ASSERT_TRUE(t.promote(busy, false, 0));
  ASSERT_TRUE(t.promote(active, false, 0));
  busy->active(1000, /*busy=*/true);       // e.g. a long repair in progress
  active->active(55'000, /*busy=*/false);  // a request answered 5 s ago

  auto newcomer = admit(t, "newcomer", 60'000);
  EXPECT_FALSE(t.promote(newcomer, false, 60'000));
  EXPECT_TRUE(closed_.empty());

  // Once the busy one is done and idle long enough, it goes (the other is still in use).
  busy->active(61'000, false);
  active->active(70'000, false);
  EXPECT_TRUE(t.promote(newcomer, false, 71'000));
  EXPECT_EQ(closed_, (std::vector<std::string>{"busy"}));
}

TEST_F(ConnectionTableTest, ReleaseFreesTheSlotOnceAndOnlyOnce) {
  ConnectionTable t({.max_pending = 2, .max_sessions = 1, .evict_idle_after_ms = 10'000});
  auto a = admit(t, "a", 0);
  ASSERT_TRUE(t.promote(a, false, 0));
  t.release(a);
  t.release(a);
  EXPECT_EQ(t.sessions(), 0u);
  auto b = admit(t, "b", 1);
  auto c = admit(t, "c", 2);
  t.release(b);
  t.release(b);
  EXPECT_EQ(t.pending(), 1u);
  EXPECT_TRUE(t.promote(c, false, 3));
  EXPECT_EQ(t.sessions(), 1u);
  EXPECT_EQ(t.evicted(), 0u);
  EXPECT_TRUE(closed_.empty());
}

}  // namespace
}  // namespace alldata::broker
