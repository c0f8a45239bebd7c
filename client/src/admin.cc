#include "alldata/client/admin.h"

#include "alldata/protocol/wire.h"
#include "broker_connection.h"

namespace alldata::client {

using detail::BrokerConnection;
using detail::RetryBudget;

class Admin::Impl {
 public:
  explicit Impl(ClientConfig config) : conn_(std::move(config)) {}

  Status connect() {
    RetryBudget budget(conn_.config().retry_timeout);
    for (;;) {
      auto ok = conn_.connect();
      if (ok || !is_retriable(ok.error().code) || !budget.wait_before_retry()) return ok;
    }
  }

  Result<ClusterMetadata> metadata(bool include_streams) {
    RetryBudget budget(conn_.config().retry_timeout);
    for (;;) {
      auto r = attempt(include_streams);
      if (r) return r;
      if (detail::breaks_connection(r.error().code)) conn_.drop();
      if (!is_retriable(r.error().code) || !budget.wait_before_retry()) return r;
    }
  }

  const BrokerInfo& broker() const { return conn_.info(); }

 private:
  Result<ClusterMetadata> attempt(bool include_streams) {
    if (auto ok = conn_.connect(); !ok) return ok.error();
    const std::uint64_t id = conn_.next_id();
    std::string frame;
    {
      capnp::MallocMessageBuilder message(64);
      auto request = message.initRoot<wire::Request>();
      request.setCorrelationId(id);
      request.initMetadata().setStreams(include_streams);
      protocol::append_frame(message, frame);
    }
    if (auto ok = conn_.write(frame); !ok) return ok.error();
    for (;;) {
      auto answer = conn_.read();
      if (!answer) return answer.error();
      const std::string& address = conn_.info().address;
      bool stale = false;
      auto r = detail::with_response(*answer, address,
                                     [&](wire::Response::Reader r) -> Result<ClusterMetadata> {
        if (r.getCorrelationId() != id) {
          stale = true;
          return ClusterMetadata{};
        }
        if (r.getError() != wire::ErrorCode::OK) {
          return detail::broker_error(r.getError(), protocol::view(r.getMessage()), address);
        }
        if (!r.isMetadata()) {
          return detail::protocol_error("answer to metadata carries no result", address);
        }
        auto m = r.getMetadata();
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
          mi.phi = member.getPhi();
          mi.pending_hints = member.getPendingHints();
          out.members.push_back(std::move(mi));
        }
        for (auto s : m.getStreams()) out.streams.emplace_back(protocol::view(s));
        out.watermark_ms = m.getWatermarkMs();
        out.version = std::string(protocol::view(m.getVersion()));
        out.sync = m.getSync();
        return out;
      });
      if (!stale) return r;
    }
  }

  BrokerConnection conn_;
};

Result<std::unique_ptr<Admin>> Admin::connect(ClientConfig config) {
  if (auto ok = BrokerConnection::check_bootstrap(config); !ok) return ok.error();
  auto impl = std::make_unique<Impl>(std::move(config));
  if (auto ok = impl->connect(); !ok) return ok.error();
  return std::unique_ptr<Admin>(new Admin(std::move(impl)));
}

Admin::Admin(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Admin::~Admin() = default;

Result<ClusterMetadata> Admin::metadata(bool include_streams) {
  return impl_->metadata(include_streams);
}

const BrokerInfo& Admin::broker() const { return impl_->broker(); }

}  // namespace alldata::client
