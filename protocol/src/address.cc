#include "alldata/protocol/address.h"

#include <charconv>

namespace alldata {

Result<HostPort> parse_host_port(std::string_view text, bool allow_port_zero) {
  auto bad = [&](std::string_view why) {
    return Error(ErrorCode::kBadRequest,
                 "bad address '" + std::string(text) + "': " + std::string(why) +
                     " (expected host:port, e.g. 127.0.0.1:7400 or [::1]:7400)");
  };
  HostPort hp;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    hp.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing :port");
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing :port");
    hp.host = std::string(text.substr(0, colon));
    if (hp.host.find(':') != std::string::npos) return bad("put IPv6 addresses in brackets");
    port = text.substr(colon + 1);
  }
  if (hp.host.empty()) return bad("empty host");
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() ||
      (value == 0 && !allow_port_zero) || value > 65535) {
    return bad(allow_port_zero ? "port must be 0..65535" : "port must be 1..65535");
  }
  hp.port = static_cast<std::uint16_t>(value);
  return hp;
}

std::string to_string(const HostPort& address) {
  const std::string port = std::to_string(address.port);
  return address.host.find(':') != std::string::npos ? "[" + address.host + "]:" + port
                                                     : address.host + ":" + port;
}

}  // namespace alldata
