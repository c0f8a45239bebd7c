// The RocksDB implementation of EventStore. Kept out of the public headers so that nothing
// outside storage/ sees a RocksDB type.
//
// Lifecycle: open() opens RocksDB and starts the writer thread; the destructor refuses new
// writes (kShuttingDown), lets the writer drain what is queued, joins it and closes RocksDB.
//
// Threads and locks (always taken in this order):
//   seal_mu_     one seal_old_intervals() at a time; the writer takes it too for a group
//                that holds a repair write into a sealed interval, so it never updates a
//                digest that is being computed.
//   gate_mu_     held by the writer from building a group's WriteBatch until RocksDB has
//                written it, and by sealing while it marks intervals sealed: once an
//                interval is marked, no normal write can still land in it.
//   catalog_mu_  (shared) the interval and stream maps. Only the writer thread changes
//                them, so it reads them without the lock; everyone else takes it shared.
//   hints_mu_    hint_counts_; held by the writer from checking which hint keys are new
//                until the group is written, and by delete_hints() around its delete, so
//                the counts stay exact.
//   queue_mu_    the writer's queue.
#pragma once

#include "alldata/storage/event_store.h"
#include "key_frontier.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>


namespace alldata::storage {

// One RocksDB snapshot for the life of the guard.
class SnapshotGuard {
 public:
  explicit SnapshotGuard(rocksdb::DB* db) : db_(db), snap_(db->GetSnapshot()) {}
  ~SnapshotGuard() { db_->ReleaseSnapshot(snap_); }
  SnapshotGuard(const SnapshotGuard&) = delete;
  SnapshotGuard& operator=(const SnapshotGuard&) = delete;
  const rocksdb::Snapshot* get() const { return snap_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
};

class RocksEventStore final : public EventStore {
  struct Token {};  // only open() constructs

 public:
  static Result<std::unique_ptr<RocksEventStore>> open(Options options);

  RocksEventStore(Token, Options options);
  ~RocksEventStore() override;
  RocksEventStore(const RocksEventStore&) = delete;
  RocksEventStore& operator=(const RocksEventStore&) = delete;

  void write(EventBatch batch, std::function<void(Status)> done) override;
  Result<ScanPage> scan(const ScanQuery& query) override;
  std::vector<std::string> streams() const override;
  Status put_meta(std::string_view name, std::string_view value) override;
  Result<std::optional<std::string>> get_meta(std::string_view name) override;
  Result<std::size_t> seal_old_intervals(std::uint64_t now_ms) override;
  Result<std::optional<IntervalDigest>> digest(std::string_view stream, std::uint32_t partition,
                                               std::uint64_t interval_start_ms) override;
  Result<std::vector<IntervalDigest>> interval_digests(std::string_view stream,
                                                       std::uint32_t partition,
                                                       std::uint64_t from_ms,
                                                       std::uint64_t to_ms) override;
  Result<std::vector<RangeDigest>> range_digests(std::string_view stream, std::uint32_t partition,
                                                 std::span<const Key> bounds) override;
  Result<KeyPage> keys(std::string_view stream, std::uint32_t partition, Key from, Key to,
                       std::size_t max_keys) override;
  Result<EventBatch> events(std::string_view stream, std::uint32_t partition,
                            std::span<const Key> keys, std::size_t max_bytes,
                            std::optional<Key>* next) override;
  Stats stats() const override;
  const Options& options() const override { return options_; }
  void write_hint(std::string_view target_node_id, EventBatch batch,
                  std::function<void(Status)> done) override;
  Result<HintPage> read_hints(std::string_view target_node_id, std::size_t max_events,
                              std::string_view resume_after) override;
  Status delete_hints(std::string_view target_node_id, const EventBatch& delivered) override;
  std::map<std::string, std::uint64_t> pending_hints() const override;
  std::uint64_t pending_hint_bytes(std::string_view target_node_id) const override;
  std::optional<std::uint64_t> oldest_hint_ms() const override;
  std::map<std::string, std::uint64_t> oldest_hint_ms_by_target() const override;

 private:
  struct Pending {
    EventBatch batch;
    std::function<void(Status)> done;
    std::optional<std::string> hint_target;  // set: store as hints for this node
  };
  struct Interval {
    std::string name;
    rocksdb::ColumnFamilyHandle* cf = nullptr;  // owned by db_, destroyed in ~RocksEventStore
  };
  struct NewStream {
    std::string name;
    std::uint32_t id;
  };

  struct Group;   // one group's bookkeeping (rocks_writer.cc)
  struct Cursor;  // where add_events() is within a batch (rocks_writer.cc)

  Status load();  // reads meta, catalog and seal markers after DB::Open
  Status count_hints();  // fills hint_counts_ after DB::Open
  void enqueue(Pending p);
  void run_writer();
  // Builds one WriteBatch of the group, writes it once, then calls every `done`.
  void write_group(std::vector<Pending>& group);
  // Writes the group's WriteBatch (unless it failed) and applies or drops its bookkeeping.
  void commit_group(Group& g);
  // The error every write gets while the data folder's file system has less than
  // Options::min_free_disk_bytes free beyond the size of the memtables (what their flush
  // will write), checked at most every 250 ms; else nullopt. Also
  // resumes RocksDB after a failed write once there is room again. Writer thread only.
  std::optional<Error> disk_guard();
  // Adds the new events of batch i to write_batch_: skips identical retries, refuses a key
  // stored with other content (repair writes skip it), refuses sealed intervals to
  // non-repair writes. Sets g.errors[i] (the batch is rolled back) or g.failure.
  void add_events(Group& g, std::size_t i);
  // Adds hint batch i; counts its new keys.
  void add_hints(Group& g, std::size_t i);
  std::uint32_t stream_id_for(const Group& g, const std::string& name, bool* is_new) const;
  static Error key_conflict(const EventBatch& b, const char* key16);
  // Moves `c` to the interval at `start` for the partition of `prefix` (8 bytes), loading
  // the partition's frontier. False (g.failure set) when reading RocksDB failed.
  bool enter_interval(Group& g, Cursor& c, std::uint64_t start, const char* prefix,
                      bool new_stream);
  // The largest event key stored in (cf, prefix), nullopt if none.
  Result<std::optional<KeyFrontier::Key16>> last_key(rocksdb::ColumnFamilyHandle* cf,
                                                     const char* prefix);
  // The value stored, or put earlier in this group, under `key` (24 bytes); nullopt if none.
  // `at` is where the event's record starts in batch i.
  Result<std::optional<std::string_view>> find_stored(Group& g, Cursor& c, std::size_t i,
                                                      const char* at, const char* key);
  void build_overlay(Group& g, Cursor& c, std::size_t i, const char* at);
  // Puts one new event (key: 24 bytes; event_key: its 16 bytes in the batch's records).
  bool put_event(Group& g, Cursor& c, std::size_t i, const char* key, const char* event_key,
                 std::string_view value);
  // Creates the column families of intervals the group writes to that do not exist yet.
  Status create_intervals(const std::vector<Pending>& group);
  Result<rocksdb::ColumnFamilyHandle*> create_interval(std::uint64_t start_ms);
  std::optional<std::uint32_t> find_stream(std::string_view name) const;  // takes catalog_mu_
  // Calls f(16-byte key, value) for each event of (stream_id, partition) in [from, to), in
  // key order across intervals, reading `snapshot`, until f returns false.
  Status for_each_event(std::uint32_t stream_id, std::uint32_t partition, const Key& from,
                        const Key& to, const rocksdb::Snapshot* snapshot,
                        const std::function<bool(const char*, const rocksdb::Slice&)>& f);
  Status to_status(const rocksdb::Status& s, std::string_view what) const;
  void close();

  Options options_;
  std::uint64_t interval_ms_;
  std::shared_ptr<rocksdb::Cache> cache_;  // one block cache for every interval
  rocksdb::ColumnFamilyOptions interval_options_;
  rocksdb::ColumnFamilyOptions meta_options_;
  rocksdb::ColumnFamilyOptions hints_options_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_cf_ = nullptr;    // owned by db_
  // Owned by db_; null until the first hint (created by the writer thread, read by all).
  std::atomic<rocksdb::ColumnFamilyHandle*> hints_cf_{nullptr};
  std::vector<rocksdb::ColumnFamilyHandle*> other_cfs_;  // not intervals, not hints
  rocksdb::WriteBatch write_batch_;                      // writer thread only
  KeyFrontier frontier_;                                 // writer thread only
  // disk_guard()'s state; writer thread only.
  struct DiskState {
    std::chrono::steady_clock::time_point checked{};
    std::uint64_t free_bytes = UINT64_MAX;  // beyond the memtables' size
    bool full = false;            // below the minimum at the last check
    bool write_failed = false;    // a write failed since: RocksDB may need Resume()
    std::chrono::steady_clock::time_point next_resume{};
  } disk_;

  mutable std::mutex seal_mu_;
  mutable std::mutex gate_mu_;
  std::set<std::uint64_t> sealed_;  // interval starts; guarded by gate_mu_

  mutable std::mutex hints_mu_;
  struct HintTotals {
    std::uint64_t events = 0;
    std::uint64_t bytes = 0;  // keys and values
    // A lower bound of their event times (exact after open; kept while any is pending).
    std::uint64_t oldest_ms = std::numeric_limits<std::uint64_t>::max();
  };
  std::map<std::string, HintTotals, std::less<>> hint_counts_;  // guarded by hints_mu_
  std::optional<std::uint64_t> oldest_hint_ms_;                      // guarded by hints_mu_

  mutable std::shared_mutex catalog_mu_;
  std::map<std::uint64_t, Interval> intervals_;                // by start
  std::map<std::string, std::uint32_t, std::less<>> streams_;  // name -> id
  std::uint32_t next_stream_id_ = 1;                           // writer thread only

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Pending> queue_;  // guarded by queue_mu_
  bool stopping_ = false;      // guarded by queue_mu_
  std::atomic<std::uint64_t> queued_bytes_{0};

  std::atomic<std::uint64_t> events_written_{0};
  std::atomic<std::uint64_t> batches_written_{0};
  std::atomic<std::uint64_t> duplicates_{0};
  std::atomic<std::uint64_t> group_commits_{0};
  std::atomic<std::uint64_t> sealed_count_{0};
  std::atomic<std::uint64_t> interval_count_{0};

  std::thread writer_;
};

}  // namespace alldata::storage
