// RocksEventStore: interval column families, the group-commit writer thread, paged scans
// and sealing with digests. See rocks_event_store.h for the threads and locks, and
// storage/README.md for the on-disk layout and the tuning choices.
#include "rocks_event_store.h"

#include "layout.h"
#include "records.h"
#include "rocks_logger.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/sst_file_manager.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <limits>
#include <tuple>

namespace alldata::storage {
namespace {

constexpr std::size_t kArenaChunkBytes = 64u << 10;

bool has_compression(rocksdb::CompressionType type) {
  const auto supported = rocksdb::GetSupportedCompressions();
  return std::find(supported.begin(), supported.end(), type) != supported.end();
}

rocksdb::DBOptions make_db_options(const std::shared_ptr<spdlog::logger>& logger) {
  rocksdb::DBOptions o;
  o.create_if_missing = true;
  // No LOG file: RocksDB logs through the store's logger (rocks_logger.h says why).
  o.info_log = make_rocksdb_logger(logger);
  // Tracks SST space, and so lets RocksDB recover by itself from ENOSPC once there is room.
  o.sst_file_manager.reset(rocksdb::NewSstFileManager(rocksdb::Env::Default(), o.info_log));
  // Open replays the WAL into memtables without writing SST files, so a store on a full
  // disk still opens (and serves reads); the memtables are flushed later, when there is room.
  o.avoid_flush_during_recovery = true;
  o.create_missing_column_families = true;
  // Two cores: one flush and one compaction at a time.
  o.max_background_jobs = 2;
  // Every interval has its own memtable; only the current one is written, so bound the
  // sum and let old intervals' memtables (and the WAL files they pin) be flushed.
  o.db_write_buffer_size = 256u << 20;
  o.max_total_wal_size = 512u << 20;
  // Smooth writeback instead of bursts at file close.
  o.bytes_per_sync = 1u << 20;
  o.wal_bytes_per_sync = 1u << 20;
  return o;
}

rocksdb::ColumnFamilyOptions make_interval_options(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = 64u << 20;
  o.max_write_buffer_number = 3;
  o.target_file_size_base = 64u << 20;
  o.max_bytes_for_level_base = 256u << 20;
  o.level_compaction_dynamic_level_bytes = true;
  // Fresh data (memtable flushes, L0/L1) uncompressed: flush is on the write path's CPU
  // budget. Deeper levels LZ4; the last level, where nearly everything ends up, ZSTD.
  const auto lz4 = has_compression(rocksdb::kLZ4Compression) ? rocksdb::kLZ4Compression
                                                             : rocksdb::kNoCompression;
  o.compression_per_level = {
      rocksdb::kNoCompression, rocksdb::kNoCompression, lz4, lz4, lz4, lz4, lz4};
  o.compression = lz4;
  if (has_compression(rocksdb::kZSTD)) o.bottommost_compression = rocksdb::kZSTD;
  // Scans are per (stream, partition): the 8-byte prefix is the natural bloom key.
  o.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(layout::kPrefixSize));
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  t.block_size = 16u << 10;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.whole_key_filtering = false;  // point reads are rare (repair only)
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  t.format_version = 5;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

rocksdb::ColumnFamilyOptions make_meta_options(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = 4u << 20;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

// Hints: point reads (is this hint new?) on every hint write, so a whole-key bloom filter.
rocksdb::ColumnFamilyOptions make_hints_options(const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = 16u << 20;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}


}  // namespace

RocksEventStore::RocksEventStore(Token, Options options)
    : options_(std::move(options)),
      interval_ms_(static_cast<std::uint64_t>(options_.interval.count())),
      cache_(rocksdb::NewLRUCache(options_.block_cache_bytes)),
      interval_options_(make_interval_options(cache_)),
      meta_options_(make_meta_options(cache_)),
      hints_options_(make_hints_options(cache_)) {}

Result<std::unique_ptr<RocksEventStore>> RocksEventStore::open(Options options) {
  if (!options.logger) return Error(ErrorCode::kBadRequest, "Options::logger must not be null");
  if (options.path.empty()) return Error(ErrorCode::kBadRequest, "Options::path is empty");
  // Interval names have second precision, so an interval is whole seconds.
  if (options.interval.count() <= 0 || options.interval.count() % 1000 != 0) {
    return Error(ErrorCode::kBadRequest,
                 "Options::interval must be a positive number of whole seconds, got " +
                     std::to_string(options.interval.count()) + " ms");
  }

  auto store = std::make_unique<RocksEventStore>(Token{}, std::move(options));
  const Options& o = store->options_;

  std::error_code ec;
  std::filesystem::create_directories(o.path, ec);
  if (ec) {
    return Error(ErrorCode::kStorageError,
                 "cannot create data folder " + o.path + ": " + ec.message());
  }

  const rocksdb::DBOptions db_options = make_db_options(o.logger);
  std::vector<std::string> names;
  if (!rocksdb::DB::ListColumnFamilies(db_options, o.path, &names).ok()) {
    names = {rocksdb::kDefaultColumnFamilyName};  // a new folder; Open reports real faults
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) {
    descriptors.emplace_back(name, name == rocksdb::kDefaultColumnFamilyName
                                       ? store->meta_options_
                                   : name == layout::kHintsCfName ? store->hints_options_
                                                                   : store->interval_options_);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(db_options, o.path, descriptors, &handles, &raw);
  if (!s.ok()) return store->to_status(s, "cannot open " + o.path).error();
  store->db_.reset(raw);

  for (auto* h : handles) {
    if (h->GetName() == rocksdb::kDefaultColumnFamilyName) {
      store->default_cf_ = h;
    } else if (h->GetName() == layout::kHintsCfName) {
      store->hints_cf_ = h;
    } else if (auto start = layout::parse_interval_cf_name(h->GetName())) {
      store->intervals_.emplace(*start, Interval{h->GetName(), h});
    } else {
      store->other_cfs_.push_back(h);
    }
  }
  store->interval_count_ = store->intervals_.size();

  if (Status loaded = store->load(); !loaded) return loaded.error();
  if (Status counted = store->count_hints(); !counted) return counted.error();

  store->writer_ = std::thread([s = store.get()] { s->run_writer(); });
  o.logger->info("event store opened at {}: {} intervals, {} streams, {} sealed, interval {} ms",
                 o.path, store->intervals_.size(), store->streams_.size(), store->sealed_.size(),
                 store->interval_ms_);
  return store;
}

Status RocksEventStore::load() {
  std::string value;
  rocksdb::Status s = db_->Get(
      rocksdb::ReadOptions(), default_cf_,
      rocksdb::Slice(layout::kIntervalConfigKey.data(), layout::kIntervalConfigKey.size()), &value);
  if (s.IsNotFound()) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const std::string text = std::to_string(interval_ms_);
    s = db_->Put(
        wo, default_cf_,
        rocksdb::Slice(layout::kIntervalConfigKey.data(), layout::kIntervalConfigKey.size()), text);
    if (!s.ok()) return to_status(s, "cannot store the interval length");
  } else if (!s.ok()) {
    return to_status(s, "cannot read the interval length");
  } else {
    std::uint64_t stored = 0;
    const auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), stored);
    if (err != std::errc() || end != value.data() + value.size()) {
      return Error(ErrorCode::kStorageError,
                   "corrupt interval length '" + value + "' in " + options_.path);
    }
    if (stored != interval_ms_) {
      return Error(ErrorCode::kBadRequest,
                   "data folder " + options_.path + " was created with an interval of " +
                       std::to_string(stored) + " ms; Options::interval is " +
                       std::to_string(interval_ms_) + " ms");
    }
  }

  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, default_cf_));
  const auto prefix_slice = [](std::string_view p) { return rocksdb::Slice(p.data(), p.size()); };
  for (it->Seek(prefix_slice(layout::kStreamPrefix));
       it->Valid() && it->key().starts_with(prefix_slice(layout::kStreamPrefix)); it->Next()) {
    if (it->value().size() != 4) {
      return Error(ErrorCode::kStorageError,
                   "corrupt stream catalog entry " + it->key().ToString());
    }
    const std::uint32_t id = layout::get_u32_be(it->value().data());
    std::string name = it->key().ToString().substr(layout::kStreamPrefix.size());
    streams_.emplace(std::move(name), id);
    next_stream_id_ = std::max(next_stream_id_, id + 1);
  }
  for (it->Seek(prefix_slice(layout::kSealedPrefix));
       it->Valid() && it->key().starts_with(prefix_slice(layout::kSealedPrefix)); it->Next()) {
    const std::string name = it->key().ToString().substr(layout::kSealedPrefix.size());
    if (auto start = layout::parse_interval_cf_name(name)) sealed_.insert(*start);
  }
  if (!it->status().ok()) return to_status(it->status(), "cannot read the catalog");
  sealed_count_ = sealed_.size();
  return {};
}

RocksEventStore::~RocksEventStore() { close(); }

void RocksEventStore::close() {
  {
    std::lock_guard lk(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (!db_) return;
  if (!options_.sync) {
    // A clean shutdown makes even unsynced writes durable.
    if (auto s = db_->SyncWAL(); !s.ok()) {
      options_.logger->warn("event store: syncing the WAL at close failed: {}", s.ToString());
    }
  }
  rocksdb::CancelAllBackgroundWork(db_.get(), /*wait=*/true);
  for (auto& [start, iv] : intervals_) {
    (void)db_->DestroyColumnFamilyHandle(iv.cf);  // only fails for a null handle
  }
  for (auto* h : other_cfs_) (void)db_->DestroyColumnFamilyHandle(h);
  if (auto* h = hints_cf_.load()) (void)db_->DestroyColumnFamilyHandle(h);
  if (default_cf_) (void)db_->DestroyColumnFamilyHandle(default_cf_);
  intervals_.clear();
  if (auto s = db_->Close(); !s.ok()) {
    options_.logger->warn("event store: closing RocksDB at {} failed: {}", options_.path,
                          s.ToString());
  }
  db_.reset();
  options_.logger->info("event store at {} closed", options_.path);
}

Status RocksEventStore::to_status(const rocksdb::Status& s, std::string_view what) const {
  std::string message(what);
  message += ": ";
  message += s.ToString();
  return Error(ErrorCode::kStorageError, std::move(message));
}

// ---- hints -----------------------------------------------------------------------------------

Status RocksEventStore::count_hints() {
  if (hints_cf_.load() == nullptr) return {};
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, hints_cf_.load()));
  std::uint64_t total = 0;
  std::lock_guard lk(hints_mu_);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto h = layout::parse_hint_key(std::string_view(it->key().data(), it->key().size()));
    if (!h) return Error(ErrorCode::kStorageError, "corrupt hint key in " + options_.path);
    auto c = hint_counts_.find(h->target);
    if (c == hint_counts_.end()) c = hint_counts_.emplace(std::string(h->target), HintTotals{}).first;
    c->second.events += 1;
    c->second.bytes += it->key().size() + it->value().size();
    ++total;
    const std::uint64_t t = Key::from_raw(reinterpret_cast<const std::uint8_t*>(h->key16)).time_ms();
    c->second.oldest_ms = std::min(c->second.oldest_ms, t);
    if (!oldest_hint_ms_ || t < *oldest_hint_ms_) oldest_hint_ms_ = t;
  }
  if (!it->status().ok()) return to_status(it->status(), "cannot count the hints");
  if (total > 0) {
    options_.logger->info("event store: {} hints pending for {} brokers", total,
                          hint_counts_.size());
  }
  return {};
}

Result<HintPage> RocksEventStore::read_hints(std::string_view target_node_id,
                                             std::size_t max_events,
                                             std::string_view resume_after) {
  HintPage page;
  rocksdb::ColumnFamilyHandle* const hints_cf = hints_cf_.load();
  if (hints_cf == nullptr) return page;  // no hint was ever written
  const std::string prefix = layout::hint_target_prefix(target_node_id);
  const rocksdb::Slice prefix_slice(prefix);
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, hints_cf));
  std::vector<HeaderView> headers;
  const std::size_t limit = std::max<std::size_t>(1, max_events);
  const bool resume = !resume_after.empty() && resume_after.starts_with(prefix);
  if (resume) {
    it->Seek(rocksdb::Slice(resume_after.data(), resume_after.size()));
    if (it->Valid() && it->key() == rocksdb::Slice(resume_after.data(), resume_after.size())) {
      it->Next();
    }
  } else {
    it->Seek(prefix_slice);
  }
  for (; it->Valid() && it->key().starts_with(prefix_slice); it->Next()) {
    if (page.events >= limit) {
      page.done = false;
      break;
    }
    page.resume_after.assign(it->key().data(), it->key().size());
    const auto h = layout::parse_hint_key(std::string_view(it->key().data(), it->key().size()));
    if (!h || h->target != target_node_id) {
      return Error(ErrorCode::kStorageError, "corrupt hint key for " + std::string(target_node_id));
    }
    if (page.batches.empty() || page.batches.back().stream() != h->stream ||
        page.batches.back().partition() != h->partition) {
      page.batches.emplace_back(h->stream, h->partition);
      page.batches.back().set_repair(true);
    }
    headers.clear();
    layout::DecodedValue decoded;
    if (!layout::decode_value(std::string_view(it->value().data(), it->value().size()), headers,
                              &decoded)) {
      return Error(ErrorCode::kStorageError, "corrupt hint value for " +
                                                 std::string(target_node_id) + " in stream " +
                                                 std::string(h->stream));
    }
    page.batches.back().add(Key::from_raw(reinterpret_cast<const std::uint8_t*>(h->key16)),
                            decoded.payload, headers);
    ++page.events;
  }
  if (!it->status().ok()) return to_status(it->status(), "cannot read the hints").error();
  return page;
}

Status RocksEventStore::delete_hints(std::string_view target_node_id,
                                     const EventBatch& delivered) {
  rocksdb::WriteBatch wb;
  std::set<std::string> seen;
  std::uint64_t removed = 0;
  std::uint64_t removed_bytes = 0;
  std::string existing;
  std::lock_guard lk(hints_mu_);
  rocksdb::ColumnFamilyHandle* const hints_cf = hints_cf_.load();
  if (hints_cf == nullptr) return {};  // no hint was ever written
  RecordReader reader(delivered.records());
  const char* event_key;
  std::string_view value;
  while (reader.next(&event_key, &value)) {
    std::string key =
        layout::hint_key(target_node_id, delivered.stream(), delivered.partition(), event_key);
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), hints_cf, key, &existing);
    if (s.IsNotFound()) continue;
    if (!s.ok()) return to_status(s, "cannot read the hints");
    if (!seen.insert(key).second) continue;
    wb.Delete(hints_cf, key);
    ++removed;
    removed_bytes += key.size() + existing.size();
  }
  if (removed == 0) return {};
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  if (const rocksdb::Status s = db_->Write(wo, &wb); !s.ok()) {
    return to_status(s, "cannot delete hints");
  }
  auto c = hint_counts_.find(target_node_id);
  if (c != hint_counts_.end()) {
    c->second.events -= std::min(c->second.events, removed);
    c->second.bytes -= std::min(c->second.bytes, removed_bytes);
    if (c->second.events == 0) hint_counts_.erase(c);
  }
  // Kept as a lower bound while any hint is pending; exact again once none is.
  if (hint_counts_.empty()) oldest_hint_ms_.reset();
  return {};
}

std::optional<std::uint64_t> RocksEventStore::oldest_hint_ms() const {
  std::lock_guard lk(hints_mu_);
  return oldest_hint_ms_;
}

std::map<std::string, std::uint64_t> RocksEventStore::oldest_hint_ms_by_target() const {
  std::lock_guard lk(hints_mu_);
  std::map<std::string, std::uint64_t> out;
  for (const auto& [target, totals] : hint_counts_) out.emplace(target, totals.oldest_ms);
  return out;
}

std::map<std::string, std::uint64_t> RocksEventStore::pending_hints() const {
  std::lock_guard lk(hints_mu_);
  std::map<std::string, std::uint64_t> out;
  for (const auto& [target, totals] : hint_counts_) out.emplace(target, totals.events);
  return out;
}

std::uint64_t RocksEventStore::pending_hint_bytes(std::string_view target_node_id) const {
  std::lock_guard lk(hints_mu_);
  auto c = hint_counts_.find(target_node_id);
  return c == hint_counts_.end() ? 0 : c->second.bytes;
}

// ---- reads ---------------------------------------------------------------------------------

std::optional<std::uint32_t> RocksEventStore::find_stream(std::string_view name) const {
  std::shared_lock lk(catalog_mu_);
  auto it = streams_.find(name);
  if (it == streams_.end()) return std::nullopt;
  return it->second;
}

Result<ScanPage> RocksEventStore::scan(const ScanQuery& q) {
  ScanPage page;
  page.done = true;
  page.next_from = q.to;
  if (!(q.from < q.to)) return page;
  const auto stream_id = find_stream(q.stream);
  if (!stream_id) return page;

  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  {
    const std::uint64_t first = layout::interval_start(q.from.time_ms(), interval_ms_);
    const std::uint64_t last = layout::interval_start(q.to.time_ms(), interval_ms_);
    std::shared_lock lk(catalog_mu_);
    for (auto it = intervals_.lower_bound(first); it != intervals_.end() && it->first <= last;
         ++it) {
      cfs.push_back(it->second.cf);
    }
  }
  if (cfs.empty()) return page;

  char lower[layout::kEventKeySize];
  char upper[layout::kEventKeySize];
  layout::put_prefix(lower, *stream_id, q.partition);
  layout::put_prefix(upper, *stream_id, q.partition);
  std::memcpy(lower + layout::kPrefixSize, q.from.data(), Key::kSize);
  std::memcpy(upper + layout::kPrefixSize, q.to.data(), Key::kSize);
  const rocksdb::Slice lower_slice(lower, sizeof lower);
  const rocksdb::Slice upper_slice(upper, sizeof upper);

  // One snapshot so that the page is one point in time across intervals.
  SnapshotGuard snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  ro.iterate_upper_bound = &upper_slice;
  ro.prefix_same_as_start = true;
  // Batch scans read each range about once: keep them from evicting the cache's hot blocks.
  ro.fill_cache = false;

  const std::size_t max_events = std::max<std::size_t>(1, q.max_events);
  std::vector<std::size_t> header_begin;  // per event, into page.header_storage
  std::string* chunk = nullptr;
  auto keep = [&](rocksdb::Slice v) -> std::string_view {
    if (chunk == nullptr || chunk->capacity() - chunk->size() < v.size()) {
      page.arena.push_back(std::make_unique<std::string>());
      chunk = page.arena.back().get();
      chunk->reserve(std::max(v.size(), kArenaChunkBytes));
    }
    const std::size_t at = chunk->size();
    chunk->append(v.data(), v.size());
    return {chunk->data() + at, v.size()};
  };

  std::size_t bytes = 0;
  bool full = false;
  for (auto* cf : cfs) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    for (it->Seek(lower_slice); it->Valid(); it->Next()) {
      if (full) {
        page.done = false;
        break;
      }
      const rocksdb::Slice k = it->key();
      if (k.size() != layout::kEventKeySize) {
        return Error(ErrorCode::kStorageError,
                     "corrupt event key of " + std::to_string(k.size()) + " bytes");
      }
      const Key key =
          Key::from_raw(reinterpret_cast<const std::uint8_t*>(k.data()) + layout::kPrefixSize);
      header_begin.push_back(page.header_storage.size());
      layout::DecodedValue decoded;
      if (!layout::decode_value(keep(it->value()), page.header_storage, &decoded)) {
        return Error(ErrorCode::kStorageError,
                     "corrupt event value at " + key.to_text() + " in stream " + q.stream);
      }
      page.events.push_back(StoredEvent{key, q.partition, decoded.payload, {}});
      bytes += it->value().size();  // payload and headers: what the answer will carry
      full = page.events.size() >= max_events || bytes >= q.max_bytes;
    }
    if (!it->status().ok()) return to_status(it->status(), "scan failed").error();
    if (!page.done) break;
  }

  // header_storage has stopped growing: now its addresses are stable.
  for (std::size_t i = 0; i < page.events.size(); ++i) {
    const std::size_t end =
        i + 1 < page.events.size() ? header_begin[i + 1] : page.header_storage.size();
    page.events[i].headers = std::span<const HeaderView>(
        page.header_storage.data() + header_begin[i], end - header_begin[i]);
  }
  if (!page.events.empty()) page.next_from = page.events.back().key.successor();
  return page;
}

std::vector<std::string> RocksEventStore::streams() const {
  std::shared_lock lk(catalog_mu_);
  std::vector<std::string> names;
  names.reserve(streams_.size());
  for (const auto& [name, id] : streams_) names.push_back(name);
  return names;
}

Status RocksEventStore::put_meta(std::string_view name, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const rocksdb::Status s =
      db_->Put(wo, default_cf_, layout::meta_key(name), rocksdb::Slice(value.data(), value.size()));
  if (!s.ok()) return to_status(s, "cannot store meta " + std::string(name));
  return {};
}

Result<std::optional<std::string>> RocksEventStore::get_meta(std::string_view name) {
  std::string value;
  const rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), default_cf_, layout::meta_key(name), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return to_status(s, "cannot read meta " + std::string(name)).error();
  return std::optional<std::string>(std::move(value));
}

// ---- sealing -------------------------------------------------------------------------------

Result<std::size_t> RocksEventStore::seal_old_intervals(std::uint64_t now_ms) {
  std::lock_guard seal_lock(seal_mu_);
  const auto seal_after =
      static_cast<std::uint64_t>(std::max<std::int64_t>(0, options_.seal_after.count()));

  std::vector<std::pair<std::uint64_t, Interval>> candidates;
  std::optional<SnapshotGuard> snapshot;
  {
    std::lock_guard gate(gate_mu_);
    {
      std::shared_lock lk(catalog_mu_);
      for (const auto& [start, iv] : intervals_) {
        if (start + interval_ms_ + seal_after > now_ms) break;  // ordered by start
        if (!sealed_.count(start)) candidates.emplace_back(start, iv);
      }
    }
    if (candidates.empty()) return std::size_t{0};
    // From here on normal writes into these intervals are refused, and the writer is not
    // between building and writing a group: the snapshot holds everything they will hold.
    for (const auto& c : candidates) sealed_.insert(c.first);
    snapshot.emplace(db_.get());
  }
  auto unseal = [&] {
    std::lock_guard gate(gate_mu_);
    for (const auto& c : candidates) sealed_.erase(c.first);
  };

  rocksdb::WriteBatch batch;
  const std::string seal_time = std::to_string(now_ms);
  std::size_t digest_count = 0;
  for (const auto& [start, iv] : candidates) {
    std::map<std::pair<std::uint32_t, std::uint32_t>, layout::Digest> digests;
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot->get();
    ro.total_order_seek = true;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, iv.cf));
    std::pair<std::uint32_t, std::uint32_t> last_id{0, 0};
    layout::Digest* d = nullptr;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const rocksdb::Slice k = it->key();
      if (k.size() != layout::kEventKeySize) continue;
      const std::pair id{layout::get_u32_be(k.data()), layout::get_u32_be(k.data() + 4)};
      if (d == nullptr || id != last_id) {
        d = &digests[id];
        last_id = id;
      }
      d->count += 1;
      d->xor_hash ^= layout::key_hash(k.data() + layout::kPrefixSize);
    }
    if (!it->status().ok()) {
      unseal();
      return to_status(it->status(), "cannot digest interval " + iv.name).error();
    }
    batch.Put(default_cf_, layout::sealed_key(iv.name), seal_time);
    for (const auto& [id, digest] : digests) {
      batch.Put(default_cf_, layout::digest_key(iv.name, id.first, id.second),
                layout::encode_digest(digest));
    }
    digest_count += digests.size();
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (const rocksdb::Status s = db_->Write(wo, &batch); !s.ok()) {
    unseal();
    return to_status(s, "cannot store seal markers").error();
  }
  sealed_count_.fetch_add(candidates.size(), std::memory_order_relaxed);
  for (const auto& c : candidates) {
    options_.logger->info("event store: sealed interval {}", c.second.name);
  }
  options_.logger->info("event store: sealed {} intervals, {} partition digests", candidates.size(),
                        digest_count);
  return candidates.size();
}

Result<std::optional<IntervalDigest>> RocksEventStore::digest(std::string_view stream,
                                                              std::uint32_t partition,
                                                              std::uint64_t interval_start_ms) {
  // Not while a seal is computing digests or a repair write is updating one.
  std::lock_guard seal_lock(seal_mu_);
  {
    std::lock_guard gate(gate_mu_);
    if (!sealed_.count(interval_start_ms)) return std::optional<IntervalDigest>();
  }
  IntervalDigest result{interval_start_ms, 0, 0};
  const auto stream_id = find_stream(stream);
  if (!stream_id) return std::optional<IntervalDigest>(result);
  std::string value;
  const rocksdb::Status s = db_->Get(
      rocksdb::ReadOptions(), default_cf_,
      layout::digest_key(layout::interval_cf_name(interval_start_ms), *stream_id, partition),
      &value);
  if (s.IsNotFound()) return std::optional<IntervalDigest>(result);
  if (!s.ok()) return to_status(s, "cannot read digest").error();
  const auto d = layout::decode_digest(value);
  if (!d)
    return Error(ErrorCode::kStorageError, "corrupt digest for stream " + std::string(stream));
  result.count = d->count;
  result.xor_hash = d->xor_hash;
  return std::optional<IntervalDigest>(result);
}

Stats RocksEventStore::stats() const {
  Stats s;
  s.events_written = events_written_.load(std::memory_order_relaxed);
  s.batches_written = batches_written_.load(std::memory_order_relaxed);
  s.duplicates = duplicates_.load(std::memory_order_relaxed);
  s.group_commits = group_commits_.load(std::memory_order_relaxed);
  s.queued_bytes = queued_bytes_.load(std::memory_order_relaxed);
  s.intervals = interval_count_.load(std::memory_order_relaxed);
  s.sealed_intervals = sealed_count_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace alldata::storage
