// A broker's cluster membership: the membership protocol on UDP and TCP (membership/), the
// view the rest of the broker reads (membership/cluster_view.h), replica writes over the
// peer protocol, the replicating coordinator, and hinted handoff. Exists only when the
// broker runs with --gossip-listen; otherwise the broker is a single node with the
// LocalCoordinator.
//
// Executors: membership, the peer client and hinted handoff run on the cluster's own
// executor (one thread, owned by the broker). The coordinator runs on the calling session's
// executor and hops to the cluster executor only for peer I/O; it reads the cluster through
// immutable views.
#pragma once

#include "alldata/broker/coordinator.h"
#include "alldata/broker/options.h"
#include "alldata/protocol/error.h"
#include "alldata/storage/event_store.h"
#include "membership/cluster_view.h"
#include "repair/repairer.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace alldata::broker {

class Cluster {
 public:
  // Joins the cluster: binds the membership port (UDP and TCP), publishes this broker's
  // addresses, zone, region, cluster settings and lifecycle (the one kept in the store, or
  // joining for a new broker), starts the protocol and hinted handoff. Borrows `store`,
  // `storage_pool` and `log`; all must outlive the cluster. Call before `executor` runs.
  static Result<std::unique_ptr<Cluster>> start(const BrokerOptions& options, const std::string& node_id,
                                                const std::string& client_address,
                                                const std::string& peer_address, storage::EventStore& store,
                                                boost::asio::any_io_executor executor,
                                                boost::asio::thread_pool& storage_pool,
                                                std::shared_ptr<spdlog::logger> log);
  virtual ~Cluster() = default;

  virtual Coordinator& coordinator() = 0;
  // The latest view of the cluster (this broker first). Thread-safe.
  virtual std::shared_ptr<const ClusterView> view() const = 0;
  virtual std::string gossip_address() const = 0;
  // Replica writes started by the coordinator and not finished (some go on after the
  // answer). Thread-safe.
  virtual std::size_t writes_in_flight() const = 0;
  // The cluster's completeness watermark (ms): the minimum over live owners of the time
  // below which each holds no pending hint and no replication in flight. 0 while unknown.
  // Thread-safe.
  virtual std::uint64_t watermark_ms() const = 0;
  // The replica set (node ids, preference order) of each partition of `stream`, as
  // placement computes it from the current view. Thread-safe.
  virtual std::vector<std::vector<std::string>> replica_sets(std::string_view stream) const = 0;
  // One anti-entropy run over `scope` (see repair/repairer.h); completes on the caller's
  // executor. Runs after one already in progress.
  virtual boost::asio::awaitable<repair::RepairSummary> repair(const repair::RepairScope& scope) = 0;
  // Removes member `node_id` for good (Membership::remove); completes on the caller's
  // executor. Errors: kBadRequest (this broker's own id, an unknown one).
  virtual boost::asio::awaitable<Status> remove_member(const std::string& node_id) = 0;
  // Starts this broker's departure (it must be `node_id`): leaving, push its partitions to
  // their new owners (Repairer::push_to_future_owners), deliver its hints, left, then the
  // exit handler. Completes on the caller's executor once leaving is published (at once
  // when it already is). Errors: kBadRequest (another broker's id; this broker is still
  // joining), kNotAllowed (it left).
  virtual boost::asio::awaitable<Status> decommission(const std::string& node_id) = 0;
  // Called once, on the cluster executor, when this broker has left the cluster after a
  // decommission: the process should stop. Set before the executor runs.
  virtual void on_left(std::function<void()> fn) = 0;
  // Stops membership, handoff, repair and peer connections. Call on the cluster executor's thread;
  // the executor must run until the returned cleanup is done.
  virtual void stop() = 0;
};

}  // namespace alldata::broker
