// The seam between a session and where produced events go. A session hands a validated,
// keyed batch to the Coordinator; the single-broker LocalCoordinator stores it in the local
// event store. The cluster's coordinator (replica sets, commit levels, hints) implements the
// same interface.
#pragma once

#include "alldata/protocol/commit_level.h"
#include "alldata/protocol/error.h"
#include "alldata/storage/event_store.h"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>

namespace alldata::broker {

struct ProduceOutcome {
  std::uint32_t replicas = 0;  // replicas that acknowledged
};

class Coordinator {
 public:
  virtual ~Coordinator() = default;

  // Stores `batch` as `level` asks and completes on the awaiting coroutine's executor.
  // Errors: kTimeout after `timeout` (the write may still land: a retry with the same keys
  // is safe), kOverloaded, kStorageError, kIntervalSealed, kShuttingDown,
  // kNotEnoughReplicas.
  virtual boost::asio::awaitable<Result<ProduceOutcome>> produce(
      storage::EventBatch batch, CommitLevel level, std::chrono::milliseconds timeout) = 0;

  // The replication factor writes are placed with (1 for a single broker).
  virtual std::uint32_t replication_factor() const = 0;
};

// Stores every batch in the local store: the single-broker case, RF 1, where every commit
// level is met by the one local copy. Borrows `store`, which must outlive it.
class LocalCoordinator final : public Coordinator {
 public:
  explicit LocalCoordinator(storage::EventStore& store) : store_(store) {}

  boost::asio::awaitable<Result<ProduceOutcome>> produce(
      storage::EventBatch batch, CommitLevel level, std::chrono::milliseconds timeout) override;
  std::uint32_t replication_factor() const override { return 1; }

 private:
  storage::EventStore& store_;
};

}  // namespace alldata::broker
