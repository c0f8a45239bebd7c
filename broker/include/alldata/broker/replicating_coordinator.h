// The cluster's coordinator: any broker coordinates a produce by writing the batch to the
// replica set of its (stream, partition) in parallel, answering by commit level, and
// replacing unreachable replicas by hints on the next brokers of the preference order
// ("get it done", after the original AllData coordinator, plus timeouts and hints).
//
// It knows the cluster only through two small interfaces, so it runs without a network in
// unit tests: `ViewSource` (an immutable snapshot of the members, their liveness and the
// cached placement of every stream: membership/cluster_view.h) and `ReplicaWriter` (store
// a batch on a node, as a replica or as a hint for another node). Placing a batch costs one
// snapshot, one cache lookup and the liveness of the nodes it writes to, whatever the size
// of the cluster.
//
// Commit levels (the contract of alldata/protocol/commit_level.h):
//   ANY     one durable copy anywhere: a replica's ack or a stored hint.
//   ONE     1 replica of the replica set acknowledged.
//   QUORUM  floor(RF/2)+1 replicas acknowledged.
//   ALL     RF replicas acknowledged.
// A hint counts for ANY only: a hinted copy is durable but not yet where scans look, and a
// QUORUM write must overlap a QUORUM scan (R + W > RF). Hints still make every write land
// on as many brokers as the replica set has, so nothing waits for the owner to come back
// except readability, which the completeness watermark accounts for.
#pragma once

#include "alldata/broker/coordinator.h"
#include "alldata/broker/placement.h"
#include "membership/cluster_view.h"

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace alldata::broker {

// Stores a batch on one node: the local broker or a peer (over the peer protocol).
class ReplicaWriter {
 public:
  virtual ~ReplicaWriter() = default;
  // Writes `batch` on `node_id` and completes, on the awaiting coroutine's executor, once
  // the node has stored it durably (per its sync setting) or failed. With `hint_for` set,
  // the node stores the events as a hint for that intended owner (hinted handoff delivers
  // them later) instead of as its own replica. `batch` is borrowed until completion.
  // The coordinator gives up waiting after its replica timeout but never cancels the
  // operation: it must complete on its own (e.g. by the peer connection's deadline).
  // Errors are values (never thrown); any error means "not stored there".
  virtual boost::asio::awaitable<Status> write(const std::string& node_id,
                                               const storage::EventBatch& batch,
                                               std::optional<std::string> hint_for) = 0;
};

struct ReplicationOptions {
  PlacementPolicy policy;  // must be the views' policy (its replication factor sets the levels)
  // How long one write to one node may take before the coordinator treats that node as
  // failed and writes a hint to the next broker in the preference order instead. The
  // produce's own timeout bounds the answer; this bounds each attempt (the smaller wins).
  std::chrono::milliseconds replica_timeout = std::chrono::seconds(5);
  // Receives warnings (failed replicas, lost copies); must not be null.
  std::shared_ptr<spdlog::logger> logger;
  // Called (on the write's executor) when the copy of `owner` of `batch` was stored nowhere:
  // neither the owner nor any broker holding a hint for it took it, or a write to an
  // incoming owner (ClusterView::incoming_replicas) failed. Only repair restores it. May
  // be empty.
  std::function<void(const std::string& owner, const storage::EventBatch& batch)> on_lost_copy;
};

// Lifecycle and executors: produce() runs on the awaiting coroutine's executor, which must
// not run two handlers at once (an io_context run by one thread, or a strand); every write
// it starts, including those that go on after the answer, runs there too. No threads.
// Borrows `views` and `writer`: both must outlive the coordinator and every write it
// started (writes_in_flight() == 0, or the executor stopped for good).
class ReplicatingCoordinator final : public Coordinator {
 public:
  ReplicatingCoordinator(const ViewSource& views, ReplicaWriter& writer, ReplicationOptions options);

  // Writes `batch` to the replica set of (batch.stream(), batch.partition()) and answers as
  // soon as `level` is met, or is certain not to be met, or `timeout` passes; at most once.
  // Writes still running after the answer go on in the background and their outcome is
  // logged. Each node gets at most one write per produce (the coordinator may also keep a
  // hint when no other broker is left); every copy has the same keys. On success,
  // ProduceOutcome::replicas counts replica acks (0 for ANY met by a hint alone).
  // Errors:
  //   kNotReady           at once, when this broker does not coordinate writes yet (its
  //                       membership view is incomplete, or it is joining).
  //   kNotEnoughReplicas  at once, without writing, when fewer live replicas (any live
  //                       member for ANY) exist than the level needs, or the cluster is
  //                       smaller than the level needs; after writing, when the level can
  //                       no longer be met; the message says how many replicas were
  //                       created and how many have NOT been created.
  //   kTimeout            the level was not met within `timeout`; copies may still land:
  //                       a retry with the same keys is safe.
  boost::asio::awaitable<Result<ProduceOutcome>> produce(
      storage::EventBatch batch, CommitLevel level, std::chrono::milliseconds timeout) override;

  std::uint32_t replication_factor() const override {
    return options_.policy.replication_factor;
  }

  // Node writes started and not yet finished (including those after an answer).
  std::size_t writes_in_flight() const noexcept { return counters_->in_flight.load(); }
  // Copies that could not be stored anywhere (every candidate failed) since construction.
  std::uint64_t copies_lost() const noexcept { return counters_->lost.load(); }
  // The smallest event time (ms) of any produce whose copies are not all settled (stored,
  // hinted or lost), including those still writing after their answer; nullopt if none.
  // For the completeness watermark. Thread-safe.
  std::optional<std::uint64_t> oldest_in_flight_ms() const;

 private:
  struct Counters {
    std::atomic<std::size_t> in_flight{0};
    std::atomic<std::uint64_t> lost{0};
    std::mutex mu;
    std::multiset<std::uint64_t> unsettled_min_ms;  // guarded by mu; one entry per produce
  };
  struct Write;

  static boost::asio::awaitable<void> place(std::shared_ptr<Write> w, std::size_t index);
  // Writes the batch to a joining future owner; the outcome only logs.
  static boost::asio::awaitable<void> mirror(std::shared_ptr<Write> w, std::string node);
  static boost::asio::awaitable<Status> attempt(std::shared_ptr<Write> w, std::string node,
                                                std::optional<std::string> hint_for);

  const ViewSource& views_;
  ReplicaWriter& writer_;
  ReplicationOptions options_;
  std::shared_ptr<Counters> counters_ = std::make_shared<Counters>();
};

}  // namespace alldata::broker
