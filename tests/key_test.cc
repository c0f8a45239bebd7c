// The 16-byte key codec and its text form: layout, order, parsing of user input.
#include "alldata/protocol/key.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace alldata {
namespace {

TEST(KeyTest, LayoutIsTimeCounterOriginBigEndian) {
  const Key k = Key::make(0x010203040506ull, 0x0708, 0x090A0B0C0D0E0F10ull);
  const std::uint8_t want[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  EXPECT_EQ(0, std::memcmp(k.data(), want, 16));
  EXPECT_EQ(k.time_ms(), 0x010203040506ull);
  EXPECT_EQ(k.counter(), 0x0708);
  EXPECT_EQ(k.origin(), 0x090A0B0C0D0E0F10ull);
}

TEST(KeyTest, ByteOrderEqualsTimeThenCounterThenOriginOrder) {
  std::mt19937_64 rng(42);
  std::vector<Key> keys;
  for (int i = 0; i < 2000; ++i) {
    keys.push_back(Key::make(rng() % 1000 + 1'700'000'000'000ull, rng() % 3, rng() % 5));
  }
  auto by_fields = keys;
  std::sort(by_fields.begin(), by_fields.end(), [](const Key& a, const Key& b) {
    return std::tuple(a.time_ms(), a.counter(), a.origin()) <
           std::tuple(b.time_ms(), b.counter(), b.origin());
  });
  auto by_bytes = keys;
  std::sort(by_bytes.begin(), by_bytes.end(),
            [](const Key& a, const Key& b) { return std::memcmp(a.data(), b.data(), 16) < 0; });
  EXPECT_EQ(by_fields, by_bytes);
}

TEST(KeyTest, TextFormRoundTrips) {
  const Key k = Key::make(1795847383123ull, 42, 0x0123456789abcdefull);
  EXPECT_EQ(k.to_text(), "2026-11-28T06:29:43.123Z-00042-0123456789abcdef");
  auto back = Key::parse(k.to_text());
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, k);
}

TEST(KeyTest, ParsesTimesAsTheSmallestKeyAtThatTime) {
  auto a = Key::parse("2026-11-28T06:29:43.123Z");
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, Key::at_time(1795847383123ull));
  auto b = Key::parse("2026-11-28");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->time_ms(), 1795824000000ull);
  auto c = Key::parse("1795847383123");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->time_ms(), 1795847383123ull);
  auto d = Key::parse("2026-11-28T06:29:43Z");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->time_ms(), 1795847383000ull);
}

TEST(KeyTest, RejectsGarbageWithAClearError) {
  for (const char* bad : {"", "yesterday", "2026-13-01", "2026-11-28T25:00:00Z", "12ab"}) {
    auto k = Key::parse(bad);
    ASSERT_FALSE(k) << bad;
    EXPECT_EQ(k.error().code, ErrorCode::kBadRequest);
    EXPECT_NE(k.error().message.find("cannot read"), std::string::npos) << k.error().message;
  }
}

TEST(KeyTest, FromBytesNeedsExactlySixteen) {
  EXPECT_FALSE(Key::from_bytes(std::string(15, 'a')));
  EXPECT_FALSE(Key::from_bytes(std::string(17, 'a')));
  EXPECT_TRUE(Key::from_bytes(std::string(16, 'a')));
}

TEST(KeyTest, SuccessorIsTheNextKeyInByteOrder) {
  const Key k = Key::make(5, 0xFFFF, ~0ull);
  const Key s = k.successor();
  EXPECT_GT(s, k);
  EXPECT_EQ(s, Key::make(6, 0, 0));
  EXPECT_EQ(Key::max().successor(), Key::max());
  EXPECT_EQ(Key().successor(), Key::make(0, 0, 1));
}

}  // namespace
}  // namespace alldata
