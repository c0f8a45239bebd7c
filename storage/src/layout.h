// The on-disk format of the event store in one place: column family names, RocksDB keys,
// the event value encoding and the meta keys of the default column family. Everything
// here is written down in storage/README.md; changing any of it changes the data folder
// format, so it only ever grows (a new value format byte, a new meta prefix).
#pragma once

#include "alldata/protocol/key.h"
#include "alldata/storage/event_store.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>


namespace alldata::storage::layout {

// ---- column families -------------------------------------------------------------------

// "i-20261128T060000Z": the interval starting at `start_ms` (UTC, second precision).
std::string interval_cf_name(std::uint64_t start_ms);
// The start of the interval named `name`, or nullopt for a name that is not an interval
// ("default", a future "hints" family, ...).
std::optional<std::uint64_t> parse_interval_cf_name(std::string_view name);

inline std::uint64_t interval_start(std::uint64_t time_ms, std::uint64_t interval_ms) noexcept {
  return time_ms - time_ms % interval_ms;
}

// ---- event keys ------------------------------------------------------------------------

// stream id (u32 BE) | partition (u32 BE) | event key (16 bytes).
inline constexpr std::size_t kPrefixSize = 8;
inline constexpr std::size_t kEventKeySize = kPrefixSize + Key::kSize;

inline void put_u32_be(char* p, std::uint32_t v) noexcept {
  p[0] = static_cast<char>(v >> 24);
  p[1] = static_cast<char>(v >> 16);
  p[2] = static_cast<char>(v >> 8);
  p[3] = static_cast<char>(v);
}
inline std::uint32_t get_u32_be(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         std::uint32_t{u[3]};
}
inline void put_u32_le(char* p, std::uint32_t v) noexcept {
  p[0] = static_cast<char>(v);
  p[1] = static_cast<char>(v >> 8);
  p[2] = static_cast<char>(v >> 16);
  p[3] = static_cast<char>(v >> 24);
}
inline std::uint32_t get_u32_le(const char* p) noexcept {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return std::uint32_t{u[0]} | (std::uint32_t{u[1]} << 8) | (std::uint32_t{u[2]} << 16) |
         (std::uint32_t{u[3]} << 24);
}
inline void put_u64_be(char* p, std::uint64_t v) noexcept {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v);
    v >>= 8;
  }
}
inline std::uint64_t get_u64_be(const char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

inline void put_prefix(char* out, std::uint32_t stream_id, std::uint32_t partition) noexcept {
  put_u32_be(out, stream_id);
  put_u32_be(out + 4, partition);
}

// ---- event values ----------------------------------------------------------------------

// First byte of a value.
inline constexpr std::uint8_t kFormatPlain = 0;    // the rest is the payload
inline constexpr std::uint8_t kFormatHeaders = 1;  // varint count, headers, then payload

// Unsigned LEB128, at most 10 bytes for a u64.
inline std::size_t varint_size(std::uint64_t v) noexcept {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
inline char* put_varint(char* p, std::uint64_t v) noexcept {
  while (v >= 0x80) {
    *p++ = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
// Reads a varint from [*p, end); false when truncated or longer than 10 bytes.
inline bool get_varint(const char** p, const char* end, std::uint64_t* out) noexcept {
  std::uint64_t v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    const auto b = static_cast<unsigned char>(*(*p)++);
    v |= std::uint64_t{b & 0x7Fu} << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

// Size of the encoded value of an event.
std::size_t value_size(std::string_view payload, std::span<const HeaderView> headers) noexcept;
// Writes the value (exactly value_size() bytes) at `out`.
void encode_value(char* out, std::string_view payload,
                  std::span<const HeaderView> headers) noexcept;

// A decoded value; views point into the encoded bytes.
struct DecodedValue {
  std::string_view payload;
  std::size_t header_count = 0;
};
// Decodes `value`, appending its headers to `headers`. False for a corrupt value (unknown
// format byte, truncated header); `headers` may then hold part of them.
bool decode_value(std::string_view value, std::vector<HeaderView>& headers, DecodedValue* out);

// ---- EventBatch records ------------------------------------------------------------------

// [16-byte key][u32 LE value length][value]
inline constexpr std::size_t kRecordHeaderSize = Key::kSize + 4;

// ---- default column family (meta) --------------------------------------------------------

inline constexpr std::string_view kIntervalConfigKey = "c/interval_ms";  // decimal text
inline constexpr std::string_view kStreamPrefix = "s/";  // s/<name> -> u32 BE stream id
inline constexpr std::string_view kSealedPrefix = "x/";  // x/<cf name> -> seal time (decimal ms)
inline constexpr std::string_view kDigestPrefix = "d/";  // d/<cf name>/<stream id>/<partition>
inline constexpr std::string_view kMetaPrefix = "m/";    // m/<name> -> put_meta value

std::string stream_key(std::string_view name);
std::string sealed_key(std::string_view cf_name);
std::string digest_key(std::string_view cf_name, std::uint32_t stream_id, std::uint32_t partition);
std::string meta_key(std::string_view name);

// Digest value: count (u64 BE) | xor of XXH64 of the event keys (u64 BE).
struct Digest {
  std::uint64_t count = 0;
  std::uint64_t xor_hash = 0;
};
std::string encode_digest(const Digest& d);
std::optional<Digest> decode_digest(std::string_view value);
// XXH64 (seed 0) of the 16 event key bytes: the digest term of one event.
std::uint64_t key_hash(const char* key16) noexcept;

// ---- hints column family -----------------------------------------------------------------

inline constexpr std::string_view kHintsCfName = "hints";
inline constexpr std::size_t kMaxHintTargetSize = 255;

// u8 target length | target | u16 BE stream name length | stream name | u32 BE partition |
// 16-byte event key. Length prefixes keep one target's hints contiguous and apart from a
// target whose id starts with it. Stream names, not ids: a hint is delivered by name.
std::string hint_key(std::string_view target, std::string_view stream, std::uint32_t partition,
                     const char* key16);
// The prefix of every hint key of `target`.
std::string hint_target_prefix(std::string_view target);

struct HintKey {
  std::string_view target;
  std::string_view stream;
  std::uint32_t partition = 0;
  const char* key16 = nullptr;
};
// Splits a hint key; nullopt for a malformed one. Views point into `key`.
std::optional<HintKey> parse_hint_key(std::string_view key);

}  // namespace alldata::storage::layout
