#include "cluster_metadata.h"

#include "alldata/protocol/wire.h"

namespace alldata::client::detail {

namespace {

ClusterMetadata decode(wire::MetadataResult::Reader m) {
  ClusterMetadata out;
  out.node_id = std::string(protocol::view(m.getNodeId()));
  out.partitions = m.getPartitions();
  out.replication_factor = m.getReplicationFactor();
  out.interval = std::chrono::milliseconds(m.getIntervalMs());
  for (auto member : m.getMembers()) {
    MemberInfo mi;
    mi.node_id = std::string(protocol::view(member.getNodeId()));
    mi.client_address = std::string(protocol::view(member.getClientAddress()));
    mi.peer_address = std::string(protocol::view(member.getPeerAddress()));
    mi.zone = std::string(protocol::view(member.getZone()));
    mi.region = std::string(protocol::view(member.getRegion()));
    mi.live = member.getLive();
    mi.liveness = liveness_from(static_cast<std::uint16_t>(member.getLiveness()));
    mi.lifecycle = lifecycle_from(static_cast<std::uint16_t>(member.getLifecycle()));
    mi.incarnation = member.getIncarnation();
    mi.pending_hints = member.getPendingHints();
    mi.hand_over_partitions = member.getHandOverPartitions();
    mi.hand_over_bytes = member.getHandOverBytes();
    mi.incomplete_since_ms = member.getIncompleteSinceMs();
    out.members.push_back(std::move(mi));
  }
  for (auto s : m.getStreams()) out.streams.emplace_back(protocol::view(s));
  out.watermark_ms = m.getWatermarkMs();
  out.version = std::string(protocol::view(m.getVersion()));
  out.sync = m.getSync();
  out.membership_status = std::string(protocol::view(m.getMembershipStatus()));
  // Indexed by partition whatever order the broker listed them in; partitions beyond the
  // partition count are ignored.
  if (m.hasReplicaSets() && m.getReplicaSets().size() > 0) {
    out.replica_sets.resize(out.partitions);
    for (auto set : m.getReplicaSets()) {
      if (set.getPartition() >= out.partitions) continue;
      auto& ids = out.replica_sets[set.getPartition()];
      ids.clear();
      for (auto id : set.getNodeIds()) ids.emplace_back(protocol::view(id));
    }
  }
  return out;
}

}  // namespace

Result<ClusterMetadata> request_metadata(BrokerConnection& conn, bool include_streams,
                                         std::string_view stream) {
  return request_once<ClusterMetadata>(
      conn,
      [&](wire::Request::Builder request) {
        auto metadata = request.initMetadata();
        metadata.setStreams(include_streams);
        if (!stream.empty()) metadata.setStream(protocol::text(stream));
      },
      [](wire::Response::Reader r, const std::string& address) -> Result<ClusterMetadata> {
        if (!r.isMetadata()) return protocol_error("answer to metadata carries no result", address);
        return decode(r.getMetadata());
      });
}

}  // namespace alldata::client::detail
