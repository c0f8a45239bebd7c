// Host names in membership addresses, for both transports: a numeric host is used as it
// is; a name is looked up asynchronously (by the caller, a bounded number at a time) and
// remembered in a bounded cache.
#pragma once

#include "alldata/protocol/address.h"

#include <boost/asio/ip/address.hpp>

#include <map>
#include <optional>
#include <string>

namespace alldata::broker {

// The numeric address of a destination host, "localhost" included; nullopt for a name.
inline std::optional<boost::asio::ip::address> numeric_host(const std::string& host) {
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec) return std::nullopt;
  return ip;
}

template <class Endpoint>
class NameCache {
 public:
  static constexpr std::size_t kMaxLookupsInFlight = 16;
  static constexpr std::size_t kMaxCachedNames = 1024;

  // Where `to` (parsed as `hp`) is without a lookup: numeric or remembered.
  std::optional<Endpoint> known(const std::string& to, const HostPort& hp) const {
    if (auto ip = numeric_host(hp.host)) return Endpoint(*ip, hp.port);
    if (auto it = cache_.find(to); it != cache_.end()) return it->second;
    return std::nullopt;
  }
  // Starts a lookup if fewer than kMaxLookupsInFlight are under way; false otherwise.
  bool start_lookup() {
    if (in_flight_ >= kMaxLookupsInFlight) return false;
    ++in_flight_;
    return true;
  }
  // Ends a lookup, remembering its answer if it has one.
  void end_lookup(const std::string& to, std::optional<Endpoint> found) {
    --in_flight_;
    if (!found) return;
    if (cache_.size() >= kMaxCachedNames) cache_.clear();
    cache_[to] = *found;
  }

 private:
  std::map<std::string, Endpoint> cache_;
  std::size_t in_flight_ = 0;
};

}  // namespace alldata::broker
