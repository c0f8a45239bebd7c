// Rendezvous placement with the original AllData zone/region policy; see placement.h for
// the rules and why they are relative to the partition's home, not the coordinator.
#include "alldata/broker/placement.h"

#include "alldata/protocol/partitioner.h"

#include <algorithm>
#include <set>
#include <utility>

namespace alldata::broker {

namespace {

void put_u32_be(std::string& out, std::uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

// Members in descending rendezvous weight, duplicates of a node id dropped.
std::vector<const MemberInfo*> by_weight(std::string_view stream, std::uint32_t partition,
                                         std::span<const MemberInfo> members) {
  std::vector<std::pair<std::uint64_t, const MemberInfo*>> weighted;
  weighted.reserve(members.size());
  std::set<std::string_view> seen;
  for (const auto& m : members) {
    if (!seen.insert(m.node_id).second) continue;
    weighted.emplace_back(rendezvous_weight(stream, partition, m.node_id), &m);
  }
  std::sort(weighted.begin(), weighted.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return a.second->node_id < b.second->node_id;
  });
  std::vector<const MemberInfo*> out;
  out.reserve(weighted.size());
  for (const auto& [w, m] : weighted) out.push_back(m);
  return out;
}

}  // namespace

std::uint64_t rendezvous_weight(std::string_view stream, std::uint32_t partition,
                                std::string_view node_id) noexcept {
  std::string bytes;
  bytes.reserve(8 + stream.size() + node_id.size());
  put_u32_be(bytes, static_cast<std::uint32_t>(stream.size()));
  bytes.append(stream);
  put_u32_be(bytes, partition);
  bytes.append(node_id);
  return protocol::hash64(bytes);
}

std::vector<std::string> preference_list(std::string_view stream, std::uint32_t partition,
                                         std::span<const MemberInfo> members,
                                         const PlacementPolicy& policy,
                                         std::string_view coordinator_zone,
                                         std::string_view coordinator_region) {
  const std::vector<const MemberInfo*> order = by_weight(stream, partition, members);
  std::vector<std::string> out;
  if (order.empty()) return out;
  out.reserve(order.size());

  const std::size_t rf = std::min<std::size_t>(policy.replication_factor, order.size());
  std::vector<bool> taken(order.size(), false);
  auto take = [&](std::size_t i) {
    taken[i] = true;
    out.push_back(order[i]->node_id);
  };

  const MemberInfo& home = *order[0];
  if (rf > 0) take(0);
  auto same_zone = [&](const MemberInfo& m) {
    return m.region == home.region && m.zone == home.zone;
  };
  std::set<std::string_view> used_zones{home.zone};        // zones of the home's region
  std::set<std::string_view> used_regions{home.region};

  // Picks up to `want` members, each from a zone of the home's region not used yet.
  auto pick_other_zones = [&](std::size_t want) {
    std::size_t got = 0;
    for (std::size_t i = 0; i < order.size() && got < want && out.size() < rf; ++i) {
      const MemberInfo& m = *order[i];
      if (taken[i] || m.region != home.region || used_zones.count(m.zone)) continue;
      used_zones.insert(m.zone);
      take(i);
      ++got;
    }
    return got;
  };
  // Picks up to `want` members, each from a region not used yet.
  auto pick_other_regions = [&](std::size_t want) {
    std::size_t got = 0;
    for (std::size_t i = 0; i < order.size() && got < want && out.size() < rf; ++i) {
      const MemberInfo& m = *order[i];
      if (taken[i] || used_regions.count(m.region)) continue;
      used_regions.insert(m.region);
      take(i);
      ++got;
    }
    return got;
  };

  const std::size_t zone_got = pick_other_zones(policy.other_zone_replicas);
  const std::size_t region_got = pick_other_regions(policy.other_region_replicas);
  // The original's fallbacks: no (more) zone peers -> regions; no (more) region peers -> zones.
  pick_other_regions(policy.other_zone_replicas - zone_got);
  pick_other_zones(policy.other_region_replicas - region_got);
  // The rest in the home's zone, then anywhere.
  for (std::size_t i = 0; i < order.size() && out.size() < rf; ++i) {
    if (!taken[i] && same_zone(*order[i])) take(i);
  }
  for (std::size_t i = 0; i < order.size() && out.size() < rf; ++i) {
    if (!taken[i]) take(i);
  }

  // Failover order: the coordinator's zone, then its region, then everyone else.
  auto rank = [&](const MemberInfo& m) {
    if (m.region == coordinator_region && m.zone == coordinator_zone) return 0;
    if (m.region == coordinator_region) return 1;
    return 2;
  };
  for (int r = 0; r <= 2; ++r) {
    for (std::size_t i = 0; i < order.size(); ++i) {
      if (!taken[i] && rank(*order[i]) == r) take(i);
    }
  }
  return out;
}

std::vector<std::string> replica_set(std::string_view stream, std::uint32_t partition,
                                     std::span<const MemberInfo> members,
                                     const PlacementPolicy& policy) {
  std::vector<std::string> list = preference_list(stream, partition, members, policy, {}, {});
  if (list.size() > policy.replication_factor) list.resize(policy.replication_factor);
  return list;
}

}  // namespace alldata::broker
