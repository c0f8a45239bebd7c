// Events never change: a write of a key already stored with the same content stores nothing
// new, with other content it is refused (kKeyConflict) or, for repair writes, skipped; the
// first content stays. Against a real RocksDB, across restarts, many origins and groups.
#include "alldata/storage/event_store.h"
#include "storage_test_support.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <thread>
#include <vector>

namespace alldata::storage {
namespace {

EventBatch batch_with_payload(std::string_view stream, std::uint32_t partition,
                              const std::vector<Key>& keys, std::string_view payload) {
  EventBatch b(stream, partition);
  for (const auto& k : keys) b.add(k, payload);
  return b;
}

std::vector<std::string> payloads_of(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.payload);
  return out;
}

TEST_F(EventStoreTest, IdenticalRetryStoresNothingNew) {
  open();
  const auto keys = keys_at(kT0, 50, 1);
  ASSERT_TRUE(write(batch_of("s", 0, keys)));
  ASSERT_TRUE(write(batch_of("s", 0, keys)));
  EXPECT_EQ(keys_of(scan_all("s", 0)), keys);
  EXPECT_EQ(store_->stats().events_written, 50u);
  EXPECT_EQ(store_->stats().duplicates, 50u);
}

TEST_F(EventStoreTest, OtherContentUnderAStoredKeyIsRefusedAndTheFirstStays) {
  open();
  const auto keys = keys_at(kT0, 10, 1);
  ASSERT_TRUE(write(batch_with_payload("s", 0, keys, "first")));

  // One changed event among new ones: the whole batch is refused, the error names the key.
  std::vector<Key> mixed = keys_at(kT0 + 100, 5, 1);
  mixed.push_back(keys[4]);
  const Status s = write(batch_with_payload("s", 0, mixed, "second"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kKeyConflict);
  EXPECT_NE(s.error().message.find(keys[4].to_text()), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("'s' partition 0"), std::string::npos) << s.error().message;

  const auto stored = scan_all("s", 0);
  EXPECT_EQ(keys_of(stored), keys);  // nothing of the refused batch
  EXPECT_EQ(payloads_of(stored), std::vector<std::string>(10, "first"));
}

TEST_F(EventStoreTest, HeadersArePartOfTheContent) {
  open();
  const Key k = Key::make(kT0, 0, 9);
  const std::array<HeaderView, 1> h1{HeaderView{"type", "a"}};
  const std::array<HeaderView, 1> h2{HeaderView{"type", "b"}};
  EventBatch first("s", 0);
  first.add(k, "p", h1);
  ASSERT_TRUE(write(std::move(first)));
  EventBatch same("s", 0);
  same.add(k, "p", h1);
  EXPECT_TRUE(write(std::move(same)));
  EventBatch other("s", 0);
  other.add(k, "p", h2);
  const Status s = write(std::move(other));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kKeyConflict);
  EventBatch none("s", 0);
  none.add(k, "p");
  EXPECT_EQ(write(std::move(none)).error().code, ErrorCode::kKeyConflict);
}

TEST_F(EventStoreTest, ImmutabilityHoldsAfterARestart) {
  open();
  const auto keys = keys_at(kT0, 20, 1);
  ASSERT_TRUE(write(batch_with_payload("s", 3, keys, "first")));
  open();  // a new process knows nothing but what RocksDB holds
  EXPECT_TRUE(write(batch_with_payload("s", 3, keys, "first")));
  const Status s = write(batch_with_payload("s", 3, {keys[0]}, "changed"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kKeyConflict);
  EXPECT_EQ(payloads_of(scan_all("s", 3)), std::vector<std::string>(20, "first"));
  EXPECT_EQ(store_->stats().events_written, 0u);
}

TEST_F(EventStoreTest, InterleavedOriginsAreAllStoredAndRetriesOfEachAreCaught) {
  open();
  // Producers whose keys interleave in time, written in an order where each one's keys are
  // below the partition's largest key: all new, all stored.
  std::vector<std::vector<Key>> per_origin;
  for (std::uint64_t origin = 1; origin <= 8; ++origin) {
    per_origin.push_back(keys_at(kT0 + 100 - origin * 10, 30, 3, origin));
  }
  for (const auto& keys : per_origin) ASSERT_TRUE(write(batch_of("s", 0, keys)));
  EXPECT_EQ(scan_all("s", 0).size(), 8u * 30);
  for (const auto& keys : per_origin) {
    const Status retry = write(batch_of("s", 0, keys));
    EXPECT_TRUE(retry) << retry.error().to_string();
    const Status changed = write(batch_with_payload("s", 0, {keys[29]}, "changed"));
    ASSERT_FALSE(changed);
    EXPECT_EQ(changed.error().code, ErrorCode::kKeyConflict);
  }
  EXPECT_EQ(scan_all("s", 0).size(), 8u * 30);
  EXPECT_EQ(store_->stats().events_written, 8u * 30);
}

TEST_F(EventStoreTest, ManyOriginsBeyondWhatIsRememberedStayImmutable) {
  open();
  // More origins than the writer remembers per partition: the forgotten ones pay a read,
  // and are still caught.
  constexpr std::uint64_t kOrigins = 5000;
  EventBatch b("s", 0);
  for (std::uint64_t o = 1; o <= kOrigins; ++o) b.add(Key::make(kT0 + o % 97, 0, o), "first");
  ASSERT_TRUE(write(std::move(b)));
  EventBatch again("s", 0);
  for (std::uint64_t o = 1; o <= kOrigins; ++o) again.add(Key::make(kT0 + o % 97, 0, o), "x");
  const Status s = write(std::move(again));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kKeyConflict);
  for (std::uint64_t o : {std::uint64_t{1}, std::uint64_t{2500}, kOrigins}) {
    const Status one = write(batch_with_payload("s", 0, {Key::make(kT0 + o % 97, 0, o)}, "y"));
    ASSERT_FALSE(one) << "origin " << o;
    EXPECT_EQ(one.error().code, ErrorCode::kKeyConflict);
  }
  EXPECT_EQ(scan_all("s", 0).size(), kOrigins);
}

TEST_F(EventStoreTest, ConflictsInsideOneGroupAreCaughtBeforeAnythingIsWritten) {
  Options o = options();
  open(o);
  // Queue many batches without waiting so that the writer groups them: the same key with
  // other content later in the queue must be refused whether or not it shares a group
  // with the first, and an identical copy accepted.
  constexpr int kBatches = 200;
  std::vector<std::promise<Status>> results(kBatches);
  for (int i = 0; i < kBatches; ++i) {
    const Key k = Key::make(kT0 + static_cast<std::uint64_t>(i / 2), 0, 5);
    EventBatch b("s", 0);
    // Pairs: batch 2n and 2n+1 carry the same key; odd ones of every fourth pair differ.
    b.add(k, (i % 2 == 1 && (i / 2) % 4 == 0) ? "other" : "same");
    b.add(Key::make(kT0 + 10'000 + static_cast<std::uint64_t>(i), 0, 6), "unique");
    store_->write(std::move(b), [&results, i](Status s) { results[i].set_value(std::move(s)); });
  }
  int conflicts = 0;
  for (int i = 0; i < kBatches; ++i) {
    auto f = results[i].get_future();
    ASSERT_EQ(f.wait_for(kDeadline), std::future_status::ready);
    const Status s = f.get();
    const bool should_conflict = i % 2 == 1 && (i / 2) % 4 == 0;
    if (should_conflict) {
      ASSERT_FALSE(s) << "batch " << i;
      EXPECT_EQ(s.error().code, ErrorCode::kKeyConflict);
      ++conflicts;
    } else {
      EXPECT_TRUE(s) << "batch " << i << ": " << s.error().to_string();
    }
  }
  EXPECT_EQ(conflicts, kBatches / 8);
  const auto stored = scan_all("s", 0);
  // 100 shared keys, all "same"; unique keys of the refused batches are not stored.
  ASSERT_EQ(stored.size(), 100u + kBatches - kBatches / 8);
  for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ(stored[i].payload, "same") << i;
}

TEST_F(EventStoreTest, RepairWritesSkipConflictingKeysAndStoreTheRest) {
  Options o = options();
  o.seal_after = std::chrono::minutes(30);
  open(o);
  const auto keys = keys_at(kT0 + 10, 5, 1000);
  ASSERT_TRUE(write(batch_with_payload("s", 0, keys, "first")));
  ASSERT_TRUE(store_->seal_old_intervals(kT0 + 2 * kHour));
  const auto before = store_->digest("s", 0, kT0);
  ASSERT_TRUE(before && before->has_value());

  // A repair write carrying one conflicting, one identical and one new key.
  const Key fresh = Key::make(kT0 + 20, 0, 7);
  EventBatch repair("s", 0);
  repair.add(keys[0], "changed");
  repair.add(keys[1], "first");
  repair.add(fresh, "new");
  repair.set_repair(true);
  ASSERT_TRUE(write(std::move(repair)));

  const auto stored = scan_all("s", 0);
  ASSERT_EQ(stored.size(), 6u);
  for (const auto& e : stored) EXPECT_EQ(e.payload, e.key == fresh ? "new" : "first");
  const auto after = store_->digest("s", 0, kT0);
  ASSERT_TRUE(after && after->has_value());
  EXPECT_EQ((*after)->count, (*before)->count + 1);  // only the new key was counted
}

}  // namespace
}  // namespace alldata::storage
