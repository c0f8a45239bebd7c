// Admin asks a broker about the cluster: members, partitioning, the completeness
// watermark, streams. It is the library side of `alldata cluster`.
#pragma once

#include "alldata/client/types.h"
#include "alldata/protocol/error.h"
#include "alldata/protocol/member_state.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::client {

// What the answering broker's failure detector says of a member, and the member's role
// (protocol/README.md, "Member lifecycle"): only normal and leaving members own
// partitions; a joining broker does not coordinate writes yet.
using alldata::Lifecycle;
using alldata::Liveness;

struct MemberInfo {
  std::string node_id;
  std::string client_address;  // host:port
  std::string peer_address;    // host:port, empty when not a cluster member
  std::string zone;
  std::string region;
  bool live = false;           // alive or suspect, and neither left nor removed
  Liveness liveness = Liveness::kAlive;
  Lifecycle lifecycle = Lifecycle::kNormal;
  std::uint64_t incarnation = 0;  // rises when the member restarts, changes state or refutes
  std::uint64_t pending_hints = 0;
  // While joining: partitions it still pulls; while leaving: still pushes. And the event
  // bytes copied so far in that hand-over.
  std::uint64_t hand_over_partitions = 0;
  std::uint64_t hand_over_bytes = 0;
  // It may lack events from this time on (ms; 0 = none known): another broker holds hints
  // for it, or knows of copies it lacks (repair debts). Scans read it last, or merge.
  std::uint64_t incomplete_since_ms = 0;
};

struct ClusterMetadata {
  std::string node_id;         // the broker that answered
  std::uint32_t partitions = 0;
  std::uint32_t replication_factor = 0;
  std::chrono::milliseconds interval{0};  // length of a storage interval
  std::vector<MemberInfo> members;
  std::vector<std::string> streams;
  std::uint64_t watermark_ms = 0;  // ranges ending below this time are complete; 0 = unknown
  std::string version;             // the broker's software version
  bool sync = false;               // whether writes are fsynced before acknowledgement
  // "ready", or why the answering broker is not yet (joining: waiting for seeds ...,
  // refused: ...); empty from a single broker.
  std::string membership_status;
  // Only when metadata() was asked about a stream: for each partition (index = partition),
  // the node ids of its replicas in preference order (ids as in `members`). Empty from a
  // broker that does not report replica sets.
  std::vector<std::vector<std::string>> replica_sets;
};

// What one anti-entropy run did on the broker asked (Admin::repair).
struct RepairReport {
  std::uint64_t partitions = 0;       // partitions of which that broker holds a replica
  std::uint64_t pairs = 0;            // (partition, other replica) pairs compared
  std::uint64_t pairs_failed = 0;
  std::uint64_t ranges_compared = 0;  // intervals and sub-ranges whose digests were compared
  std::uint64_t ranges_differed = 0;
  std::uint64_t keys_listed = 0;
  std::uint64_t events_received = 0;  // events that broker lacked and got
  std::uint64_t events_sent = 0;      // events other replicas lacked and got from it
  std::uint64_t bytes_received = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_exchanged = 0;  // all repair traffic with other brokers
  double seconds = 0;
  std::vector<std::string> errors;    // the first few failures
};

// Not thread-safe. Holds one connection, opened by connect().
class Admin {
 public:
  // Connects to the first reachable bootstrap broker. kConnectionFailed if none answers
  // within config.retry_timeout.
  static Result<std::unique_ptr<Admin>> connect(ClientConfig config);

  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;

  // What the connected broker reports. Retries on the next broker like the Scanner.
  // With `stream` set, replica_sets holds where each partition of that stream lives.
  Result<ClusterMetadata> metadata(bool include_streams = true, std::string_view stream = {});

  // Runs anti-entropy repair on the connected broker over `stream` (empty: all) and the
  // intervals holding a time in [from_ms, to_ms) (to_ms 0: now), and waits for it: set a
  // request_timeout long enough for the data. Not retried on another broker (the run is
  // that broker's). A single broker answers with an empty report.
  Result<RepairReport> repair(std::string_view stream, std::uint64_t from_ms, std::uint64_t to_ms);

  // Removes member `node_id` from the cluster for good (a broker that will never return):
  // the survivors restore the replication factor from the copies that remain, and its node
  // id is refused afterwards. Errors: kBadRequest (the connected broker's own id, an
  // unknown id, or a single broker).
  Status remove_member(std::string_view node_id);

  // Asks the connected broker, which must be `node_id`, to leave the cluster for good: it
  // pushes its partitions to the owners that take them over, delivers its hints, leaves
  // and exits. Returns once the departure has started (metadata() shows its progress:
  // MemberInfo::lifecycle and hand_over_*). Errors: kBadRequest (another broker's id, a
  // single broker, a broker that is joining), kNotAllowed (it left already).
  Status decommission(std::string_view node_id);

  // Waits until the cluster's completeness watermark reaches `to_ms`: a scan whose range
  // ends at or before it then returns every event that will ever be acknowledged in it.
  // Asks the connected broker about once a second and calls `progress` with each
  // watermark seen (0 = not known yet). Returns the last watermark seen; at once, with 0,
  // from a broker that is not in a cluster (it holds nothing back). Errors: kTimeout after
  // `timeout`, saying how far behind the watermark still is; or those of metadata().
  Result<std::uint64_t> wait_complete(std::uint64_t to_ms, std::chrono::milliseconds timeout,
                                      const std::function<void(std::uint64_t)>& progress = {});

  const BrokerInfo& broker() const;

 private:
  class Impl;
  explicit Admin(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace alldata::client
