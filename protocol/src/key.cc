#include "alldata/protocol/key.h"

#include <charconv>
#include <chrono>
#include <cstdio>

namespace alldata {

Result<Key> Key::from_bytes(std::string_view bytes) {
  if (bytes.size() != kSize) {
    return Error(ErrorCode::kBadRequest,
                 "a key is 16 bytes, got " + std::to_string(bytes.size()));
  }
  return from_raw(reinterpret_cast<const std::uint8_t*>(bytes.data()));
}

Key Key::successor() const noexcept {
  Key k = *this;
  for (int i = kSize - 1; i >= 0; --i) {
    if (++k.bytes_[i] != 0) return k;
  }
  return max();  // wrapped: this was max()
}

std::string format_time_ms(std::uint64_t time_ms) {
  using namespace std::chrono;
  const sys_days day{floor<days>(sys_time<milliseconds>(milliseconds(time_ms)))};
  const year_month_day ymd{day};
  const auto in_day = milliseconds(time_ms) - duration_cast<milliseconds>(day.time_since_epoch());
  const auto h = duration_cast<hours>(in_day).count();
  const auto m = duration_cast<minutes>(in_day).count() % 60;
  const auto s = duration_cast<seconds>(in_day).count() % 60;
  const auto ms = in_day.count() % 1000;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<long long>(h),
                static_cast<long long>(m), static_cast<long long>(s),
                static_cast<long long>(ms));
  return buf;
}

std::string Key::to_text() const {
  char tail[32];
  std::snprintf(tail, sizeof tail, "-%05u-%016llx", static_cast<unsigned>(counter()),
                static_cast<unsigned long long>(origin()));
  return format_time_ms(time_ms()) + tail;
}

namespace {

bool parse_uint(std::string_view s, std::uint64_t& out, int base = 10) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

Error bad_time(std::string_view text) {
  return Error(ErrorCode::kBadRequest,
               "cannot read time '" + std::string(text) +
                   "': use 2026-11-28T06:29:43.123Z, 2026-11-28 or unix milliseconds");
}

}  // namespace

Result<std::uint64_t> parse_time_ms(std::string_view text) {
  std::uint64_t v = 0;
  if (parse_uint(text, v)) {
    if (v > Key::kMaxTimeMs) return bad_time(text);
    return v;
  }
  // YYYY-MM-DD[THH:MM:SS[.mmm]][Z]
  if (text.size() < 10 || text[4] != '-' || text[7] != '-') return bad_time(text);
  std::uint64_t y, mo, d, h = 0, mi = 0, s = 0, ms = 0;
  if (!parse_uint(text.substr(0, 4), y) || !parse_uint(text.substr(5, 2), mo) ||
      !parse_uint(text.substr(8, 2), d)) {
    return bad_time(text);
  }
  std::string_view rest = text.substr(10);
  if (!rest.empty() && (rest[0] == 'T' || rest[0] == ' ')) {
    if (rest.size() < 9 || rest[3] != ':' || rest[6] != ':') return bad_time(text);
    if (!parse_uint(rest.substr(1, 2), h) || !parse_uint(rest.substr(4, 2), mi) ||
        !parse_uint(rest.substr(7, 2), s)) {
      return bad_time(text);
    }
    rest = rest.substr(9);
    if (!rest.empty() && rest[0] == '.') {
      std::size_t n = 1;
      while (n < rest.size() && rest[n] >= '0' && rest[n] <= '9') ++n;
      std::string digits(rest.substr(1, n - 1));
      if (digits.empty()) return bad_time(text);
      digits.resize(3, '0');
      if (!parse_uint(digits, ms)) return bad_time(text);
      rest = rest.substr(n);
    }
  }
  if (rest == "Z" || rest == "+00:00") rest = {};
  if (!rest.empty() || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return bad_time(text);
  }
  using namespace std::chrono;
  const year_month_day ymd{year(static_cast<int>(y)), month(static_cast<unsigned>(mo)),
                           day(static_cast<unsigned>(d))};
  if (!ymd.ok() || y < 1970) return bad_time(text);
  const auto days_ms = duration_cast<milliseconds>(sys_days(ymd).time_since_epoch()).count();
  return static_cast<std::uint64_t>(days_ms) + ((h * 60 + mi) * 60 + s) * 1000 + ms;
}

Result<Key> Key::parse(std::string_view text) {
  // Full key form: <time>-<counter>-<origin hex>; the time part itself contains '-'.
  const auto last = text.rfind('-');
  if (last != std::string_view::npos && last > 0 && text.size() - last - 1 == 16) {
    const auto mid = text.rfind('-', last - 1);
    std::uint64_t counter = 0, origin = 0;
    if (mid != std::string_view::npos &&
        parse_uint(text.substr(mid + 1, last - mid - 1), counter) &&
        parse_uint(text.substr(last + 1), origin, 16) && counter <= 0xFFFF) {
      auto t = parse_time_ms(text.substr(0, mid));
      if (!t) return t.error();
      return make(*t, static_cast<std::uint16_t>(counter), origin);
    }
  }
  auto t = parse_time_ms(text);
  if (!t) {
    return Error(ErrorCode::kBadRequest,
                 "cannot read key or time '" + std::string(text) +
                     "': use a key (2026-11-28T06:29:43.123Z-00000-0123456789abcdef), "
                     "a UTC time (2026-11-28T06:29:43.123Z, 2026-11-28) or unix milliseconds");
  }
  return at_time(*t);
}

}  // namespace alldata
