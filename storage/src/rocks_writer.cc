// RocksEventStore's writer thread: the queue, group commit, and the rules every stored
// event obeys (intervals and sealing, immutability, digests of sealed intervals, hints).
// See rocks_event_store.h for the threads and locks.
#include "rocks_event_store.h"

#include "layout.h"
#include "records.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <limits>
#include <tuple>
#include <unordered_map>

namespace alldata::storage {
namespace {

// A WriteBatch keeps its buffer between groups; one that grew past this is released.
constexpr std::size_t kKeepWriteBatchBytes = 64u << 20;
// A group takes queued batches up to this size (or one batch, if bigger): bounds the
// WriteBatch copy and how long the group's first batch waits for its last.
constexpr std::uint64_t kMaxGroupBytes = 32u << 20;

}  // namespace

// ---- writes --------------------------------------------------------------------------------

void RocksEventStore::write(EventBatch batch, std::function<void(Status)> done) {
  enqueue(Pending{std::move(batch), std::move(done), std::nullopt});
}

void RocksEventStore::write_hint(std::string_view target_node_id, EventBatch batch,
                                 std::function<void(Status)> done) {
  if (target_node_id.empty() || target_node_id.size() > layout::kMaxHintTargetSize) {
    done(Error(ErrorCode::kBadRequest, "a hint target must be 1 to " +
                                           std::to_string(layout::kMaxHintTargetSize) +
                                           " bytes, got " +
                                           std::to_string(target_node_id.size())));
    return;
  }
  if (batch.stream().empty() || batch.stream().size() > 0xFFFF) {
    done(Error(ErrorCode::kInvalidStream, "stream name is empty or too long"));
    return;
  }
  enqueue(Pending{std::move(batch), std::move(done), std::string(target_node_id)});
}

void RocksEventStore::enqueue(Pending pending) {
  EventBatch& batch = pending.batch;
  std::function<void(Status)>& done = pending.done;
  const std::uint64_t bytes = batch.bytes();
  bool notify = false;
  {
    std::unique_lock lk(queue_mu_);
    if (stopping_) {
      lk.unlock();
      done(Error(ErrorCode::kShuttingDown, "the event store is closing"));
      return;
    }
    const std::uint64_t queued = queued_bytes_.load(std::memory_order_relaxed);
    if (queued + bytes > options_.max_queued_bytes) {
      lk.unlock();
      done(Error(ErrorCode::kOverloaded, "storage write queue full: " + std::to_string(queued) +
                                             " bytes queued, batch of " + std::to_string(bytes) +
                                             ", bound " +
                                             std::to_string(options_.max_queued_bytes)));
      return;
    }
    queued_bytes_.store(queued + bytes, std::memory_order_relaxed);
    // The writer only waits on an empty queue: wake it when this makes the queue non-empty.
    notify = queue_.empty();
    queue_.push_back(std::move(pending));
  }
  if (notify) queue_cv_.notify_one();
}

void RocksEventStore::run_writer() {
  std::vector<Pending> group;
  for (;;) {
    {
      std::unique_lock lk(queue_mu_);
      queue_cv_.wait(lk, [this] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything queued is written
      std::uint64_t bytes = 0;
      while (!queue_.empty() &&
             (group.empty() || bytes + queue_.front().batch.bytes() <= kMaxGroupBytes)) {
        bytes += queue_.front().batch.bytes();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    write_group(group);
    group.clear();
  }
}

Status RocksEventStore::create_intervals(const std::vector<Pending>& group) {
  std::uint64_t last = std::numeric_limits<std::uint64_t>::max();
  for (const auto& p : group) {
    if (p.hint_target && hints_cf_.load() == nullptr) {
      // Created with the first hint, so a store that never held one has no such family.
      rocksdb::ColumnFamilyHandle* handle = nullptr;
      const rocksdb::Status s =
          db_->CreateColumnFamily(hints_options_, std::string(layout::kHintsCfName), &handle);
      if (!s.ok()) return to_status(s, "cannot create the hints column family");
      hints_cf_.store(handle);
      options_.logger->info("event store: created the hints column family");
    }
    if (p.batch.stream().empty() || p.hint_target) continue;
    RecordReader reader(p.batch.records());
    const char* key;
    std::string_view value;
    while (reader.next(&key, &value)) {
      const std::uint64_t start = layout::interval_start(time_of(key), interval_ms_);
      if (start == last) continue;
      last = start;
      if (intervals_.count(start)) continue;  // the writer is the only one adding
      auto created = create_interval(start);
      if (!created) return created.error();
    }
  }
  return {};
}

Result<rocksdb::ColumnFamilyHandle*> RocksEventStore::create_interval(std::uint64_t start_ms) {
  std::string name = layout::interval_cf_name(start_ms);
  rocksdb::ColumnFamilyHandle* handle = nullptr;
  const rocksdb::Status s = db_->CreateColumnFamily(interval_options_, name, &handle);
  if (!s.ok()) return to_status(s, "cannot create interval " + name).error();
  options_.logger->info("event store: created interval {}", name);
  {
    std::unique_lock lk(catalog_mu_);
    intervals_.emplace(start_ms, Interval{std::move(name), handle});
  }
  interval_count_.fetch_add(1, std::memory_order_relaxed);
  return handle;
}

// ---- one group -------------------------------------------------------------------------------

// What write_group() gathers while it builds the group's one WriteBatch.
struct RocksEventStore::Group {
  struct Put {
    std::size_t batch;       // index in `batches`: ignored once that batch failed
    std::string_view value;  // points into that batch's records
  };
  // Keys put earlier in this group into one partition, kept only for partitions where some
  // key needed a read: RocksDB does not see them before the group is written.
  using Overlay = std::unordered_map<std::string_view, Put>;

  explicit Group(std::vector<Pending>& b) : batches(b), errors(b.size()) {}

  std::vector<Pending>& batches;
  std::vector<std::optional<Error>> errors;
  std::optional<Error> failure;  // fails every batch of the group
  std::vector<NewStream> new_streams;
  // Digests of sealed intervals touched by repair writes, by (start, stream id, partition).
  std::map<std::tuple<std::uint64_t, std::uint32_t, std::uint32_t>, layout::Digest> digests;
  std::map<const KeyFrontier::Partition*, Overlay> overlays;
  std::set<std::string> hint_keys_seen;
  std::map<std::string, HintTotals> new_hints;
  std::optional<std::uint64_t> new_hint_min_ms;  // oldest event time among new hints
  std::string read_value;                        // the last stored value read
  std::uint64_t events_ok = 0;
  std::uint64_t batches_ok = 0;
  std::uint64_t duplicates = 0;         // identical retries: stored once, already
  std::uint64_t conflicts_skipped = 0;  // repair writes of keys stored with other content
};

// Where add_events() is in a batch: the interval, and the partition's frontier there.
struct RocksEventStore::Cursor {
  std::uint64_t start = std::numeric_limits<std::uint64_t>::max();
  const Interval* iv = nullptr;
  bool sealed = false;
  KeyFrontier::Partition* frontier = nullptr;
  Group::Overlay* overlay = nullptr;  // null until a key of this partition needed a read
  layout::Digest* digest = nullptr;   // sealed intervals: loaded at the first new key
};

void RocksEventStore::write_group(std::vector<Pending>& batches) {
  Group g(batches);
  std::uint64_t group_bytes = 0;
  bool any_repair = false;
  bool any_hints = false;
  for (const auto& p : batches) {
    group_bytes += p.batch.bytes();
    any_repair = any_repair || (p.batch.repair() && !p.hint_target);
    any_hints = any_hints || p.hint_target.has_value();
  }

  // A repair write may update the digest of a sealed interval: never while it is computed.
  std::unique_lock seal_lock(seal_mu_, std::defer_lock);
  if (any_repair) seal_lock.lock();
  if (auto full = disk_guard()) {
    g.failure = std::move(*full);
  } else if (Status created = create_intervals(batches); !created) {
    options_.logger->error("event store: {}", created.error().message);
    g.failure = created.error();
  }

  std::unique_lock gate(gate_mu_);
  // Hint counts: which hint keys are new is decided under the lock that delete_hints()
  // takes, and the counts change only once the group is written.
  std::unique_lock hints_lock(hints_mu_, std::defer_lock);
  if (any_hints) hints_lock.lock();
  frontier_.trim();
  write_batch_.Clear();
  for (std::size_t i = 0; i < batches.size() && !g.failure; ++i) {
    if (batches[i].batch.stream().empty()) {
      g.errors[i] = Error(ErrorCode::kInvalidStream, "stream name is empty");
    } else if (batches[i].hint_target) {
      add_hints(g, i);
    } else {
      add_events(g, i);
    }
  }
  commit_group(g);
  if (hints_lock.owns_lock()) hints_lock.unlock();
  if (write_batch_.GetDataSize() > kKeepWriteBatchBytes) write_batch_ = rocksdb::WriteBatch();
  gate.unlock();
  if (seal_lock.owns_lock()) seal_lock.unlock();

  if (!g.new_streams.empty()) {
    std::unique_lock lk(catalog_mu_);
    for (auto& n : g.new_streams) streams_.emplace(std::move(n.name), n.id);
    next_stream_id_ += static_cast<std::uint32_t>(g.new_streams.size());
  }
  if (g.conflicts_skipped > 0) {
    options_.logger->warn("event store: {} repair or hint events were not stored: their keys "
                          "are stored with other content, which is kept (events never change)",
                          g.conflicts_skipped);
  }
  queued_bytes_.fetch_sub(group_bytes, std::memory_order_relaxed);
  events_written_.fetch_add(g.events_ok, std::memory_order_relaxed);
  batches_written_.fetch_add(g.batches_ok, std::memory_order_relaxed);
  duplicates_.fetch_add(g.duplicates, std::memory_order_relaxed);
  for (std::size_t i = 0; i < batches.size(); ++i) {
    if (g.errors[i]) {
      batches[i].done(std::move(*g.errors[i]));
    } else {
      batches[i].done(Status{});
    }
  }
}

std::optional<Error> RocksEventStore::disk_guard() {
  using std::chrono::steady_clock;
  const auto now = steady_clock::now();
  if (options_.min_free_disk_bytes > 0 && now - disk_.checked >= std::chrono::milliseconds(250)) {
    disk_.checked = now;
    struct statvfs fs {};
    std::uint64_t in_memory = 0;  // flushing the memtables writes about this much
    db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &in_memory);
    if (::statvfs(options_.path.c_str(), &fs) == 0) {
      const std::uint64_t free = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
      disk_.free_bytes = free > in_memory ? free - in_memory : 0;
      const bool full = disk_.free_bytes < options_.min_free_disk_bytes;
      if (full != disk_.full) {
        if (full) {
          options_.logger->error("event store: disk full: {} MiB free in {} ({} MiB of it kept to flush what is "
                                 "in memory), below the minimum of {} MiB: writes are refused until space is "
                                 "freed (reads go on)",
                                 free >> 20, options_.path, in_memory >> 20, options_.min_free_disk_bytes >> 20);
        } else {
          options_.logger->warn("event store: {} MiB free again in {}: writes resume", free >> 20, options_.path);
        }
      }
      disk_.full = full;
    }
  }
  if (disk_.full) {
    return Error(ErrorCode::kStorageError,
                 "disk full: " + std::to_string(disk_.free_bytes >> 20) + " MiB free in " + options_.path +
                     " beyond what flushing memory needs" +
                     ", below the minimum of " + std::to_string(options_.min_free_disk_bytes >> 20) +
                     " MiB (min-free-disk-bytes): writes are refused until space is freed");
  }
  // A failed write (RocksDB's own ENOSPC, say) can leave RocksDB refusing writes until it
  // recovers; it recovers from ENOSPC by itself (its SstFileManager watches the space), and
  // Resume() is asked at most once a second as well.
  if (disk_.write_failed && now >= disk_.next_resume) {
    disk_.next_resume = now + std::chrono::seconds(1);
    const rocksdb::Status r = db_->Resume();
    if (r.ok()) {
      disk_.write_failed = false;
    } else {
      options_.logger->debug("event store: RocksDB does not resume yet: {}", r.ToString());
    }
  }
  return std::nullopt;
}

void RocksEventStore::commit_group(Group& g) {
  for (const auto& [k, d] : g.digests) {
    const auto& [start, stream_id, partition] = k;
    write_batch_.Put(default_cf_,
                     layout::digest_key(intervals_.at(start).name, stream_id, partition),
                     layout::encode_digest(d));
  }
  if (!g.failure && write_batch_.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    const rocksdb::Status s = db_->Write(wo, &write_batch_);
    group_commits_.fetch_add(1, std::memory_order_relaxed);
    if (!s.ok()) {
      g.failure = to_status(s, "write failed").error();
      disk_.write_failed = true;
    }
  }
  if (g.failure) {
    // Nothing of the group is stored. The frontier may now be above what is stored, which
    // only costs reads.
    options_.logger->error("event store: group of {} batches failed: {}", g.batches.size(),
                           g.failure->message);
    for (auto& err : g.errors) {
      if (!err) err = *g.failure;
    }
    g.new_streams.clear();
    g.events_ok = g.batches_ok = g.duplicates = g.conflicts_skipped = 0;
    return;
  }
  for (const auto& [target, n] : g.new_hints) {
    hint_counts_[target].events += n.events;
    hint_counts_[target].bytes += n.bytes;
    hint_counts_[target].oldest_ms = std::min(hint_counts_[target].oldest_ms, n.oldest_ms);
  }
  if (g.new_hint_min_ms && (!oldest_hint_ms_ || *g.new_hint_min_ms < *oldest_hint_ms_)) {
    oldest_hint_ms_ = g.new_hint_min_ms;
  }
}

std::uint32_t RocksEventStore::stream_id_for(const Group& g, const std::string& name,
                                             bool* is_new) const {
  *is_new = false;
  if (auto it = streams_.find(name); it != streams_.end()) return it->second;
  if (auto n = std::find_if(g.new_streams.begin(), g.new_streams.end(),
                            [&](const NewStream& s) { return s.name == name; });
      n != g.new_streams.end()) {
    return n->id;
  }
  *is_new = true;
  return next_stream_id_ + static_cast<std::uint32_t>(g.new_streams.size());
}

void RocksEventStore::add_events(Group& g, std::size_t i) {
  const EventBatch& b = g.batches[i].batch;
  if (b.size() == 0) return;  // nothing to store; does not create the stream
  bool is_new = false;
  const std::uint32_t stream_id = stream_id_for(g, b.stream(), &is_new);
  char key[layout::kEventKeySize];
  layout::put_prefix(key, stream_id, b.partition());
  write_batch_.SetSavePoint();
  Cursor c;
  RecordReader reader(b.records());
  std::uint64_t added = 0;
  while (!g.errors[i] && !g.failure) {
    const char* at = reader.position();
    const char* event_key;
    std::string_view value;
    if (!reader.next(&event_key, &value)) break;
    const std::uint64_t start = layout::interval_start(time_of(event_key), interval_ms_);
    std::memcpy(key + layout::kPrefixSize, event_key, Key::kSize);
    if (start != c.start && !enter_interval(g, c, start, key, is_new)) break;
    if (c.sealed && !b.repair()) {
      g.errors[i] = Error(ErrorCode::kIntervalSealed,
                          "interval " + c.iv->name + " is sealed: it accepts repair writes only");
      break;
    }
    if (c.frontier->maybe_stored(event_key)) {
      auto stored = find_stored(g, c, i, at, key);
      if (!stored) {
        g.failure = stored.error();
        break;
      }
      if (*stored) {
        if (**stored == value) {
          ++g.duplicates;  // an identical retry: nothing new to store
        } else if (b.repair()) {
          ++g.conflicts_skipped;  // the first content stays
        } else {
          g.errors[i] = key_conflict(b, event_key);
        }
        continue;
      }
    }
    if (!put_event(g, c, i, key, event_key, value)) break;
    ++added;
  }
  if (g.failure) return;  // the whole group is dropped
  if (!g.errors[i] && !reader.at_end()) {
    g.errors[i] = Error(ErrorCode::kInternal, "malformed EventBatch records");
  }
  if (g.errors[i]) {
    (void)write_batch_.RollbackToSavePoint();  // cannot fail: a save point is set
    return;
  }
  (void)write_batch_.PopSavePoint();  // cannot fail: a save point is set
  if (is_new) {
    char id[4];
    layout::put_u32_be(id, stream_id);
    write_batch_.Put(default_cf_, layout::stream_key(b.stream()), rocksdb::Slice(id, 4));
    g.new_streams.push_back(NewStream{b.stream(), stream_id});
  }
  g.events_ok += added;
  ++g.batches_ok;
}

Error RocksEventStore::key_conflict(const EventBatch& b, const char* key16) {
  return Error(ErrorCode::kKeyConflict,
               "key " + Key::from_raw(reinterpret_cast<const std::uint8_t*>(key16)).to_text() +
                   " of stream '" + b.stream() + "' partition " + std::to_string(b.partition()) +
                   " is already stored with other content; an event never changes");
}

bool RocksEventStore::enter_interval(Group& g, Cursor& c, std::uint64_t start,
                                     const char* prefix, bool new_stream) {
  c.start = start;
  c.iv = &intervals_.at(start);  // created by create_intervals()
  c.sealed = sealed_.count(start) != 0;
  c.digest = nullptr;
  const std::uint32_t stream_id = layout::get_u32_be(prefix);
  const std::uint32_t partition = layout::get_u32_be(prefix + 4);
  c.frontier = frontier_.find(start, stream_id, partition);
  if (c.frontier == nullptr) {
    std::optional<KeyFrontier::Key16> last;
    if (!new_stream) {
      auto read = last_key(c.iv->cf, prefix);
      if (!read) {
        g.failure = read.error();
        return false;
      }
      last = *read;
    }
    c.frontier = frontier_.add(start, stream_id, partition, last);
  }
  auto o = g.overlays.find(c.frontier);
  c.overlay = o == g.overlays.end() ? nullptr : &o->second;
  return true;
}

Result<std::optional<KeyFrontier::Key16>> RocksEventStore::last_key(
    rocksdb::ColumnFamilyHandle* cf, const char* prefix) {
  char upper[layout::kEventKeySize];
  std::memcpy(upper, prefix, layout::kPrefixSize);
  std::memset(upper + layout::kPrefixSize, 0xFF, Key::kSize);
  rocksdb::ReadOptions ro;
  ro.prefix_same_as_start = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
  it->SeekForPrev(rocksdb::Slice(upper, sizeof upper));
  if (it->Valid() && it->key().size() == layout::kEventKeySize &&
      std::memcmp(it->key().data(), prefix, layout::kPrefixSize) == 0) {
    KeyFrontier::Key16 k;
    std::memcpy(k.data(), it->key().data() + layout::kPrefixSize, Key::kSize);
    return std::optional(k);
  }
  if (!it->status().ok()) return to_status(it->status(), "cannot read a partition's last key").error();
  return std::optional<KeyFrontier::Key16>();
}

Result<std::optional<std::string_view>> RocksEventStore::find_stored(Group& g, Cursor& c,
                                                                     std::size_t i,
                                                                     const char* at,
                                                                     const char* key) {
  // RocksDB first: what it holds is what stays. Then what this group put before.
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), c.iv->cf,
                                     rocksdb::Slice(key, layout::kEventKeySize), &g.read_value);
  if (s.ok()) return std::optional<std::string_view>(g.read_value);
  if (!s.IsNotFound()) return to_status(s, "cannot read " + c.iv->name).error();
  if (c.overlay == nullptr) build_overlay(g, c, i, at);
  const auto put = c.overlay->find(std::string_view(key + layout::kPrefixSize, Key::kSize));
  if (put == c.overlay->end() || g.errors[put->second.batch]) {
    return std::optional<std::string_view>();
  }
  return std::optional<std::string_view>(put->second.value);
}

void RocksEventStore::build_overlay(Group& g, Cursor& c, std::size_t i, const char* at) {
  Group::Overlay& overlay = g.overlays[c.frontier];
  c.overlay = &overlay;
  const EventBatch& current = g.batches[i].batch;
  auto add = [&](std::size_t j, const char* stop) {
    RecordReader r(g.batches[j].batch.records());
    const char* k;
    std::string_view v;
    while (r.position() != stop && r.next(&k, &v)) {
      if (layout::interval_start(time_of(k), interval_ms_) != c.start) continue;
      overlay.insert_or_assign(std::string_view(k, Key::kSize), Group::Put{j, v});
    }
  };
  // Entries of keys that were stored already, not put, are harmless: find_stored() asks
  // RocksDB first.
  for (std::size_t j = 0; j < i; ++j) {
    const Pending& p = g.batches[j];
    if (g.errors[j] || p.hint_target || p.batch.stream() != current.stream() ||
        p.batch.partition() != current.partition()) {
      continue;
    }
    add(j, nullptr);
  }
  add(i, at);
}

bool RocksEventStore::put_event(Group& g, Cursor& c, std::size_t i, const char* key,
                                const char* event_key, std::string_view value) {
  if (c.sealed) {
    if (c.digest == nullptr) {
      const std::uint32_t stream_id = layout::get_u32_be(key);
      const std::uint32_t partition = layout::get_u32_be(key + 4);
      auto [d, inserted] = g.digests.try_emplace({c.start, stream_id, partition});
      if (inserted) {
        std::string stored;
        const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), default_cf_,
                                           layout::digest_key(c.iv->name, stream_id, partition),
                                           &stored);
        if (s.ok()) {
          d->second = layout::decode_digest(stored).value_or(layout::Digest{});
        } else if (!s.IsNotFound()) {
          g.failure = to_status(s, "cannot read the digest of " + c.iv->name).error();
          return false;
        }
      }
      c.digest = &d->second;
    }
    c.digest->count += 1;
    c.digest->xor_hash ^= layout::key_hash(event_key);
  }
  c.frontier->note(event_key);
  if (c.overlay != nullptr) {  // `event_key` points into the batch, alive for the group
    c.overlay->insert_or_assign(std::string_view(event_key, Key::kSize), Group::Put{i, value});
  }
  write_batch_.Put(c.iv->cf, rocksdb::Slice(key, layout::kEventKeySize),
                   rocksdb::Slice(value.data(), value.size()));
  return true;
}

void RocksEventStore::add_hints(Group& g, std::size_t i) {
  const Pending& p = g.batches[i];
  const EventBatch& b = p.batch;
  const std::string& target = *p.hint_target;
  // Which keys are new, and their bytes, before anything is put: past the target's bound
  // the whole batch is refused.
  struct NewHint {
    std::string key;
    std::string_view value;
    bool fresh;
  };
  std::vector<NewHint> hints;
  HintTotals added;
  std::optional<std::uint64_t> min_ms;
  RecordReader reader(b.records());
  const char* event_key;
  std::string_view value;
  std::string existing;
  std::set<std::string> in_batch;
  while (reader.next(&event_key, &value)) {
    std::string key = layout::hint_key(target, b.stream(), b.partition(), event_key);
    bool fresh = false;
    // Twice in this group (or batch): counted once.
    if (!g.hint_keys_seen.count(key) && in_batch.insert(key).second) {
      const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), hints_cf_.load(), key, &existing);
      if (s.IsNotFound()) {
        fresh = true;
        added.events += 1;
        added.bytes += key.size() + value.size();
        const std::uint64_t t = time_of(event_key);
        if (!min_ms || t < *min_ms) min_ms = t;
      } else if (!s.ok()) {
        g.failure = to_status(s, "cannot read the hints").error();
        return;
      }
    }
    hints.push_back({std::move(key), value, fresh});
  }
  if (options_.max_hint_bytes_per_target > 0 && added.bytes > 0) {
    const auto held = hint_counts_.find(target);
    const std::uint64_t before = (held == hint_counts_.end() ? 0 : held->second.bytes) +
                                 g.new_hints[target].bytes;
    if (before + added.bytes > options_.max_hint_bytes_per_target) {
      g.errors[i] = Error(ErrorCode::kOverloaded,
                          "hints held for " + target + " would reach " +
                              std::to_string(before + added.bytes) + " bytes, over the bound of " +
                              std::to_string(options_.max_hint_bytes_per_target) +
                              " (--max-hint-bytes-per-node); anti-entropy repair restores that "
                              "copy later");
      return;
    }
  }
  for (auto& h : hints) {
    write_batch_.Put(hints_cf_.load(), h.key, rocksdb::Slice(h.value.data(), h.value.size()));
    if (h.fresh) g.hint_keys_seen.insert(std::move(h.key));
  }
  auto& totals = g.new_hints[target];
  totals.events += added.events;
  totals.bytes += added.bytes;
  if (min_ms) totals.oldest_ms = std::min(totals.oldest_ms, *min_ms);
  if (min_ms && (!g.new_hint_min_ms || *min_ms < *g.new_hint_min_ms)) g.new_hint_min_ms = min_ms;
}

}  // namespace alldata::storage
