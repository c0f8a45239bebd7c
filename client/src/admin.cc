#include "alldata/client/admin.h"

#include "alldata/protocol/wire.h"
#include "broker_connection.h"
#include "cluster_metadata.h"

#include <algorithm>
#include <thread>

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

  Result<ClusterMetadata> metadata(bool include_streams, std::string_view stream) {
    RetryBudget budget(conn_.config().retry_timeout);
    for (;;) {
      auto r = detail::request_metadata(conn_, include_streams, stream);
      if (r) return r;
      if (detail::breaks_connection(r.error().code)) conn_.drop();
      if (!is_retriable(r.error().code) || !budget.wait_before_retry()) return r;
    }
  }

  Result<RepairReport> repair(std::string_view stream, std::uint64_t from_ms, std::uint64_t to_ms) {
    auto r = detail::request_once<RepairReport>(
        conn_,
        [&](wire::Request::Builder request) {
          auto repair = request.initRepair();
          repair.setStream(protocol::text(stream));
          repair.setFromMs(from_ms);
          repair.setToMs(to_ms);
        },
        [](wire::Response::Reader resp, const std::string& address) -> Result<RepairReport> {
          if (!resp.isRepair()) {
            return detail::protocol_error("answer to repair carries no result", address);
          }
          return decode_repair(resp.getRepair());
        });
    if (!r && detail::breaks_connection(r.error().code)) conn_.drop();
    return r;
  }

  Status remove_member(std::string_view node_id) {
    return request_without_result([&](wire::Request::Builder request) {
      request.initRemoveMember().setNodeId(protocol::text(node_id));
    });
  }

  Status decommission(std::string_view node_id) {
    return request_without_result([&](wire::Request::Builder request) {
      request.initDecommission().setNodeId(protocol::text(node_id));
    });
  }

  const BrokerInfo& broker() const { return conn_.info(); }

 private:
  // One request answered with ok and no result, on the connected broker (not retried
  // elsewhere: the request names a member, and the broker reached decides).
  template <class Build>
  Status request_without_result(Build&& build) {
    auto r = detail::request_once<bool>(
        conn_, std::forward<Build>(build),
        [](wire::Response::Reader, const std::string&) -> Result<bool> { return true; });
    if (!r) {
      if (detail::breaks_connection(r.error().code)) conn_.drop();
      return r.error();
    }
    return {};
  }

  static RepairReport decode_repair(wire::RepairResult::Reader r) {
    RepairReport out;
    out.partitions = r.getPartitions();
    out.pairs = r.getPairs();
    out.pairs_failed = r.getPairsFailed();
    out.ranges_compared = r.getRangesCompared();
    out.ranges_differed = r.getRangesDiffered();
    out.keys_listed = r.getKeysListed();
    out.events_received = r.getEventsReceived();
    out.events_sent = r.getEventsSent();
    out.bytes_received = r.getBytesReceived();
    out.bytes_sent = r.getBytesSent();
    out.bytes_exchanged = r.getBytesExchanged();
    out.seconds = r.getSeconds();
    for (auto e : r.getErrors()) out.errors.emplace_back(protocol::view(e));
    return out;
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

Result<ClusterMetadata> Admin::metadata(bool include_streams, std::string_view stream) {
  return impl_->metadata(include_streams, stream);
}

Result<RepairReport> Admin::repair(std::string_view stream, std::uint64_t from_ms,
                                   std::uint64_t to_ms) {
  return impl_->repair(stream, from_ms, to_ms);
}

Status Admin::remove_member(std::string_view node_id) { return impl_->remove_member(node_id); }

Status Admin::decommission(std::string_view node_id) { return impl_->decommission(node_id); }

Result<std::uint64_t> Admin::wait_complete(std::uint64_t to_ms, std::chrono::milliseconds timeout,
                                           const std::function<void(std::uint64_t)>& progress) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto m = impl_->metadata(false, {});
    if (!m) return m.error();
    if (m->membership_status.empty()) return std::uint64_t{0};  // a single broker
    if (progress) progress(m->watermark_ms);
    if (m->watermark_ms >= to_ms) return m->watermark_ms;
    const auto now = Clock::now();
    if (now >= deadline) {
      std::string behind = m->watermark_ms == 0
                               ? std::string("not known yet (a member has not published one)")
                               : "at " + format_time_ms(m->watermark_ms) + ", " +
                                     std::to_string((to_ms - m->watermark_ms + 999) / 1000) +
                                     " s short";
      return Error(ErrorCode::kTimeout, "the cluster is not complete up to " + format_time_ms(to_ms) +
                                            " after " + std::to_string(timeout.count() / 1000) +
                                            " s: its watermark is " + behind);
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::seconds(1), deadline - now));
  }
}

const BrokerInfo& Admin::broker() const { return impl_->broker(); }

}  // namespace alldata::client
