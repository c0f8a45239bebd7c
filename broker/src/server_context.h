// What every session of a broker shares: options, logger, storage, coordinator, key
// generation and the storage thread pool. Owned by the broker; sessions borrow it and
// never outlive it (the broker's stop() waits for every session to end).
#pragma once

#include "alldata/broker/coordinator.h"
#include "cluster.h"
#include "connection_table.h"
#include "alldata/broker/options.h"
#include "alldata/protocol/keygen.h"
#include "alldata/storage/event_store.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace alldata::broker {

// Keeps the key generator's persisted high-water mark ahead of the keys it hands out, so
// that after a restart every new key sorts after every old one. The mark ("lease") is a
// time a few seconds ahead; keys past it are only handed out once a higher mark is durable.
class KeyLease {
 public:
  static constexpr std::uint64_t kSpanMs = 5000;  // how far ahead a new lease reaches

  KeyLease(storage::EventStore& store, Keygen& keygen) : store_(store), keygen_(keygen) {}

  // Makes the lease cover at least HLC value `needed_hlc` (and now + kSpanMs). Blocking
  // (a synced metadata write): run on a storage thread.
  Status extend(std::uint64_t needed_hlc);

  // The stored lease in ms, 0 if none; blocking.
  static Result<std::uint64_t> load(storage::EventStore& store);

 private:
  storage::EventStore& store_;
  Keygen& keygen_;
  std::mutex mu_;
};

struct ServerContext {
  const BrokerOptions& options;
  spdlog::logger& log;
  storage::EventStore& store;
  Coordinator* coordinator;    // the cluster's when a member, else the local one; set at start
  Keygen& keygen;
  KeyLease& lease;
  boost::asio::thread_pool& storage_pool;
  const std::string& node_id;
  const std::string& version;
  ConnectionTable& connection_table;  // the slots of every listener's connections
  std::string client_address;  // set once the listener is bound
  Cluster* cluster = nullptr;  // null for a single broker
  std::atomic<std::uint32_t> connections{0};  // open sockets, pending and sessions
  std::atomic<bool> stopping{false};
};

}  // namespace alldata::broker
