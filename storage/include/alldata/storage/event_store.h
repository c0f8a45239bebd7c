// The broker's durable event store on RocksDB. Time is cut into intervals (default one
// hour); each interval is a column family named after its start ("i-20261128T060000Z").
// Within an interval the RocksDB key is `stream id (u32 BE) | partition (u32 BE) | event key
// (16 bytes)`, so one partition's events over a time range are one sequential iteration.
// Stream names map to ids in a catalog kept in the default column family. The on-disk
// layout is documented in storage/README.md.
//
// Threads: the store owns one writer thread that does group commit: every batch queued
// while the previous write was in flight goes into the next single RocksDB WriteBatch, so
// many producers share one WAL write (and one fsync with sync on). `write()` never blocks.
// Reads (`scan`, `streams`) are blocking and thread-safe: call them from a storage thread
// pool, never from an I/O thread.
#pragma once

#include "alldata/protocol/error.h"
#include "alldata/protocol/key.h"

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::storage {

struct Options {
  // Folder of the RocksDB instance; created if missing.
  std::string path;
  // On (the default): a write is acknowledged only after its WAL record is fsynced, so it
  // survives a machine crash. Off: acknowledged after write() to the OS, which survives a
  // process crash but not a power loss (the crash semantics of write()).
  bool sync = true;
  // Length of one interval (one column family). Fixed for the life of a data folder: a
  // store reopened with another length refuses to open.
  std::chrono::milliseconds interval = std::chrono::hours(1);
  // An interval is sealed once its end is this far in the past: normal writes into it are
  // refused with kIntervalSealed (repair writes pass). Must be at least the key skew.
  std::chrono::milliseconds seal_after = std::chrono::hours(1);
  // Bound of bytes queued for the writer thread; write() past it fails with kOverloaded.
  std::size_t max_queued_bytes = 256u << 20;
  // Bound of the bytes (keys and values) of the hints held for one target; a hint write
  // past it fails with kOverloaded and stores nothing. 0: no bound.
  std::uint64_t max_hint_bytes_per_target = 0;
  // RocksDB block cache shared by all intervals.
  std::size_t block_cache_bytes = 128u << 20;
  // While the file system of `path` has less free space than this beyond the size of the
  // memtables (what flushing them will write), every write fails with kStorageError
  // ("disk full ...") before RocksDB is asked, so flushes, a reopen after a restart and the
  // store's own metadata always find room; writes resume by themselves once there is
  // room again. Reads are unaffected. 0: no check (RocksDB's own ENOSPC errors still
  // fail writes without harm, and RocksDB recovers from them once space is free).
  std::uint64_t min_free_disk_bytes = 0;
  // Receives the store's log lines; must not be null.
  std::shared_ptr<spdlog::logger> logger;
};

struct HeaderView {
  std::string_view name;
  std::string_view value;
};

// Events for one (stream, partition), stored atomically by one write(). Copies what it is
// given: the caller's buffers may be released after add() returns.
class EventBatch {
 public:
  EventBatch(std::string_view stream, std::uint32_t partition);

  void reserve(std::size_t events, std::size_t payload_bytes);
  void add(const Key& key, std::string_view payload, std::span<const HeaderView> headers = {});

  const std::string& stream() const noexcept { return stream_; }
  std::uint32_t partition() const noexcept { return partition_; }
  std::size_t size() const noexcept { return count_; }
  std::size_t bytes() const noexcept { return records_.size(); }
  // The smallest event time (ms) among the keys added; UINT64_MAX while empty.
  std::uint64_t min_time_ms() const noexcept { return min_time_ms_; }
  // When true, writes into sealed intervals pass (anti-entropy, hints). Default false.
  void set_repair(bool repair) noexcept { repair_ = repair; }
  bool repair() const noexcept { return repair_; }

  // Encoded records: [16-byte key][u32 LE value length][value] ... (value format: README).
  const std::string& records() const noexcept { return records_; }

  // Calls `f(key, payload, headers)` for each event in the order added; the views live
  // until f returns. For forwarding a batch (replication) without knowing its encoding.
  void for_each(const std::function<void(const Key&, std::string_view,
                                         std::span<const HeaderView>)>& f) const;

 private:
  std::string stream_;
  std::uint32_t partition_;
  std::string records_;
  std::size_t count_ = 0;
  std::uint64_t min_time_ms_ = ~std::uint64_t{0};
  bool repair_ = false;
};

// One stored event as returned by a scan; views point into the owning ScanPage.
struct StoredEvent {
  Key key;
  std::uint32_t partition = 0;
  std::string_view payload;
  std::span<const HeaderView> headers;
};

struct ScanQuery {
  std::string stream;
  std::uint32_t partition = 0;
  Key from;               // inclusive
  Key to = Key::max();    // exclusive
  std::size_t max_events = 1000;
  std::size_t max_bytes = 1u << 20;  // a page stops once its events' bytes (payload + headers) reach this
};

// A page of events in key order. Move-only: `events` views point into its own buffers.
struct ScanPage {
  std::vector<StoredEvent> events;
  // Where the next page starts; meaningful when !done.
  Key next_from;
  // True when [from, to) held no more events at the time of the scan.
  bool done = true;

  ScanPage() = default;
  ScanPage(ScanPage&&) = default;
  ScanPage& operator=(ScanPage&&) = default;
  ScanPage(const ScanPage&) = delete;
  ScanPage& operator=(const ScanPage&) = delete;

  // Storage behind the views (implementation detail of the store).
  std::vector<std::unique_ptr<std::string>> arena;
  std::vector<HeaderView> header_storage;
};

struct Stats {
  std::uint64_t events_written = 0;   // new events stored (identical retries not counted)
  std::uint64_t duplicates = 0;       // events written again with the same content: kept once
  std::uint64_t batches_written = 0;
  std::uint64_t group_commits = 0;    // RocksDB writes (one per group of batches)
  std::uint64_t queued_bytes = 0;     // waiting for the writer thread now
  std::uint64_t intervals = 0;        // column families holding events
  std::uint64_t sealed_intervals = 0;
};

// Digest of one (stream, partition) in one sealed interval, for anti-entropy: two replicas
// holding the same set of event keys have equal digests (stream ids are local to a store,
// so only the event keys go in).
struct IntervalDigest {
  std::uint64_t interval_start_ms = 0;
  std::uint64_t count = 0;     // events stored
  std::uint64_t xor_hash = 0;  // XOR of XXH64(16 event key bytes, seed 0) over those events

  friend bool operator==(const IntervalDigest&, const IntervalDigest&) = default;
};

// Digest of the event keys of one (stream, partition) in a key range: equal on two
// replicas holding the same keys there (count, XOR of XXH64 of the 16 key bytes).
struct RangeDigest {
  std::uint64_t count = 0;
  std::uint64_t xor_hash = 0;

  friend bool operator==(const RangeDigest&, const RangeDigest&) = default;
};

// Keys of one (stream, partition) in key order, for anti-entropy.
struct KeyPage {
  std::vector<Key> keys;
  Key next_from;     // where the next page starts; meaningful when !done
  bool done = true;  // no more keys in the range at the time of the read
};

// Hints held for one intended owner (hinted handoff), in (stream, partition, event key)
// order. Each batch holds one run of events of one (stream, partition), with repair() set:
// delivered hints may belong to intervals the owner has sealed meanwhile.
struct HintPage {
  std::vector<EventBatch> batches;
  std::size_t events = 0;
  // True when the target had no more hints at the time of the read.
  bool done = true;
  // Where the next page starts (opaque): pass it to read_hints() to go on without walking
  // over the hints deleted since (their tombstones stay until compaction).
  std::string resume_after;
};

class EventStore {
 public:
  // Opens (creating if missing) the store at options.path and re-opens every interval it
  // holds. Errors: kStorageError with RocksDB's message (folder not writable, corrupt,
  // locked by another process), kBadRequest when options.interval differs from the one
  // the folder was created with.
  static Result<std::unique_ptr<EventStore>> open(Options options);

  // Stops the writer thread after it has written everything already queued, then closes
  // RocksDB. Blocks.
  virtual ~EventStore() = default;

  // Queues `batch`; `done` runs exactly once, on the writer thread (or at once on the
  // caller's thread for kOverloaded / kShuttingDown), and must not block. On success the
  // whole batch is durable per Options::sync. Errors: kOverloaded (queue bound hit),
  // kShuttingDown, kStorageError (e.g. disk full: nothing of the batch is stored),
  // kIntervalSealed, kInvalidStream (empty name).
  // Events are immutable: an event whose key is stored with the same payload and headers
  // is skipped (an idempotent retry); with other content the batch fails with kKeyConflict
  // naming the key and nothing of it is stored, unless batch.repair(), which skips just
  // that event. The first content always stays.
  virtual void write(EventBatch batch, std::function<void(Status)> done) = 0;

  // Reads one page of [query.from, query.to) of one partition, in key order, across
  // intervals. An unknown stream gives an empty, done page. Blocking; thread-safe.
  virtual Result<ScanPage> scan(const ScanQuery& query) = 0;

  // Names of every stream ever written, sorted.
  virtual std::vector<std::string> streams() const = 0;

  // Small durable metadata (e.g. the keygen high-water mark), in the default column
  // family under a reserved prefix. put_meta is synced. Blocking; thread-safe.
  virtual Status put_meta(std::string_view name, std::string_view value) = 0;
  virtual Result<std::optional<std::string>> get_meta(std::string_view name) = 0;

  // Seals every interval whose end is at least seal_after before `now_ms`. Blocking;
  // returns how many intervals were newly sealed.
  virtual Result<std::size_t> seal_old_intervals(std::uint64_t now_ms) = 0;

  // The digest of (stream, partition) in the interval starting at `interval_start_ms` (a
  // multiple of Options::interval), or nullopt while that interval is not sealed. A sealed
  // interval without events of the partition, or an unknown stream, gives count 0. Repair
  // writes into a sealed interval keep its digests current. Blocking; thread-safe.
  // The default (for test doubles) answers kInternal.
  virtual Result<std::optional<IntervalDigest>> digest(std::string_view stream,
                                                       std::uint32_t partition,
                                                       std::uint64_t interval_start_ms);

  // ---- anti-entropy reads ---------------------------------------------------------------
  // All blocking and thread-safe; each answer is one point in time. The defaults (for test
  // doubles) answer kInternal.

  // One digest per interval holding events of (stream, partition) whose start is in
  // [from_ms, to_ms), in start order: the stored digest of a sealed interval (no scan),
  // else computed by reading the interval's keys. Intervals without such events are left
  // out. Errors: kStorageError.
  virtual Result<std::vector<IntervalDigest>> interval_digests(std::string_view stream,
                                                               std::uint32_t partition,
                                                               std::uint64_t from_ms,
                                                               std::uint64_t to_ms);

  // One digest per piece [bounds[i], bounds[i+1]) of (stream, partition); `bounds` must be
  // strictly ascending with at least two keys (else kBadRequest). Reads the keys of
  // [bounds.front(), bounds.back()) once.
  virtual Result<std::vector<RangeDigest>> range_digests(std::string_view stream,
                                                         std::uint32_t partition,
                                                         std::span<const Key> bounds);

  // At most max(1, max_keys) keys of (stream, partition) in [from, to), in order.
  virtual Result<KeyPage> keys(std::string_view stream, std::uint32_t partition, Key from,
                               Key to, std::size_t max_keys);

  // The events stored under `keys` (ascending; keys not stored are left out), in key
  // order, as a batch with repair() set, ready to be written to another replica. Stops
  // after `max_bytes` of records (at least one event): `*next` is then the first key not
  // read, else nullopt.
  virtual Result<EventBatch> events(std::string_view stream, std::uint32_t partition,
                                    std::span<const Key> keys, std::size_t max_bytes,
                                    std::optional<Key>* next);

  virtual Stats stats() const = 0;
  virtual const Options& options() const = 0;

  // ---- hints (hinted handoff) ----------------------------------------------------------
  // A hint is an event this broker holds for another broker, its intended owner, that
  // could not take it. Hints live in their own column family ("hints"), never in the
  // intervals (scans of this broker do not see them), are durable like events, never
  // expire, and are deleted only by delete_hints(), after the owner confirmed them.
  // The defaults (for test doubles) answer kInternal / nothing.

  // Queues `batch` as hints for `target_node_id` on the same group-commit writer as
  // write(), with the same `done` contract and durability (Options::sync). Writing a hint
  // again (same target, stream, partition and key) stores it once. Intervals and sealing
  // do not apply. Errors: kBadRequest (empty target, or longer than 255 bytes),
  // kInvalidStream, kOverloaded (the queue bound, or the target's hints would pass
  // Options::max_hint_bytes_per_target: nothing of the batch is stored), kShuttingDown,
  // kStorageError.
  virtual void write_hint(std::string_view target_node_id, EventBatch batch,
                          std::function<void(Status)> done);

  // The first hints held for `target_node_id` (at most `max_events` events, at least one
  // when any exist). Read again after delete_hints() to get the next ones. Blocking;
  // thread-safe. Errors: kStorageError.
  // With `resume_after` (a HintPage::resume_after), reads the hints after that page.
  virtual Result<HintPage> read_hints(std::string_view target_node_id, std::size_t max_events,
                                      std::string_view resume_after = {});

  // Deletes the hints for `target_node_id` of every event in `delivered` (a batch from
  // read_hints() that the owner has acknowledged); hints not held are ignored. Deleting by
  // key, not up to a cursor, never drops a hint written after the read. Durable per
  // Options::sync (a delete lost in a crash only re-delivers: idempotent). Blocking;
  // thread-safe. Errors: kStorageError.
  virtual Status delete_hints(std::string_view target_node_id, const EventBatch& delivered);

  // Events held as hints, per intended owner (owners without hints are absent). Exact:
  // counted at open and kept current by write_hint() and delete_hints().
  virtual std::map<std::string, std::uint64_t> pending_hints() const;
  // Bytes (keys and values) of the hints held for `target_node_id`, as the bound counts them.
  virtual std::uint64_t pending_hint_bytes(std::string_view target_node_id) const { return 0; }

  // A lower bound of the event time (ms) of every pending hint, nullopt when none is
  // pending: events below it are all at their owners as far as this store knows. Exact
  // after open and whenever no hint is pending. Thread-safe; does not block on I/O.
  virtual std::optional<std::uint64_t> oldest_hint_ms() const { return std::nullopt; }
  // The same bound per intended owner (owners without hints are absent): that owner may
  // lack events from that time on until its hints are delivered.
  virtual std::map<std::string, std::uint64_t> oldest_hint_ms_by_target() const { return {}; }
};

}  // namespace alldata::storage
