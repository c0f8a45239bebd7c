// Encoders and decoders of the on-disk format declared in layout.h.
#include "layout.h"

#include <xxhash.h>

#include <chrono>
#include <cstdio>

namespace alldata::storage::layout {

std::string interval_cf_name(std::uint64_t start_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds(static_cast<std::int64_t>(start_ms))};
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const auto in_day = duration_cast<seconds>(t - day).count();
  char buf[48];
  std::snprintf(buf, sizeof buf, "i-%04d%02u%02uT%02lld%02lld%02lldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long long>(in_day / 3600), static_cast<long long>(in_day / 60 % 60),
                static_cast<long long>(in_day % 60));
  return buf;
}

std::optional<std::uint64_t> parse_interval_cf_name(std::string_view name) {
  // "i-" year (4+ digits) "MMDD" "T" "HHMMSS" "Z"
  constexpr std::size_t kTail = 12;  // MMDDTHHMMSSZ
  if (name.size() < 2 + 4 + kTail || name.substr(0, 2) != "i-" || name.back() != 'Z') {
    return std::nullopt;
  }
  const std::string_view year_text = name.substr(2, name.size() - 2 - kTail);
  const std::string_view tail = name.substr(name.size() - kTail);
  if (tail[4] != 'T') return std::nullopt;
  auto number = [](std::string_view s, long long* out) {
    if (s.empty() || s.size() > 9) return false;
    long long v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
  };
  long long y, mo, d, h, mi, s;
  if (!number(year_text, &y) || !number(tail.substr(0, 2), &mo) || !number(tail.substr(2, 2), &d) ||
      !number(tail.substr(5, 2), &h) || !number(tail.substr(7, 2), &mi) ||
      !number(tail.substr(9, 2), &s)) {
    return std::nullopt;
  }
  using namespace std::chrono;
  const year_month_day ymd{year(static_cast<int>(y)), month(static_cast<unsigned>(mo)),
                           day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 59) return std::nullopt;
  const auto days_ms = duration_cast<milliseconds>(sys_days(ymd).time_since_epoch()).count();
  if (days_ms < 0) return std::nullopt;
  return static_cast<std::uint64_t>(days_ms) +
         static_cast<std::uint64_t>((h * 3600 + mi * 60 + s) * 1000);
}

std::size_t value_size(std::string_view payload, std::span<const HeaderView> headers) noexcept {
  std::size_t n = 1 + payload.size();
  if (!headers.empty()) {
    n += varint_size(headers.size());
    for (const auto& h : headers) {
      n +=
          varint_size(h.name.size()) + h.name.size() + varint_size(h.value.size()) + h.value.size();
    }
  }
  return n;
}

void encode_value(char* out, std::string_view payload,
                  std::span<const HeaderView> headers) noexcept {
  if (headers.empty()) {
    *out++ = static_cast<char>(kFormatPlain);
  } else {
    *out++ = static_cast<char>(kFormatHeaders);
    out = put_varint(out, headers.size());
    for (const auto& h : headers) {
      out = put_varint(out, h.name.size());
      if (!h.name.empty()) std::memcpy(out, h.name.data(), h.name.size());
      out += h.name.size();
      out = put_varint(out, h.value.size());
      if (!h.value.empty()) std::memcpy(out, h.value.data(), h.value.size());
      out += h.value.size();
    }
  }
  if (!payload.empty()) std::memcpy(out, payload.data(), payload.size());
}

bool decode_value(std::string_view value, std::vector<HeaderView>& headers, DecodedValue* out) {
  if (value.empty()) return false;
  const char* p = value.data() + 1;
  const char* const end = value.data() + value.size();
  switch (static_cast<std::uint8_t>(value[0])) {
    case kFormatPlain:
      *out = DecodedValue{std::string_view(p, static_cast<std::size_t>(end - p)), 0};
      return true;
    case kFormatHeaders: {
      std::uint64_t count = 0;
      if (!get_varint(&p, end, &count)) return false;
      // Each header takes at least two bytes: a count beyond that is corrupt.
      if (count > static_cast<std::uint64_t>(end - p) / 2) return false;
      for (std::uint64_t i = 0; i < count; ++i) {
        std::uint64_t len = 0;
        if (!get_varint(&p, end, &len) || len > static_cast<std::uint64_t>(end - p)) return false;
        const std::string_view name(p, len);
        p += len;
        if (!get_varint(&p, end, &len) || len > static_cast<std::uint64_t>(end - p)) return false;
        headers.push_back(HeaderView{name, std::string_view(p, len)});
        p += len;
      }
      *out = DecodedValue{std::string_view(p, static_cast<std::size_t>(end - p)),
                          static_cast<std::size_t>(count)};
      return true;
    }
    default:
      return false;
  }
}

std::string stream_key(std::string_view name) {
  std::string k(kStreamPrefix);
  k += name;
  return k;
}

std::string sealed_key(std::string_view cf_name) {
  std::string k(kSealedPrefix);
  k += cf_name;
  return k;
}

std::string digest_key(std::string_view cf_name, std::uint32_t stream_id, std::uint32_t partition) {
  std::string k(kDigestPrefix);
  k += cf_name;
  k += '/';
  k += std::to_string(stream_id);
  k += '/';
  k += std::to_string(partition);
  return k;
}

std::string meta_key(std::string_view name) {
  std::string k(kMetaPrefix);
  k += name;
  return k;
}

std::string encode_digest(const Digest& d) {
  std::string v(16, '\0');
  put_u64_be(v.data(), d.count);
  put_u64_be(v.data() + 8, d.xor_hash);
  return v;
}

std::optional<Digest> decode_digest(std::string_view value) {
  if (value.size() != 16) return std::nullopt;
  return Digest{get_u64_be(value.data()), get_u64_be(value.data() + 8)};
}

std::uint64_t key_hash(const char* key16) noexcept { return XXH64(key16, Key::kSize, 0); }

std::string hint_target_prefix(std::string_view target) {
  std::string out;
  out.reserve(1 + target.size());
  out.push_back(static_cast<char>(target.size()));
  out.append(target);
  return out;
}

std::string hint_key(std::string_view target, std::string_view stream, std::uint32_t partition,
                     const char* key16) {
  std::string out = hint_target_prefix(target);
  out.reserve(out.size() + 2 + stream.size() + 4 + Key::kSize);
  out.push_back(static_cast<char>(stream.size() >> 8));
  out.push_back(static_cast<char>(stream.size()));
  out.append(stream);
  char p[4];
  put_u32_be(p, partition);
  out.append(p, 4);
  out.append(key16, Key::kSize);
  return out;
}

std::optional<HintKey> parse_hint_key(std::string_view key) {
  HintKey h;
  if (key.empty()) return std::nullopt;
  const std::size_t target_size = static_cast<unsigned char>(key[0]);
  if (key.size() < 1 + target_size + 2) return std::nullopt;
  h.target = key.substr(1, target_size);
  const char* s = key.data() + 1 + target_size;
  const std::size_t stream_size =
      (std::size_t{static_cast<unsigned char>(s[0])} << 8) | static_cast<unsigned char>(s[1]);
  const std::size_t rest = 1 + target_size + 2;
  if (key.size() != rest + stream_size + 4 + Key::kSize) return std::nullopt;
  h.stream = key.substr(rest, stream_size);
  h.partition = get_u32_be(key.data() + rest + stream_size);
  h.key16 = key.data() + rest + stream_size + 4;
  return h;
}

}  // namespace alldata::storage::layout
