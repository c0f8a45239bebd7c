// The Scanner's implementation, shared by scanner.cc (opening, the merge, answers),
// scanner_io.cc (connections, poll, deadlines) and scanner_failover.cc (which replica a
// reader reads, and what happens when one fails). Internal to the client library.
#pragma once

#include "alldata/client/scanner.h"

#include "broker_connection.h"
#include "cluster_metadata.h"
#include "scan_merge.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace alldata::client {

namespace scanner_detail {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{1000};
// A reader that waited this long for a page moves to another replica of its partition, if
// there is one to move to (the late answer is then ignored): a frozen or overloaded broker
// delays a scan by this much, not by a whole request timeout.
constexpr std::chrono::milliseconds kSwitchReplicaAfter{5000};

inline std::chrono::milliseconds doubled(std::chrono::milliseconds d) {
  return std::min(d * 2, kMaxBackoff);
}

}  // namespace scanner_detail

// Model: a *reader* reads one partition from one replica at a time, with its own cursor
// (next_from); each reader is one slot of the k-way merge. kOne has one reader per
// partition, kQuorum floor(RF/2)+1 readers per partition on distinct replicas (the merge
// then holds each event once per reader, and next() drops the repeats). Replicas are tried
// in scan_plan.h's order (live and known complete first); a kOne scan of a partition none
// of whose live replicas is known complete merges all of them the same way. A *node* is one
// broker with at most one connection, shared by every reader currently on it; requests are
// pipelined and poll() finds which connection has an answer. Connections are opened
// without blocking (BrokerConnection::begin_connect), inside the same poll(): a broker that
// accepts but never answers costs its own readers a delay, never the others' deadlines.
class Scanner::Impl {
  using Clock = scanner_detail::Clock;
  using BrokerConnection = detail::BrokerConnection;
  using ScanMerger = detail::ScanMerger;

 public:
  Impl(ClientConfig config, ScanOptions options)
      : config_(std::move(config)), options_(std::move(options)), merger_(0),
        cursor_(options_.from) {
    const std::uint32_t page = options_.page_events != 0 ? options_.page_events : 1000;
    low_water_ = page / 2;
  }

  // The cluster's metadata, then one group of readers per partition (scanner.h).
  Status open();
  Result<std::optional<Event>> next();
  Result<std::vector<Event>> next_page(std::size_t max_events);

  Key cursor() const { return cursor_; }
  const BrokerInfo& broker() const { return broker_; }

 private:
  struct Node {
    std::string id;
    std::string address;
    bool live = false;
    std::uint64_t incomplete_since_ms = 0;  // may lack events from then on (0 = none known)
    std::unique_ptr<BrokerConnection> conn;
    std::string out;                                         // frames to write
    std::unordered_map<std::uint64_t, std::size_t> pending;  // request id -> reader
    Clock::time_point deadline{};    // an answer is due by then while pending
    Clock::time_point retry_at{};    // after a failure: not tried again before
    std::chrono::milliseconds backoff = scanner_detail::kFirstBackoff;
    std::optional<Error> last_error;
  };

  struct Reader {
    std::size_t group = 0;
    Key next_from;
    bool done = false;
    bool in_flight = false;
    Clock::time_point asked_at{};  // when the page in flight was asked for
    std::optional<Key> last_key;
    int node = -1;  // the replica being read, -1 = none chosen
    // Failures since the last page that came back: the replicas tried in this round,
    // each replica's last error, when the streak began, when to start the next round.
    std::set<int> tried;
    std::map<int, Error> errors;
    std::optional<Error> last_error;
    std::optional<Clock::time_point> streak_start;
    Clock::time_point retry_at{};
    std::chrono::milliseconds backoff = scanner_detail::kFirstBackoff;
  };

  struct Group {  // one partition
    std::uint32_t partition = 0;
    std::vector<int> candidates;      // node indices in the order to try
    bool merge = false;               // every live replica is read (none known complete)
    std::vector<std::size_t> readers;
  };

  int add_node(const std::string& id, const std::string& address, bool live);
  // The node of broker `id`, added (with `address`) if it is not known yet.
  int node_of(const std::string& id, const std::string& address, bool live);
  Result<ClusterMetadata> fetch_metadata(BrokerConnection& conn);
  void log_warn(const std::string& what);
  // "<node id> at <address>", for messages.
  std::string describe(int node) const;

  // Another reader of `ri`'s partition reads `node` now.
  bool read_by_sibling(std::size_t ri, int node) const;

  // Picks the replica `ri` reads next: the first candidate it has not tried in this round,
  // not read by another reader of the same partition, and not in a connection back-off.
  // When the round is over, either waits (sets retry_at) or, past the retry budget, fails.
  Status choose(std::size_t ri);

  // A reader of a merged partition that found no replica of its own: it stops while
  // another reader of the partition still reads (the merge is best effort past that).
  bool retire(std::size_t ri);

  Error no_replica_left(std::size_t ri) const;

  // The reader's replica failed it: the next choose() moves on, from the same cursor.
  void reader_failed(std::size_t ri, const Error& error);

  // The node's connection broke (or never came up): everything in flight there is asked
  // again elsewhere, and every reader on it switches replica.
  void node_failed(int node, const Error& error);

  // Starts a session with the node's broker (without blocking; see wait_and_handle()).
  Status start_node(int node);

  // The node's session is up: check who answered, send what waited for it.
  Status on_connected(int node);

  // Writes the requests queued for the node's (connected) broker.
  Status flush(int node);

  // Sends the page requests the merge needs (and prefetches) to each reader's replica,
  // then handles the answers that are there (waiting for at least one, or a retry time).
  Status pump();

  bool connecting(const Node& n) const { return n.conn && n.conn->connecting(); }

  // Waits in one poll() for answers, for connections being opened, for the next request
  // deadline, reader switch or retry time; then handles what happened.
  Status wait_and_handle(std::optional<Clock::time_point> earliest_retry);

  // The node's socket is ready: the connection advances, or an answer is read.
  Status handle_ready(int node);

  // Connections not up by their connect deadline, and answers not there by their request
  // deadline, fail their node. An answer already waiting in the socket is not late: it is
  // read in the next round.
  void expire_deadlines();

  // A reader that has waited kSwitchReplicaAfter for its page moves to another replica
  // when its partition has one free to read (the late answer is then dropped as stale).
  void switch_slow_readers();

  // A replica of the reader's partition it has not tried in this round, that no other
  // reader of the partition reads, and that is not backing off.
  bool has_free_replica(std::size_t ri, Clock::time_point now) const;

  // Appends reader `ri`'s next page request, with id `id`, to `out`.
  void encode_scan(std::uint64_t id, std::size_t ri, std::string& out);

  // One answer from `node`: a page for its reader (checked for order and range), a broker
  // error (the reader moves on, or the scan fails if it is not retriable), or a stale
  // answer to a request given up on.
  Status handle(int node, const protocol::FrameBuffer& frame);

  ClientConfig config_;
  ScanOptions options_;
  BrokerInfo broker_;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, int> node_index_;
  std::vector<Group> groups_;
  std::vector<Reader> readers_;  // reader index = merge slot
  ScanMerger merger_;
  std::size_t low_water_ = 500;
  Key cursor_;
  std::optional<Error> failed_;
};

}  // namespace alldata::client
