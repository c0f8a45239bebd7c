// Settles RepairDebts (repair_debts.h): every `period`, persists them when they changed
// (the store's metadata, so a restart keeps the watermark held), and asks the owner of
// each debt, once it is live, to repair that (stream, partition) over the debt's times
// (the client `repair` request with `partitions`, over the peer connection). A debt is
// settled when the owner compared the partition with every other replica without a
// failure. Executor-only (the cluster's); borrows everything.
#pragma once

#include "alldata/broker/peer_client.h"
#include "alldata/storage/event_store.h"
#include "membership/cluster_view.h"
#include "repair/repair_debts.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/logger.h>

namespace alldata::broker::repair {

class DebtSettler {
 public:
  DebtSettler(boost::asio::any_io_executor executor, RepairDebts& debts, storage::EventStore& store,
              boost::asio::thread_pool& storage_pool, PeerClient& peers, const ViewSource& views,
              std::chrono::milliseconds period, std::chrono::milliseconds request_timeout,
              std::shared_ptr<spdlog::logger> log);

  // Loads the stored debts (call before the executor runs); errors are logged.
  void load();
  void start();
  void stop();

  static constexpr const char* kMetaKey = "repair.debts";

 private:
  boost::asio::awaitable<void> loop();
  boost::asio::awaitable<void> persist();
  boost::asio::awaitable<bool> settle(const Debt& d, const ViewMember& owner);
  // A debt to every owner becomes one debt per live owner (a dead one is left to
  // background repair: holding the watermark for it would stall it for the outage).
  void share_out(const Debt& d, const ClusterView& view);

  boost::asio::any_io_executor executor_;
  RepairDebts& debts_;
  storage::EventStore& store_;
  boost::asio::thread_pool& storage_pool_;
  PeerClient& peers_;
  const ViewSource& views_;
  std::chrono::milliseconds period_;
  std::chrono::milliseconds request_timeout_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::steady_timer wake_;
  bool stopping_ = false;
  std::uint64_t persisted_version_ = 0;
};

}  // namespace alldata::broker::repair
