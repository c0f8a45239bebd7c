// The hybrid-logical-clock key generator: per-origin monotonic under a clock that jumps
// back, unique across origins and threads, counter overflow, persisted floor and limit.
#include "alldata/protocol/keygen.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace alldata {
namespace {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::uint64_t ms) : ms_(ms) {}
  std::uint64_t now_ms() override { return ms_.load(); }
  void set(std::uint64_t ms) { ms_.store(ms); }

 private:
  std::atomic<std::uint64_t> ms_;
};

TEST(KeygenTest, KeysCarryTheWallClockAndOrigin) {
  ManualClock clock(1'800'000'000'000ull);
  Keygen gen(77, clock);
  const Key k = gen.next();
  EXPECT_EQ(k.time_ms(), 1'800'000'000'000ull);
  EXPECT_EQ(k.counter(), 0);
  EXPECT_EQ(k.origin(), 77u);
  EXPECT_EQ(gen.next().counter(), 1);
}

TEST(KeygenTest, MonotonicWhenTheClockJumpsBack) {
  ManualClock clock(1'800'000'000'000ull);
  Keygen gen(1, clock);
  Key prev = gen.next();
  for (int i = 0; i < 1000; ++i) {
    if (i == 300) clock.set(1'799'999'000'000ull);  // NTP steps back a thousand seconds
    if (i == 600) clock.set(1'800'000'000'500ull);
    const Key k = gen.next();
    ASSERT_GT(k, prev) << "at step " << i;
    prev = k;
  }
}

TEST(KeygenTest, CounterOverflowMovesToTheNextMillisecond) {
  ManualClock clock(1000);
  Keygen gen(1, clock);
  auto first = gen.reserve(65536);
  ASSERT_TRUE(first);
  EXPECT_EQ(Key::from_hlc(*first, 1).time_ms(), 1000u);
  const Key after = gen.next();
  EXPECT_EQ(after.time_ms(), 1001u);
  EXPECT_EQ(after.counter(), 0);
}

TEST(KeygenTest, UniqueAcrossOriginsEvenAtTheSameInstant) {
  ManualClock clock(5000);
  Keygen a(1, clock), b(2, clock);
  std::set<Key> keys;
  for (int i = 0; i < 1000; ++i) {
    keys.insert(a.next());
    keys.insert(b.next());
  }
  EXPECT_EQ(keys.size(), 2000u);
}

TEST(KeygenTest, ConcurrentReservationsNeverOverlap) {
  ManualClock clock(5000);
  Keygen gen(9, clock);
  std::vector<std::vector<std::uint64_t>> firsts(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) firsts[t].push_back(*gen.reserve(3));
    });
  }
  for (auto& th : threads) th.join();
  std::vector<std::uint64_t> all;
  for (auto& f : firsts) all.insert(all.end(), f.begin(), f.end());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 1; i < all.size(); ++i) ASSERT_GE(all[i] - all[i - 1], 3u);
}

TEST(KeygenTest, FloorFromAPersistedMarkKeepsNewKeysAboveOldOnes) {
  ManualClock clock(10'000);
  const std::uint64_t persisted = (20'000ull << 16) | 0xFFFF;  // the lease was ahead of the clock
  Keygen gen(1, clock, persisted);
  const Key k = gen.next();
  EXPECT_GT(k.hlc(), persisted);
  EXPECT_EQ(k.time_ms(), 20'001u);
}

TEST(KeygenTest, ReserveStopsAtTheLimitUntilItIsRaised) {
  ManualClock clock(1000);
  Keygen gen(1, clock);
  gen.set_limit((1000ull << 16) + 9);
  EXPECT_TRUE(gen.reserve(10));
  EXPECT_FALSE(gen.reserve(1));
  gen.set_limit((2000ull << 16));
  EXPECT_TRUE(gen.reserve(1));
}

}  // namespace
}  // namespace alldata
