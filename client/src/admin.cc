#include "alldata/client/admin.h"

#include "alldata/protocol/wire.h"
#include "broker_connection.h"
#include "cluster_metadata.h"

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

  const BrokerInfo& broker() const { return conn_.info(); }

 private:
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

const BrokerInfo& Admin::broker() const { return impl_->broker(); }

}  // namespace alldata::client
