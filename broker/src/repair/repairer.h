// A broker's anti-entropy: for every (stream, partition) this broker holds a replica of, it
// compares its copy with each other live replica's and copies to each side what the other
// lacks (range_repair.h). It runs in the background every `interval`, 3 s after the
// placement changed (so a member's removal or departure restores the replication factor at
// once), and on demand (`alldata repair`); one run at a time. Copies are throttled to
// `bytes_per_sec`.
//
// Executors: everything runs on the executor given (the cluster's); reads and writes of the
// local store run on the storage pool. Streams are the ones this broker's store knows and
// the ones the other live members report (a broker that lost its disk knows none).
#pragma once

#include "alldata/broker/peer_client.h"
#include "alldata/storage/event_store.h"
#include "membership/cluster_view.h"
#include "repair/range_repair.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace alldata::broker::repair {

struct RepairerOptions {
  std::chrono::milliseconds interval = std::chrono::minutes(10);  // 0: no background runs
  std::uint64_t bytes_per_sec = 64u << 20;                        // 0: no limit
  std::uint64_t interval_ms = 3'600'000;                          // the store's interval
  std::chrono::milliseconds request_timeout = std::chrono::seconds(30);
};

// What one run covers: `stream` (empty: every stream), the intervals holding a time in
// [from_ms, to_ms) (to_ms 0: up to now), `partitions` (empty: every one).
struct RepairScope {
  std::string stream;
  std::uint64_t from_ms = 0;
  std::uint64_t to_ms = 0;
  std::vector<std::uint32_t> partitions;  // only these (empty: every one)
};

struct RepairSummary {
  RepairStats stats;
  std::uint64_t partitions = 0;      // (stream, partition) replicas of this broker compared
  std::uint64_t pairs = 0;           // (partition, other replica) pairs compared
  std::uint64_t pairs_failed = 0;    // of those, the ones that stopped with an error
  std::uint64_t bytes_exchanged = 0; // request and answer frames with other brokers
  std::vector<std::string> errors;   // the first few, "stream/partition with node: reason"
  double seconds = 0;

  // Counts one failed pair (or partition that could not be looked at) and keeps the first
  // few reasons.
  void failed(std::string why) {
    ++pairs_failed;
    if (errors.size() < kMaxErrors) errors.push_back(std::move(why));
  }
  static constexpr std::size_t kMaxErrors = 5;
};

// Where a hand-over run stands: partitions still to look at, event bytes copied so far.
// Called on the executor after the partitions are counted and after each one.
using Progress = std::function<void(std::uint64_t partitions_left, std::uint64_t bytes_moved)>;

// Which partitions a run covers and with whom (repairer.cc, partners()): the ones this
// broker owns, the ones it will own (a joining broker pulls), or the ones it hands over (a
// leaving broker pushes).
enum class Mode { kOwned, kPull, kPush };

class LocalReplica;

class Repairer {
 public:
  // Borrows everything; all must outlive the repairer.
  Repairer(boost::asio::any_io_executor executor, std::string self_id, storage::EventStore& store,
           boost::asio::thread_pool& storage_pool, PeerClient& peers, const ViewSource& views,
           RepairerOptions options, std::shared_ptr<spdlog::logger> log);

  // One run over `scope`; waits for a run in progress to end first. On the executor.
  boost::asio::awaitable<RepairSummary> run(const RepairScope& scope);

  // For a joining broker: pulls the partitions it will own once normal (its replica sets
  // under the view's future placement) from their current live owners, over the intervals
  // holding a time at or after `from_ms`. pairs_failed > 0: run it again.
  boost::asio::awaitable<RepairSummary> pull_future_partitions(std::uint64_t from_ms,
                                                               const Progress& progress);
  // For a leaving broker: pushes each partition it owns to the owners that take it over
  // (ClusterView::incoming_replicas), over the intervals holding a time at or after
  // `from_ms`. pairs_failed > 0 (an incoming owner down or failing): run it again.
  boost::asio::awaitable<RepairSummary> push_to_future_owners(std::uint64_t from_ms,
                                                              const Progress& progress);

  // Starts the background runs (if interval > 0); stop() ends them. On the executor.
  void start();
  void stop();

 private:
  boost::asio::awaitable<void> background();
  // One run: every partition this broker owns (kPull: will own; kPush: hands over) against
  // its partners (repairer.cc, partners()).
  boost::asio::awaitable<RepairSummary> compare_all(const RepairScope& scope, Mode mode,
                                                    const Progress* progress);
  boost::asio::awaitable<void> repair_one(LocalReplica& local, const std::string& stream,
                                          std::uint32_t p, Mode mode, std::uint64_t from_ms,
                                          std::uint64_t to_ms, RepairSummary& summary);
  // The streams this broker's store knows and those every live member reports.
  // `*unlisted`: live members that did not answer.
  boost::asio::awaitable<std::vector<std::string>> known_streams(std::size_t* unlisted);
  boost::asio::awaitable<void> throttle(std::uint64_t bytes);

  boost::asio::any_io_executor executor_;
  std::string self_id_;
  storage::EventStore& store_;
  boost::asio::thread_pool& storage_pool_;
  PeerClient& peers_;
  const ViewSource& views_;
  RepairerOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::steady_timer wake_;
  bool busy_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point budget_until_{};  // throttle: when the bytes sent are paid
};

}  // namespace alldata::broker::repair
