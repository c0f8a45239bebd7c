// The 16-byte event key: unique in the cluster without coordination, and its byte order is
// time order. Layout (all big-endian):
//   bytes 0..5   unix time in milliseconds (48 bits)
//   bytes 6..7   logical counter within that millisecond (16 bits)
//   bytes 8..15  origin id: the broker or producer that made the key (64 bits)
// The first 8 bytes read as one big-endian uint64 are `time_ms << 16 | counter`, the
// hybrid-logical-clock value; `Keygen` hands these out.
#pragma once

#include "alldata/protocol/error.h"

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace alldata {

class Key {
 public:
  static constexpr std::size_t kSize = 16;
  static constexpr std::uint64_t kMaxTimeMs = (std::uint64_t{1} << 48) - 1;

  // The all-zero key: sorts before every other key.
  constexpr Key() = default;

  static Key make(std::uint64_t time_ms, std::uint16_t counter, std::uint64_t origin) noexcept {
    return from_hlc((time_ms << 16) | counter, origin);
  }
  // `hlc` is `time_ms << 16 | counter`.
  static Key from_hlc(std::uint64_t hlc, std::uint64_t origin) noexcept {
    Key k;
    put_u64(k.bytes_.data(), hlc);
    put_u64(k.bytes_.data() + 8, origin);
    return k;
  }
  // The smallest key at `time_ms`: the bound to scan from (inclusive) or to (exclusive).
  static Key at_time(std::uint64_t time_ms) noexcept { return make(time_ms, 0, 0); }
  // The largest key there is: an exclusive upper bound meaning "the end of time".
  static Key max() noexcept {
    Key k;
    k.bytes_.fill(0xFF);
    return k;
  }
  // Reads exactly 16 bytes; anything else is an error.
  static Result<Key> from_bytes(std::string_view bytes);
  static Key from_raw(const std::uint8_t* p) noexcept {
    Key k;
    std::memcpy(k.bytes_.data(), p, kSize);
    return k;
  }

  // Parses the text form written by to_text(), e.g.
  // "2026-11-28T06:29:43.123Z-00000-0123456789abcdef", or a bare time
  // ("2026-11-28T06:29:43.123Z", "2026-11-28T06:29:43Z", "2026-11-28") meaning at_time(t),
  // or a unix time in milliseconds ("1795854583123").
  static Result<Key> parse(std::string_view text);

  std::uint64_t time_ms() const noexcept { return hlc() >> 16; }
  std::uint16_t counter() const noexcept { return static_cast<std::uint16_t>(hlc() & 0xFFFF); }
  std::uint64_t origin() const noexcept { return get_u64(bytes_.data() + 8); }
  std::uint64_t hlc() const noexcept { return get_u64(bytes_.data()); }

  // The next key in byte order (the bytes as a 128-bit number plus one); max() stays max().
  Key successor() const noexcept;

  // "2026-11-28T06:29:43.123Z-00001-0123456789abcdef": time, counter (decimal), origin (hex).
  std::string to_text() const;

  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  std::string_view view() const noexcept {
    return {reinterpret_cast<const char*>(bytes_.data()), kSize};
  }

  friend auto operator<=>(const Key&, const Key&) = default;
  friend bool operator==(const Key&, const Key&) = default;

  static void put_u64(std::uint8_t* p, std::uint64_t v) noexcept {
    for (int i = 7; i >= 0; --i) {
      p[i] = static_cast<std::uint8_t>(v);
      v >>= 8;
    }
  }
  static std::uint64_t get_u64(const std::uint8_t* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
    return v;
  }

 private:
  std::array<std::uint8_t, kSize> bytes_{};
};

// ISO-8601 UTC with milliseconds: "2026-11-28T06:29:43.123Z".
std::string format_time_ms(std::uint64_t time_ms);
// Parses "2026-11-28T06:29:43.123Z", "2026-11-28T06:29:43Z", "2026-11-28T06:29:43",
// "2026-11-28", or plain unix milliseconds.
Result<std::uint64_t> parse_time_ms(std::string_view text);

}  // namespace alldata
