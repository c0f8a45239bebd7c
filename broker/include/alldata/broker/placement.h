// Where the events of one (stream, partition) live. Every broker computes replica sets from
// its own view of the members, with no coordination, so placement is a pure function of
// (stream, partition, members, policy): two brokers with the same view and the same policy
// compute the same replica set, whichever of them coordinates a write. No I/O here.
//
// Rendezvous (highest-random-weight) hashing: each member gets the weight
// rendezvous_weight(stream, partition, node_id) and members are taken in descending weight
// (ties, which need a 64-bit collision, by ascending node_id). Adding or removing a member
// only moves the partitions whose replica set contains it.
//
// The policy of the original AllData coordinator (`otherZoneReplicas` in distinct other
// zones, `otherRegionReplicas` in distinct other regions, the rest in the local zone) was
// relative to the coordinating broker. Here that would make the replica set depend on who
// coordinates, and scans would not find the data, so the policy is relative to the *home*
// of the partition: the member with the highest weight. The replica set is built as:
//
//   1. the home;
//   2. up to `other_zone_replicas` members of other zones of the home's region, each zone
//      once (first member in weight order per zone);
//   3. up to `other_region_replicas` members of regions other than the home's, each region
//      once;
//   4. fallbacks, as the original: a zone shortfall (the region has too few other zones)
//      is taken from further distinct other regions, a region shortfall from further
//      distinct other zones of the home's region;
//   5. members of the home's zone, in weight order, until `replication_factor`;
//   6. any remaining member, in weight order, until `replication_factor`.
//
// So "no zone peers -> regions -> local zone -> any" and "no region peers -> zones -> local
// zone -> any", as in the original. With fewer members than `replication_factor` the
// replica set is every member; the coordinator then reports kNotEnoughReplicas for levels
// that need more. Liveness does not move replicas (a dead owner keeps its partitions and is
// written through hints), so `MemberInfo::live` is ignored by placement.
//
// After the replica set, the preference list goes on with every other member: the failover
// ("get it done") order, in which a replacement for an unreachable replica is chosen to hold
// a hint. It is the only part that depends on the coordinator: members of the coordinator's
// zone first (a hint on or near the coordinator is the cheapest copy), then of its region,
// then the rest, each group in weight order.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::broker {

// One broker as the local membership view knows it.
struct MemberInfo {
  std::string node_id;
  std::string zone;
  std::string region;
  bool live = true;  // per the failure detector; placement ignores it (see above)

  friend bool operator==(const MemberInfo&, const MemberInfo&) = default;
};

// Cluster-wide placement settings; every broker must use the same ones.
struct PlacementPolicy {
  std::uint32_t replication_factor = 3;
  std::uint32_t other_zone_replicas = 0;    // in distinct other zones of the home's region
  std::uint32_t other_region_replicas = 0;  // in distinct regions other than the home's
};

// The rendezvous weight of `node_id` for (stream, partition): XXH64, seed 0, over the bytes
//
//   u32 big-endian byte length of stream | stream bytes | u32 big-endian partition | node_id bytes
//
// Other implementations (SDKs computing replica sets) must hash exactly these bytes.
std::uint64_t rendezvous_weight(std::string_view stream, std::uint32_t partition,
                                std::string_view node_id) noexcept;

// Every member's node id for (stream, partition), in the order described above: the first
// min(replication_factor, members.size()) are the replica set (independent of the
// coordinator), the rest the failover order (members of `coordinator_zone` and then of
// `coordinator_region` first). Members with duplicate node ids are listed once (the first
// one wins). Borrows nothing beyond the call.
std::vector<std::string> preference_list(std::string_view stream, std::uint32_t partition,
                                         std::span<const MemberInfo> members,
                                         const PlacementPolicy& policy,
                                         std::string_view coordinator_zone,
                                         std::string_view coordinator_region);

// Just the replica set: the first min(replication_factor, members) of preference_list().
std::vector<std::string> replica_set(std::string_view stream, std::uint32_t partition,
                                     std::span<const MemberInfo> members,
                                     const PlacementPolicy& policy);

}  // namespace alldata::broker
