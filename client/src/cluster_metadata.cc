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
  if (auto ok = conn.connect(); !ok) return ok.error();
  const std::uint64_t id = conn.next_id();
  std::string frame;
  {
    capnp::MallocMessageBuilder message(64);
    auto request = message.initRoot<wire::Request>();
    request.setCorrelationId(id);
    auto metadata = request.initMetadata();
    metadata.setStreams(include_streams);
    if (!stream.empty()) metadata.setStream(protocol::text(stream));
    protocol::append_frame(message, frame);
  }
  if (auto ok = conn.write(frame); !ok) return ok.error();
  for (;;) {
    auto answer = conn.read();
    if (!answer) return answer.error();
    const std::string address = conn.info().address;
    bool stale = false;
    auto r = with_response(*answer, address,
                           [&](wire::Response::Reader r) -> Result<ClusterMetadata> {
      if (r.getCorrelationId() != id) {
        stale = true;
        return ClusterMetadata{};
      }
      if (r.getError() != wire::ErrorCode::OK) {
        return broker_error(r.getError(), protocol::view(r.getMessage()), address);
      }
      if (!r.isMetadata()) return protocol_error("answer to metadata carries no result", address);
      return decode(r.getMetadata());
    });
    if (!stale) return r;
  }
}

}  // namespace alldata::client::detail
