// The event store's reads for anti-entropy: interval digests (stored for sealed intervals,
// computed for open ones), range digests over arbitrary pieces, key pages and events by key.
// Two stores holding the same keys must agree; one missing a key must differ exactly where.
#include "alldata/storage/event_store.h"
#include "storage_test_support.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <vector>

namespace alldata::storage {
namespace {

std::uint64_t xor_of(const std::vector<Key>& keys) {
  std::uint64_t x = 0;
  for (const auto& k : keys) x ^= XXH64(k.data(), Key::kSize, 0);
  return x;
}

TEST_F(EventStoreTest, IntervalDigestsCoverEveryIntervalHoldingThePartition) {
  Options o = options();
  o.seal_after = std::chrono::minutes(1);
  open(o);
  const auto hour5 = keys_at(kT0 + 10, 30, 100);
  const auto hour6 = keys_at(kT0 + kHour + 10, 20, 100);
  ASSERT_TRUE(write(batch_of("s", 0, hour5)));
  ASSERT_TRUE(write(batch_of("s", 0, hour6)));
  ASSERT_TRUE(write(batch_of("s", 1, keys_at(kT0 + 2 * kHour, 5, 1))));  // hour 7, partition 1

  // Hour 05 sealed (stored digest), hour 06 open (computed); hour 07 holds no partition 0.
  ASSERT_TRUE(store_->seal_old_intervals(kT0 + kHour + 2 * 60'000));
  auto d = store_->interval_digests("s", 0, 0, kT0 + 10 * kHour);
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[0], (IntervalDigest{kT0, 30, xor_of(hour5)}));
  EXPECT_EQ((*d)[1], (IntervalDigest{kT0 + kHour, 20, xor_of(hour6)}));
  // The range selects interval starts.
  d = store_->interval_digests("s", 0, kT0 + 1, kT0 + 10 * kHour);
  ASSERT_TRUE(d);
  ASSERT_EQ(d->size(), 1u);
  EXPECT_EQ((*d)[0].interval_start_ms, kT0 + kHour);
  d = store_->interval_digests("nosuch", 0, 0, kT0 + 10 * kHour);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->empty());
}

TEST_F(EventStoreTest, RangeDigestsSplitAtTheBoundsAndFindAMissingKey) {
  open();
  const auto keys = keys_at(kT0, 100, 10);  // kT0 .. kT0 + 990
  ASSERT_TRUE(write(batch_of("s", 0, keys)));
  const Key bounds[] = {Key::at_time(kT0), Key::at_time(kT0 + 250), Key::at_time(kT0 + 500),
                        Key::at_time(kT0 + 2000)};
  auto d = store_->range_digests("s", 0, bounds);
  ASSERT_TRUE(d) << d.error().to_string();
  ASSERT_EQ(d->size(), 3u);
  EXPECT_EQ((*d)[0], (RangeDigest{25, xor_of({keys.begin(), keys.begin() + 25})}));
  EXPECT_EQ((*d)[1], (RangeDigest{25, xor_of({keys.begin() + 25, keys.begin() + 50})}));
  EXPECT_EQ((*d)[2], (RangeDigest{50, xor_of({keys.begin() + 50, keys.end()})}));

  // Bounds must ascend strictly.
  const Key bad[] = {Key::at_time(kT0 + 5), Key::at_time(kT0 + 5)};
  auto refused = store_->range_digests("s", 0, bad);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kBadRequest);
}

TEST_F(EventStoreTest, KeyPagesJoinUpAndEventsComeBackByKey) {
  open();
  const auto keys = keys_at(kT0, 50, 1);
  ASSERT_TRUE(write(batch_of("s", 2, keys)));
  std::vector<Key> seen;
  Key from = Key::at_time(kT0);
  for (int pages = 0; pages < 100; ++pages) {
    auto page = store_->keys("s", 2, from, Key::max(), 7);
    ASSERT_TRUE(page);
    EXPECT_LE(page->keys.size(), 7u);
    seen.insert(seen.end(), page->keys.begin(), page->keys.end());
    if (page->done) break;
    from = page->next_from;
  }
  EXPECT_EQ(seen, keys);

  // Events by key: stored ones only, in order, with repair() set; a byte bound cuts it.
  const std::vector<Key> ask = {keys[3], Key::make(kT0 + 3, 0, 999), keys[10], keys[40]};
  std::optional<Key> next;
  auto batch = store_->events("s", 2, ask, 1u << 20, &next);
  ASSERT_TRUE(batch) << batch.error().to_string();
  EXPECT_EQ(batch->size(), 3u);
  EXPECT_TRUE(batch->repair());
  EXPECT_FALSE(next.has_value());
  std::vector<std::string> payloads;
  batch->for_each([&](const Key& k, std::string_view p, std::span<const HeaderView>) {
    EXPECT_EQ(std::string(p), payload_for(k));
    payloads.emplace_back(p);
  });
  EXPECT_EQ(payloads.size(), 3u);
  auto first = store_->events("s", 2, ask, 1, &next);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->size(), 1u);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, ask[1]);
}

}  // namespace
}  // namespace alldata::storage
