// Network addresses as users and brokers write them: "host:port", with IPv6 hosts in
// brackets ("[::1]:7400"). One parser and one formatter for the client, the broker's
// listeners, its peer connections and gossip, so they all accept and print the same forms.
#pragma once

#include "alldata/protocol/error.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace alldata {

struct HostPort {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 0;
};

// Parses "host:port" or "[v6]:port". The port is 1..65535, or 0..65535 with
// `allow_port_zero` (a listener asking the OS for a free port). kBadRequest naming the
// address and the accepted forms otherwise.
Result<HostPort> parse_host_port(std::string_view text, bool allow_port_zero = false);

// "host:port", with brackets around an IPv6 host.
std::string to_string(const HostPort& address);

}  // namespace alldata
