// The two lifecycle moves of a broker that carry data (docs/replication.md, "Membership
// changes"):
//
//  - join: joining -> normal once the broker holds the partitions it will own. It waits for
//    a complete membership view and a few periods (so every coordinator already sends it
//    new writes), pulls its future partitions from their owners until nothing failed,
//    pulls again what was written since it started (less the key-skew margin), then
//    publishes normal.
//  - leave (decommission): leaving -> left once the partitions it owns are on the owners
//    that take them over and its hints are delivered. It pushes to the incoming owners the
//    same way (twice), waits until it holds no hint and no write in flight, publishes left,
//    lets that spread for a few periods, then calls `on_left` (the process exits).
//
// Both survive a restart: the lifecycle is persisted, and a broker that starts as joining
// or leaving runs the same move again (what is already copied is found equal by the
// digests and costs little). Progress (partitions still to look at, bytes copied) is
// published in the member's state for `alldata cluster`.
//
// Executor-only (the cluster's, which Membership and the Repairer also use); borrows all.
#pragma once

#include "membership/cluster_agent.h"
#include "membership/membership.h"
#include "repair/repairer.h"

#include "alldata/storage/event_store.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <cstddef>
#include <functional>

namespace alldata::broker {

struct HandOverOptions {
  std::chrono::milliseconds period{1000};   // the membership protocol period
  std::chrono::milliseconds margin{90'000}; // max-key-skew + produce-timeout
  std::chrono::milliseconds retry{1000};    // after a pull or push that failed
};

class HandOverRunner {
 public:
  // `writes_in_flight` counts the replica writes this broker coordinates that are not done.
  HandOverRunner(boost::asio::any_io_executor executor, Membership& membership, repair::Repairer& repairer,
                 storage::EventStore& store, const ViewSource& views, std::function<std::size_t()> writes_in_flight,
                 HandOverOptions options, std::shared_ptr<spdlog::logger> log);

  // joining -> normal (see above). Returns early once stop() was called.
  boost::asio::awaitable<void> join();
  // leaving -> left, then `on_left` (see above). Returns early once stop() was called.
  boost::asio::awaitable<void> leave(std::function<void()> on_left);

  // The move in progress, for the member's published state (zero when none).
  HandOver progress() const noexcept { return progress_; }
  void stop() noexcept { stopped_ = true; }

 private:
  // Pulls (joining) or pushes (leaving) from `from_ms` until a run has no failure.
  boost::asio::awaitable<repair::RepairSummary> until_clean(bool pull, std::uint64_t from_ms);
  boost::asio::awaitable<void> sleep(std::chrono::milliseconds d);
  boost::asio::awaitable<bool> wait_for_view();
  // Until this broker holds no hint and coordinates no write (logs every 10 s meanwhile).
  boost::asio::awaitable<void> drain();
  std::uint64_t since_start(std::uint64_t started_ms) const;

  boost::asio::any_io_executor executor_;
  Membership& membership_;
  repair::Repairer& repairer_;
  storage::EventStore& store_;
  const ViewSource& views_;
  std::function<std::size_t()> writes_in_flight_;
  HandOverOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  HandOver progress_;
  bool stopped_ = false;
};

}  // namespace alldata::broker
