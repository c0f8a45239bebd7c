// Small networking helpers shared by the broker's listeners, sessions, peer client and
// gossip transport: one way to turn "host:port" into an IP endpoint and back, and the
// timer-as-condition-variable wait the single-threaded coroutines use.
#pragma once

#include "alldata/protocol/address.h"
#include "alldata/protocol/error.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <string>
#include <string_view>

namespace alldata::broker {

// The numeric IP and port of `text` ("127.0.0.1:7400", "[::1]:0"; "localhost" means
// 127.0.0.1). Host names are not resolved here. kBadRequest naming `what` otherwise.
struct IpPort {
  boost::asio::ip::address ip;
  std::uint16_t port = 0;
};
inline Result<IpPort> parse_ip_port(std::string_view text, bool allow_port_zero, std::string_view what) {
  auto hp = parse_host_port(text, allow_port_zero);
  if (!hp) return Error(ErrorCode::kBadRequest, std::string(what) + ": " + hp.error().message);
  if (hp->host == "localhost") hp->host = "127.0.0.1";
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(hp->host, ec);
  if (ec) {
    return Error(ErrorCode::kBadRequest, std::string(what) + " '" + std::string(text) +
                                             "': '" + hp->host + "' is not an IP address");
  }
  return IpPort{ip, hp->port};
}

// "127.0.0.1:7400" or "[::1]:7400"; an IPv4-mapped IPv6 address prints as IPv4.
inline std::string endpoint_text(const boost::asio::ip::address& ip, std::uint16_t port) {
  std::string host;
  if (ip.is_v6() && ip.to_v6().is_v4_mapped()) {
    host = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, ip.to_v6()).to_string();
  } else {
    host = ip.to_string();
  }
  return to_string(HostPort{host, port});
}

// Waits until `t` is cancelled (the notify of a timer used as a condition variable). A
// waiter must re-check its condition after every wake-up, and a timer has one waiter.
inline boost::asio::awaitable<void> wait_on(boost::asio::steady_timer& t) {
  t.expires_at(boost::asio::steady_timer::time_point::max());
  co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

}  // namespace alldata::broker
