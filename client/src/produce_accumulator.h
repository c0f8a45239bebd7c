// The producer's batching: events are appended to one open batch per (stream, partition,
// commit level); a batch closes when it is full, when it has lingered long enough, or on
// flush. Events without a partition key go to a sticky partition per stream that moves
// to the next partition whenever that partition's batch closes (sticky round robin), so
// batches fill up instead of spreading a few events over every partition.
// Not thread-safe: the Producer calls it under its mutex. Internal to the client library.
#pragma once

#include "alldata/client/producer.h"
#include "alldata/client/types.h"
#include "alldata/protocol/key.h"

#include <capnp/message.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::client::detail {

using SteadyClock = std::chrono::steady_clock;

// Bytes one event takes in a Produce request (Cap'n Proto layout): the Event struct in
// the list, its 16-byte key, the payload padded to words, and the headers.
std::size_t event_wire_bytes(std::size_t payload_size, std::span<const Header> headers) noexcept;
// Bytes of a Produce request around its events.
std::size_t request_wire_bytes(std::string_view stream) noexcept;

struct BatchEvent {
  Key key;
  std::uint32_t payload_offset = 0;
  std::uint32_t payload_size = 0;
  std::uint32_t first_header = 0;
  std::uint32_t header_count = 0;
};

struct BatchHeader {
  std::uint32_t name_offset, name_size, value_offset, value_size;
};

// One Produce request's worth of events for one (stream, partition, commit level).
// Events live in one buffer (`data`) so that a batch, not an event, is the unit of
// allocation; callbacks are stored only for events that have one.
struct ProduceBatch {
  std::uint64_t id = 0;  // increasing per producer, in creation order
  std::string stream;
  std::uint32_t partition = 0;
  CommitLevel level = CommitLevel::kQuorum;
  SteadyClock::time_point created;
  std::size_t wire_bytes = 0;   // estimated request size (what batch_bytes limits)
  std::size_t accounted = 0;    // bytes held against buffer_memory
  std::uint32_t event_count = 0;

  std::string data;             // payloads and header bytes, back to back
  std::vector<BatchEvent> events;
  std::vector<BatchHeader> headers;
  std::vector<std::pair<std::uint32_t, Producer::Callback>> callbacks;  // (event index, cb)

  // Set by the I/O thread: the encoded request (kept for retries, which reuse the keys).
  std::unique_ptr<capnp::MallocMessageBuilder> message;
  std::string frame_header;
  std::uint32_t attempts = 0;   // requests written so far
  SteadyClock::time_point retry_at;
  std::optional<Error> last_error;
};

class ProduceAccumulator {
 public:
  using BatchPtr = std::unique_ptr<ProduceBatch>;

  // `batch_bytes`: close a batch once its request would reach this size.
  // `seed` picks each stream's first sticky partition.
  ProduceAccumulator(std::size_t batch_bytes, std::chrono::milliseconds linger,
                     std::uint64_t seed);

  void set_batch_bytes(std::size_t batch_bytes) noexcept { batch_bytes_ = batch_bytes; }

  struct Appended {
    std::uint32_t partition = 0;
    std::optional<std::uint64_t> new_batch;  // id of the batch this event opened
  };

  // Appends one event. `keyed_partition` is the partition from the event's partition key
  // (none: the stream's sticky partition). Batches closed on the way are moved to `closed`.
  Appended append(std::string_view stream, std::optional<std::uint32_t> keyed_partition,
                  std::uint32_t partitions, CommitLevel level, const Key& key,
                  std::string_view payload, std::span<const Header> headers,
                  Producer::Callback&& callback, std::size_t accounted, SteadyClock::time_point now,
                  std::vector<BatchPtr>& closed);

  // Closes batches opened `linger` or more before `now`.
  void close_expired(SteadyClock::time_point now, std::vector<BatchPtr>& closed);
  // Closes every open batch.
  void close_all(std::vector<BatchPtr>& closed);
  // When the oldest open batch has lingered long enough, if any is open.
  std::optional<SteadyClock::time_point> next_expiry() const;

  // The partition an event of `stream` without partition key would go to now.
  std::uint32_t sticky_partition(std::string_view stream, std::uint32_t partitions);

  std::size_t open_batches() const noexcept { return open_count_; }
  // Every batch opened so far has an id below this.
  std::uint64_t next_batch_id() const noexcept { return next_id_; }

 private:
  struct StreamState {
    std::string name;
    std::uint32_t sticky = 0;
    std::uint32_t partitions = 0;
    std::vector<BatchPtr> open;  // index: partition * 4 + commit level
  };
  struct OpenEntry {  // creation-ordered index of open batches, for linger expiry
    std::uint64_t id;
    SteadyClock::time_point created;
    StreamState* stream;
    std::size_t slot;
  };

  StreamState& stream_state(std::string_view stream, std::uint32_t partitions);
  void close(StreamState& s, std::size_t slot, std::vector<BatchPtr>& closed);

  std::size_t batch_bytes_;
  std::chrono::milliseconds linger_;
  std::uint64_t seed_;
  std::uint64_t next_id_ = 1;
  std::size_t open_count_ = 0;
  std::map<std::string, std::unique_ptr<StreamState>, std::less<>> streams_;
  StreamState* last_ = nullptr;
  std::deque<OpenEntry> by_age_;
};

}  // namespace alldata::client::detail
