// Which replicas a scan reads a partition from, and in what order (Scanner::open).
//
// A replica is *complete* for a scan ending at `to_ms` unless the cluster knows it may lack
// events from a time at or before `to_ms` on (MemberInfo::incomplete_since_ms: another
// broker holds hints for it, or a copy was stored nowhere). Order: live complete replicas
// (in preference order), then live incomplete ones (the latest incompleteness first), then
// dead ones as the last resort (gossip may be wrong). When no live replica is complete, a
// scan at consistency ONE merges every live replica of the partition, so an event held by
// any of them is returned (once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace alldata::client::detail {

struct ReplicaState {
  int node = -1;                        // the scanner's node index
  bool live = false;
  std::uint64_t incomplete_since_ms = 0;  // 0 = none known
};

struct ReplicaOrder {
  std::vector<int> candidates;     // node indices, in the order to try, each once
  std::size_t live_complete = 0;   // how many of the first ones are live and complete
  std::size_t live = 0;            // how many are live
};

// `replicas` in preference order (repeats are dropped).
ReplicaOrder order_replicas(const std::vector<ReplicaState>& replicas, std::uint64_t to_ms);

// Where to reach a member: its advertised client address, except that a wildcard host (a
// broker listening on 0.0.0.0) is replaced by the host we reached the cluster through.
std::string reachable_address(const std::string& advertised, const std::string& bootstrap);

}  // namespace alldata::client::detail
