// Writes a coordinator had in flight when it died may have reached some owners only, and
// nobody knows which: the coordinator's memory of them died with it. So while the broker
// runs it keeps a lease in its store's metadata ("running at W", renewed every `period`)
// and clears it when it stops with no write in flight. Finding a lease at start means the
// last run died: every owner may lack events with times in
// [W - max_key_skew - produce_timeout, W + 2 period + max_key_skew), which the caller owes
// every owner as a repair debt (repair_debts.h, kEveryOwner), so the watermark holds and
// the owners repair those times.
//
// begin() and end() block on the store (start and stop); the renewals run on `executor`
// with the store calls on `storage_pool`. Borrows everything.
#pragma once

#include "alldata/protocol/error.h"
#include "alldata/storage/event_store.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

namespace alldata::broker::repair {

struct CrashLeaseOptions {
  std::chrono::milliseconds period{5000};
  std::chrono::milliseconds max_key_skew{60'000};
  std::chrono::milliseconds produce_timeout{30'000};
};

struct TimeWindow {
  std::uint64_t from_ms = 0;
  std::uint64_t to_ms = 0;
  friend bool operator==(const TimeWindow&, const TimeWindow&) = default;
};

class CrashLease {
 public:
  CrashLease(storage::EventStore& store, boost::asio::any_io_executor executor, boost::asio::thread_pool& storage_pool,
             CrashLeaseOptions options, std::function<std::uint64_t()> wall_ms, std::shared_ptr<spdlog::logger> log);

  // At start: the times the previous run may have left half-written (nullopt after a
  // clean stop or on a new store), then this run's lease. Errors: kStorageError.
  Result<std::optional<TimeWindow>> begin();
  // Renews the lease every period until end().
  void start();
  // Stops the renewals; clears the lease when `clean` (no write in flight), else leaves
  // it for the next start to find.
  void end(bool clean);

  static constexpr const char* kMetaKey = "coordinator.lease";

 private:
  boost::asio::awaitable<void> renew();

  storage::EventStore& store_;
  boost::asio::any_io_executor executor_;
  boost::asio::thread_pool& storage_pool_;
  CrashLeaseOptions options_;
  std::function<std::uint64_t()> wall_ms_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::steady_timer wake_;
  std::shared_ptr<bool> ended_ = std::make_shared<bool>(false);
};

}  // namespace alldata::broker::repair
