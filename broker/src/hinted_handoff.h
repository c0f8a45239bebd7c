// Hinted handoff: delivers the hints this broker holds (copies of events whose replica was
// unreachable when they were written) to their owners once the cluster view says the owner
// is live again, and deletes a hint only after its owner acknowledged it. When and where
// is hint_schedule.h (a stuck owner, live to the membership but failing deliveries, is
// retried with a back-off of 1 s doubling to 30 s, so it costs neither CPU nor log lines).
//
// Runs as one coroutine on the cluster's executor; storage reads and deletes go to the
// storage pool. Borrows everything it is given.
#pragma once

#include "alldata/broker/peer_client.h"
#include "hint_schedule.h"
#include "membership/env.h"
#include "alldata/storage/event_store.h"
#include "membership/cluster_view.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>

namespace alldata::broker {

class HintedHandoff {
 public:
  HintedHandoff(storage::EventStore& store, boost::asio::thread_pool& storage_pool, PeerClient& peers,
                const ViewSource& views, Clock& clock, std::chrono::milliseconds interval,
                std::chrono::milliseconds timeout, std::shared_ptr<spdlog::logger> log);

  // Starts the delivery loop on `executor`: one round every interval until stop().
  void start(boost::asio::any_io_executor executor);
  // The loop ends at its next wake-up.
  void stop() { stopping_ = true; }

 private:
  boost::asio::awaitable<void> loop(boost::asio::any_io_executor executor);
  // Delivers the pending hints for `target`; false if it stopped on an error (logged as a
  // warning when `first_failure`, else at debug level).
  boost::asio::awaitable<bool> deliver(const std::string& target, const std::string& address, bool first_failure);
  // Hints for a member that left or was removed: delivered to the current live owners of
  // each hint's partition instead, then deleted. False when an owner could not take them.
  boost::asio::awaitable<bool> retarget(const std::string& target);


  storage::EventStore& store_;
  boost::asio::thread_pool& storage_pool_;
  PeerClient& peers_;
  const ViewSource& views_;
  Clock& clock_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<spdlog::logger> log_;
  HintSchedule schedule_;  // executor only
  std::atomic<bool> stopping_{false};
};

}  // namespace alldata::broker
