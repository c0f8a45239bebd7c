// Anti-entropy between two replicas of a partition (range_repair.h), each a real RocksDB
// store reached through LocalReplica: afterwards both hold the union; identical replicas
// cost one digest per interval; a replica missing events receives exactly those.
#include "alldata/storage/event_store.h"
#include "repair/local_replica.h"
#include "repair/range_repair.h"
#include "test_support.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <random>
#include <set>

namespace alldata::testing {
namespace {

namespace asio = boost::asio;
using broker::repair::LocalReplica;
using broker::repair::RepairLimits;
using broker::repair::RepairStats;

constexpr std::uint64_t kHour = 3'600'000;
const std::uint64_t kT0 = parse_time_ms("2026-11-28T05:00:00Z").value();

class RepairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      storage::Options o;
      o.path = (dir_.path() / ("r" + std::to_string(i))).string();
      o.sync = false;
      o.seal_after = std::chrono::minutes(1);
      o.logger = test_logger();
      auto s = storage::EventStore::open(o);
      ASSERT_TRUE(s) << s.error().to_string();
      stores_.push_back(std::move(*s));
    }
    a_ = std::make_unique<LocalReplica>("a", *stores_[0], pool_, std::chrono::seconds(30));
    b_ = std::make_unique<LocalReplica>("b", *stores_[1], pool_, std::chrono::seconds(30));
  }

  // Writes `keys` to store i (in batches of 1000).
  void put(int i, const std::vector<Key>& keys, std::uint32_t partition = 0) {
    for (std::size_t at = 0; at < keys.size(); at += 1000) {
      storage::EventBatch b("s", partition);
      for (std::size_t j = at; j < std::min(keys.size(), at + 1000); ++j) {
        b.add(keys[j], "payload of " + keys[j].to_text());
      }
      std::promise<Status> done;
      auto f = done.get_future();
      stores_[i]->write(std::move(b), [&done](Status s) { done.set_value(std::move(s)); });
      ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
      ASSERT_TRUE(f.get());
    }
  }

  std::set<Key> held(int i, std::uint32_t partition = 0) {
    std::set<Key> out;
    Key from;
    for (;;) {
      auto page = stores_[i]->keys("s", partition, from, Key::max(), 10000);
      EXPECT_TRUE(page);
      if (!page) return out;
      out.insert(page->keys.begin(), page->keys.end());
      if (page->done) return out;
      from = page->next_from;
    }
  }

  RepairStats repair(const RepairLimits& limits = {}, std::uint32_t partition = 0) {
    // Named: the coroutine starts later and holds references to its arguments.
    const std::string stream = "s";
    const broker::repair::Throttle no_throttle;
    auto f = asio::co_spawn(io_,
                            broker::repair::repair_partition(*a_, *b_, stream, partition, 0,
                                                             kT0 + 100 * kHour, kHour, limits,
                                                             no_throttle),
                            asio::use_future);
    io_.restart();
    io_.run_for(std::chrono::seconds(120));
    EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    auto r = f.get();
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : RepairStats{};
  }

  // n keys over `span_ms` from `start`, several origins.
  static std::vector<Key> keys_over(std::uint64_t start, std::uint64_t span_ms, std::size_t n) {
    std::vector<Key> keys;
    for (std::size_t i = 0; i < n; ++i) {
      keys.push_back(Key::make(start + i * span_ms / n, static_cast<std::uint16_t>(i % 7),
                               1 + i % 3));
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }

  TempDir dir_;
  asio::io_context io_;
  asio::thread_pool pool_{2};
  std::vector<std::unique_ptr<storage::EventStore>> stores_;
  std::unique_ptr<LocalReplica> a_;
  std::unique_ptr<LocalReplica> b_;
};

TEST_F(RepairTest, IdenticalReplicasCompareOneDigestPerIntervalAndCopyNothing) {
  const auto keys = keys_over(kT0, 3 * kHour, 30000);  // three intervals
  put(0, keys);
  put(1, keys);
  const RepairStats s = repair();
  EXPECT_EQ(s.ranges_compared, 3u);
  EXPECT_EQ(s.ranges_differed, 0u);
  EXPECT_EQ(s.keys_listed, 0u);
  EXPECT_EQ(s.events_to_a + s.events_to_b, 0u);
}

TEST_F(RepairTest, AReplicaMissingTenPercentReceivesExactlyThoseEvents) {
  // Dense: 50,000 events within 5 seconds, so the time split must go deep.
  const auto keys = keys_over(kT0 + 1000, 5000, 50000);
  std::vector<Key> partial;
  std::set<Key> missing;
  std::mt19937 random(7);
  for (const auto& k : keys) {
    if (random() % 10 == 0) {
      missing.insert(k);
    } else {
      partial.push_back(k);
    }
  }
  put(0, keys);
  put(1, partial);
  const RepairStats s = repair();
  EXPECT_EQ(s.events_to_b, missing.size());
  EXPECT_EQ(s.events_to_a, 0u);
  EXPECT_GT(s.ranges_differed, 1u);
  const std::set<Key> all(keys.begin(), keys.end());
  EXPECT_EQ(held(1), all);
  EXPECT_EQ(held(0), all);
  // Payloads came along.
  std::optional<Key> next;
  auto batch = stores_[1]->events("s", 0, std::vector<Key>{*missing.begin()}, 1 << 20, &next);
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->size(), 1u);
  batch->for_each([&](const Key& k, std::string_view p, std::span<const storage::HeaderView>) {
    EXPECT_EQ(std::string(p), "payload of " + k.to_text());
  });
  // A second repair finds nothing to do.
  const RepairStats again = repair();
  EXPECT_EQ(again.ranges_differed, 0u);
  EXPECT_EQ(again.events_to_a + again.events_to_b, 0u);
}

TEST_F(RepairTest, EachSideGetsWhatOnlyTheOtherHeldIncludingWholeIntervals) {
  const auto shared = keys_over(kT0, kHour, 5000);
  const auto only_a = keys_over(kT0 + 2 * kHour, kHour, 3000);  // an interval b lacks
  const auto only_b = keys_over(kT0 + 17, 1000, 200);            // mixed into a shared one
  put(0, shared);
  put(1, shared);
  put(0, only_a);
  put(1, only_b);
  const RepairStats s = repair(RepairLimits{.fanout = 4, .leaf_keys = 64, .key_page = 100});
  EXPECT_EQ(s.events_to_b, only_a.size());
  EXPECT_EQ(s.events_to_a, only_b.size());
  EXPECT_EQ(held(0), held(1));
  EXPECT_EQ(held(0).size(), shared.size() + only_a.size() + only_b.size());
}

TEST_F(RepairTest, RepairWritesEnterSealedIntervalsAndKeepTheirDigestsTrue) {
  const auto keys = keys_over(kT0, kHour, 2000);
  put(0, keys);
  put(1, std::vector<Key>(keys.begin(), keys.begin() + 1500));
  for (auto& s : stores_) ASSERT_TRUE(s->seal_old_intervals(kT0 + 3 * kHour));
  const RepairStats s = repair();
  EXPECT_EQ(s.events_to_b, 500u);
  auto da = stores_[0]->digest("s", 0, kT0);
  auto db = stores_[1]->digest("s", 0, kT0);
  ASSERT_TRUE(da && db && da->has_value() && db->has_value());
  EXPECT_EQ(**da, **db);  // the stored digest of the sealed interval was updated
  EXPECT_EQ(repair().ranges_differed, 0u);
}

TEST_F(RepairTest, OtherPartitionsAreLeftAlone) {
  const auto keys = keys_over(kT0, kHour, 1000);
  put(0, keys, 1);
  const RepairStats s = repair({}, 0);
  EXPECT_EQ(s.events_to_b, 0u);
  EXPECT_TRUE(held(1, 1).empty());
  EXPECT_EQ(repair({}, 1).events_to_b, keys.size());
}

}  // namespace
}  // namespace alldata::testing
