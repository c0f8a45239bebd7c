// What members publish of others that may lack events (hints they hold, repair debts),
// how it is bounded on the wire, and how the view turns it into each member's
// "incomplete since" that scans read replicas by.
#include "membership/cluster_agent.h"
#include "membership/cluster_view.h"
#include "membership/codec.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace alldata::broker {
namespace {

TEST(OwedTest, TheOldestAreListedAndTheRestFoldedIntoOneEntryForEveryone) {
  std::map<std::string, std::uint64_t> owed;
  for (int i = 0; i < 40; ++i) owed["broker-" + std::to_string(i)] = 1000 + static_cast<std::uint64_t>(i);
  const std::vector<Owed> folded = fold_owed(owed);
  ASSERT_EQ(folded.size(), kMaxOwed);
  for (std::size_t i = 0; i + 1 < folded.size(); ++i) {
    EXPECT_EQ(folded[i].since_ms, 1000 + i) << i;
    EXPECT_FALSE(folded[i].node_id.empty());
  }
  EXPECT_EQ(folded.back().node_id, "");
  EXPECT_EQ(folded.back().since_ms, 1000 + kMaxOwed - 1);

  // Long ids: the byte budget folds sooner.
  std::map<std::string, std::uint64_t> wide;
  for (int i = 0; i < 5; ++i) wide[std::string(200, static_cast<char>('a' + i))] = 7;
  const std::vector<Owed> few = fold_owed(wide);
  ASSERT_EQ(few.size(), 3u);
  EXPECT_EQ(few[2].node_id, "");

  EXPECT_TRUE(fold_owed({}).empty());
  EXPECT_EQ(fold_owed({{"b1", 5}}), (std::vector<Owed>{{"b1", 5}}));
}

TEST(OwedTest, OnlyANewOrEarlierIncompletenessIsUrgent) {
  const std::vector<Owed> before = {{"b1", 100}, {"b2", 200}};
  EXPECT_FALSE(owes_more(before, before));
  EXPECT_FALSE(owes_more(before, {{"b1", 100}}));          // b2 settled
  EXPECT_FALSE(owes_more(before, {{"b1", 150}}));          // later: less is missing
  EXPECT_TRUE(owes_more(before, {{"b1", 50}, {"b2", 200}}));
  EXPECT_TRUE(owes_more(before, {{"b1", 100}, {"b3", 300}}));
  EXPECT_FALSE(owes_more({{"", 10}}, {{"b3", 300}}));       // covered by "everyone since 10"
  EXPECT_TRUE(owes_more({}, {{"", 10}}));
}

TEST(OwedTest, TheListRoundTripsItsSizeIsExactAndTooLongIsRefused) {
  Datagram d{"c", "b0", "127.0.0.1:1", 1, {}};
  const std::size_t empty = encode(d).size();
  AliveMsg a{"b0", "127.0.0.1:1", 3, {}, 0};
  a.state.owed = {{"b1", 1234}, {"", 99}};
  d.messages.push_back(a);
  const std::string bytes = encode(d);
  EXPECT_EQ(bytes.size(), empty + encoded_bytes(d.messages.front()));
  auto back = decode_datagram(bytes);
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_EQ(back->messages.size(), 1u);
  EXPECT_EQ(std::get<AliveMsg>(back->messages.front()).state.owed, a.state.owed);

  std::get<AliveMsg>(d.messages.front()).state.owed.assign(kMaxOwed + 1, Owed{"b1", 1});
  auto refused = decode_datagram(encode(d));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kBadRequest);
  EXPECT_NE(refused.error().message.find("owed"), std::string::npos) << refused.error().message;
}

ViewMember member(const std::string& id, Lifecycle l, std::vector<Owed> owed = {}) {
  ViewMember m;
  m.node_id = id;
  m.lifecycle = l;
  m.owed = std::move(owed);
  return m;
}

TEST(OwedTest, AMemberIsIncompleteFromTheOldestTimeAnyMemberNotGoneOwesIt) {
  ClusterView::Inputs in;
  in.policy.replication_factor = 3;
  in.members = {member("b0", Lifecycle::kNormal, {{"b2", 500}}),
                member("b1", Lifecycle::kNormal, {{"b2", 300}, {"", 900}}),
                member("b2", Lifecycle::kNormal),
                member("b3", Lifecycle::kLeft, {{"b0", 1}}),        // gone: its hints are too
                member("b4", Lifecycle::kRemoved, {{"b0", 1}})};
  in.members.front().self = true;
  in.members[1].liveness = Liveness::kDead;  // a dead holder's hints are still undelivered
  const ClusterView view(std::move(in));
  EXPECT_EQ(view.member("b2")->incomplete_since_ms, 300u);
  EXPECT_EQ(view.member("b0")->incomplete_since_ms, 900u);  // b1's "everyone else"
  EXPECT_EQ(view.member("b1")->incomplete_since_ms, 0u);    // not owed by itself
}

}  // namespace
}  // namespace alldata::broker
