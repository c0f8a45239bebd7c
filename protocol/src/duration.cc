#include "alldata/protocol/duration.h"

#include <cctype>
#include <charconv>
#include <string>

namespace alldata {

namespace {

Error bad(std::string_view text) {
  return Error(ErrorCode::kBadRequest,
               "cannot read duration '" + std::string(text) +
                   "': use a number with a unit (200ms, 1s, 5m, 1h, 1d) or ISO-8601 (PT1H, P1D)");
}

// Reads "<number><unit>" pairs, e.g. "1H30M" with ISO units (upper case after P/T handling).
bool read_iso(std::string_view s, bool time_part, std::uint64_t& ms) {
  while (!s.empty()) {
    std::size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == 0 || i == s.size()) return false;
    std::uint64_t n = 0;
    std::from_chars(s.data(), s.data() + i, n);
    const char u = s[i];
    std::uint64_t unit = 0;
    if (time_part) {
      unit = u == 'H' ? 3600000 : u == 'M' ? 60000 : u == 'S' ? 1000 : 0;
    } else {
      unit = u == 'D' ? 86400000 : u == 'W' ? 7 * 86400000ull : 0;
    }
    if (unit == 0) return false;
    ms += n * unit;
    s = s.substr(i + 1);
  }
  return true;
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return bad(text);
  if (text[0] == 'P') {
    std::string_view rest = text.substr(1);
    const auto t = rest.find('T');
    std::uint64_t ms = 0;
    if (!read_iso(rest.substr(0, t), false, ms)) return bad(text);
    if (t != std::string_view::npos &&
        (t + 1 == rest.size() || !read_iso(rest.substr(t + 1), true, ms))) {
      return bad(text);
    }
    if (ms == 0 && rest.empty()) return bad(text);
    return std::chrono::milliseconds(ms);
  }
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) return bad(text);
  std::uint64_t n = 0;
  std::from_chars(text.data(), text.data() + i, n);
  const std::string_view unit = text.substr(i);
  std::uint64_t mult = 0;
  if (unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m" || unit == "min") mult = 60000;
  else if (unit == "h") mult = 3600000;
  else if (unit == "d") mult = 86400000;
  else return bad(text);
  return std::chrono::milliseconds(n * mult);
}

}  // namespace alldata
