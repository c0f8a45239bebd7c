// The Producer appends events to AllData streams. It batches events per (stream, partition),
// sends one batch per Produce request over one pipelined connection, retries with the same
// keys on retriable errors and connection failures (so a retry is stored once), fails over
// across the bootstrap brokers, and bounds its memory with back-pressure.
#pragma once

#include "alldata/client/types.h"
#include "alldata/protocol/error.h"
#include "alldata/protocol/key.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::client {

struct ProducerConfig {
  // "host:port" of brokers; the producer talks to one at a time and moves to the next one
  // when a connection fails or the broker shuts down. At least one.
  std::vector<std::string> bootstrap;
  std::string client_id = "alldata-producer";
  // Default commit level of every send (a send may override it).
  CommitLevel commit_level = CommitLevel::kQuorum;
  // How long a batch waits for more events before it is sent. 0 = send as soon as the
  // I/O thread gets to it.
  std::chrono::milliseconds linger{5};
  // A batch is closed (and sent) once its events hold this many bytes.
  std::size_t batch_bytes = 512 * 1024;
  // Bytes of events the producer holds (buffered, in flight, awaiting retry). A send that
  // would pass it blocks up to `max_block`, then fails with kBufferFull.
  std::size_t buffer_memory = 64 * 1024 * 1024;
  // How long send() may block for buffer space.
  std::chrono::milliseconds max_block{60'000};
  // Events are placed by partition, so send() needs one broker's answer (the partition
  // count) first. If no broker answered within this long (or the delivery timeout, if
  // shorter) of create(), sends fail with kConnectionFailed, at once, until one answers.
  std::chrono::milliseconds startup_timeout{60'000};
  // Deadline for opening a session with one broker: name resolution, TCP connect, hello.
  std::chrono::milliseconds connect_timeout{10'000};
  // Deadline for one Produce request's answer; also sent to the broker as its timeout.
  // Past it the connection is dropped and the batch is resent, on the next broker.
  std::chrono::milliseconds request_timeout{30'000};
  // Upper bound from send() to the final outcome of an event: until then retriable errors
  // and connection failures are retried; after it the event fails with the last error.
  // Must be at least linger + request_timeout. Keep it below the brokers' max-key-skew
  // (60 s by default): a client key older than that is refused with kKeySkew, so a longer
  // delivery timeout would only turn late retries into that error.
  std::chrono::milliseconds delivery_timeout{50'000};
  // First pause before a retry, doubled on each retry of the same batch up to the max.
  std::chrono::milliseconds retry_backoff{100};
  std::chrono::milliseconds retry_backoff_max{1'000};
  // Produce requests awaiting their answer on the connection (pipelining). At least 1.
  std::uint32_t max_in_flight = 5;
  // Keys made by the producer (own random origin id): send() returns the key at once and
  // a retry carries the same keys, so an event is never stored twice. With false the
  // broker makes the keys: send() returns Key{} and only the callback learns the key, and
  // a retry after a lost answer may store an event twice.
  bool client_keys = true;
  // Fixed origin id for client keys (0 = random, the default). Two producers must never
  // share an origin.
  std::uint64_t origin = 0;
  std::shared_ptr<spdlog::logger> logger;
};

struct SendOptions {
  // If set, partition = xxh64(key) % partitions, so equal keys share a partition.
  // Without it the producer sticks to one partition per stream until that batch is
  // closed, then moves to the next (sticky round robin).
  std::optional<std::string_view> partition_key;
  std::span<const Header> headers;
  // Overrides ProducerConfig::commit_level for this event.
  std::optional<CommitLevel> commit_level;
};

// Thread-safe: any number of threads may call send(), flush() and close() concurrently.
// Lifecycle: create() starts one background I/O thread, which connects to the first
// bootstrap broker; close() (or the destructor) flushes and stops that thread.
class Producer {
 public:
  // Runs on the producer's I/O thread once the event's fate is final: the broker's key
  // on success, else the error (a broker error, kConnectionFailed, kTimeout, kClosed).
  // It must not block for long (every other ack waits for it) and must not call flush()
  // or close(); a send() from it must not block (it would wait for itself when the
  // buffer is full).
  using Callback = std::function<void(const Result<Key>&)>;

  // Checks `config` (kBadRequest naming the bad field) and starts the I/O thread. Does
  // not wait for a connection.
  static Result<std::unique_ptr<Producer>> create(ProducerConfig config);

  ~Producer();  // close(), errors ignored
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Queues one event (copying `stream`, `payload`, the partition key and headers: none
  // of them needs to outlive the call) and returns its key (Key{} without client keys).
  // Nothing is durable yet: the event is acknowledged when `callback` (if any) gets the
  // key, or when a later flush() returns.
  // Blocks while the buffer is full (up to max_block), and until the first broker answered
  // (up to startup_timeout after create()). Errors (the callback is not called then):
  // kClosed after close(); kBufferFull; kConnectionFailed when no broker answered within
  // startup_timeout (or the delivery timeout, if shorter) of create(); kEventTooLarge;
  // kInvalidStream.
  Result<Key> send(std::string_view stream, std::string_view payload, SendOptions options = {},
                   Callback callback = {});

  // send() whose outcome arrives through a future (one allocation per event).
  std::future<Result<Key>> send_async(std::string_view stream, std::string_view payload,
                                      SendOptions options = {});

  // Sends every buffered event now (ignoring linger) and waits until all events sent
  // before the call have their final outcome. Returns the first error any event met
  // since the previous flush() (details went to the callbacks), else ok.
  Status flush();

  // Stops accepting events (later sends fail with kClosed), flushes, then stops the I/O
  // thread. Events not done within `timeout` fail with kClosed. Idempotent.
  Status close(std::chrono::milliseconds timeout = std::chrono::milliseconds::max());

  // The broker this producer last said hello to, if any (its partition count and limits).
  std::optional<BrokerInfo> broker() const;

  // Counters since create(), for progress reports.
  struct Stats {
    std::uint64_t sent = 0;         // accepted by send()
    std::uint64_t acknowledged = 0; // acked by a broker
    std::uint64_t failed = 0;       // failed for good
    std::uint64_t requests = 0;     // Produce requests written (retries included)
    std::uint64_t retries = 0;      // batches sent again
    std::size_t buffered_bytes = 0; // held now
  };
  Stats stats() const;

 private:
  class Impl;
  explicit Producer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace alldata::client
