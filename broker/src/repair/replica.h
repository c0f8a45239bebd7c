// One replica of a partition as anti-entropy repair sees it: this broker's own store
// (LocalReplica) or another broker reached over the peer protocol (PeerReplica). Repair
// compares two of them and copies to each what the other lacks; it never needs to know
// which one is local.
//
// Every call completes on the awaiting coroutine's executor. Keys are 16-byte event keys;
// digests cover keys only (events are immutable: one key is one content).
#pragma once

#include "alldata/protocol/error.h"
#include "alldata/protocol/key.h"
#include "alldata/storage/event_store.h"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace alldata::broker::repair {

class Replica {
 public:
  virtual ~Replica() = default;

  // For logs and summaries: the node id.
  virtual const std::string& name() const = 0;

  // See EventStore::interval_digests.
  virtual boost::asio::awaitable<Result<std::vector<storage::IntervalDigest>>> interval_digests(
      const std::string& stream, std::uint32_t partition, std::uint64_t from_ms,
      std::uint64_t to_ms) = 0;
  // See EventStore::range_digests.
  virtual boost::asio::awaitable<Result<std::vector<storage::RangeDigest>>> range_digests(
      const std::string& stream, std::uint32_t partition, const std::vector<Key>& bounds) = 0;
  // See EventStore::keys.
  virtual boost::asio::awaitable<Result<storage::KeyPage>> keys(const std::string& stream,
                                                                std::uint32_t partition, Key from,
                                                                Key to, std::size_t max_keys) = 0;
  // The events stored under `keys` (ascending), at most about `max_bytes` of them; `*next`
  // is the first key not read when the answer stopped early.
  virtual boost::asio::awaitable<Result<storage::EventBatch>> events(
      const std::string& stream, std::uint32_t partition, const std::vector<Key>& keys,
      std::size_t max_bytes, std::optional<Key>* next) = 0;
  // Stores `batch` as a repair write (sealed intervals accept it; keys already stored are
  // kept as they are).
  virtual boost::asio::awaitable<Status> store(const storage::EventBatch& batch) = 0;
};

}  // namespace alldata::broker::repair
