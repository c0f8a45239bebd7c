#include "scan_plan.h"

#include "broker_connection.h"

#include <algorithm>

namespace alldata::client::detail {

ReplicaOrder order_replicas(const std::vector<ReplicaState>& replicas, std::uint64_t to_ms) {
  std::vector<ReplicaState> complete, incomplete, dead;
  std::vector<int> seen;
  for (const ReplicaState& r : replicas) {
    if (std::find(seen.begin(), seen.end(), r.node) != seen.end()) continue;
    seen.push_back(r.node);
    if (!r.live) {
      dead.push_back(r);
    } else if (r.incomplete_since_ms == 0 || r.incomplete_since_ms > to_ms) {
      complete.push_back(r);
    } else {
      incomplete.push_back(r);
    }
  }
  // Lacking events only from later on = less to lack in the range.
  std::stable_sort(incomplete.begin(), incomplete.end(), [](const ReplicaState& a, const ReplicaState& b) {
    return a.incomplete_since_ms > b.incomplete_since_ms;
  });
  ReplicaOrder out;
  out.live_complete = complete.size();
  out.live = complete.size() + incomplete.size();
  for (const auto* part : {&complete, &incomplete, &dead}) {
    for (const ReplicaState& r : *part) out.candidates.push_back(r.node);
  }
  return out;
}

namespace {

bool unspecified_host(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "0:0:0:0:0:0:0:0";
}

}  // namespace

std::string reachable_address(const std::string& advertised, const std::string& bootstrap) {
  auto hp = parse_host_port(advertised);
  if (!hp) return advertised;  // fails with a clear message on connect
  if (!unspecified_host(hp->host)) return advertised;
  auto via = parse_host_port(bootstrap);
  if (!via) return advertised;
  return to_string(HostPort{via->host, hp->port});
}

}  // namespace alldata::client::detail
