// RocksEventStore's reads for anti-entropy repair: digests of intervals and of key ranges,
// key pages, and events by key. Each answer reads one snapshot.
#include "layout.h"
#include "rocks_event_store.h"

#include <algorithm>
#include <vector>

namespace alldata::storage {

Status RocksEventStore::for_each_event(
    std::uint32_t stream_id, std::uint32_t partition, const Key& from, const Key& to,
    const rocksdb::Snapshot* snapshot,
    const std::function<bool(const char*, const rocksdb::Slice&)>& f) {
  if (!(from < to)) return {};
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  {
    const std::uint64_t first = layout::interval_start(from.time_ms(), interval_ms_);
    const std::uint64_t last = layout::interval_start(to.time_ms(), interval_ms_);
    std::shared_lock lk(catalog_mu_);
    for (auto it = intervals_.lower_bound(first); it != intervals_.end() && it->first <= last;
         ++it) {
      cfs.push_back(it->second.cf);
    }
  }
  char lower[layout::kEventKeySize];
  char upper[layout::kEventKeySize];
  layout::put_prefix(lower, stream_id, partition);
  layout::put_prefix(upper, stream_id, partition);
  std::memcpy(lower + layout::kPrefixSize, from.data(), Key::kSize);
  std::memcpy(upper + layout::kPrefixSize, to.data(), Key::kSize);
  const rocksdb::Slice lower_slice(lower, sizeof lower);
  const rocksdb::Slice upper_slice(upper, sizeof upper);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  ro.iterate_upper_bound = &upper_slice;
  ro.prefix_same_as_start = true;
  ro.fill_cache = false;  // repair reads each range about once
  for (auto* cf : cfs) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    for (it->Seek(lower_slice); it->Valid(); it->Next()) {
      const rocksdb::Slice k = it->key();
      if (k.size() != layout::kEventKeySize) {
        return Error(ErrorCode::kStorageError,
                     "corrupt event key of " + std::to_string(k.size()) + " bytes");
      }
      if (!f(k.data() + layout::kPrefixSize, it->value())) return {};
    }
    if (!it->status().ok()) return to_status(it->status(), "repair read failed");
  }
  return {};
}

Result<std::vector<IntervalDigest>> RocksEventStore::interval_digests(std::string_view stream,
                                                                      std::uint32_t partition,
                                                                      std::uint64_t from_ms,
                                                                      std::uint64_t to_ms) {
  std::vector<IntervalDigest> out;
  const auto stream_id = find_stream(stream);
  if (!stream_id || from_ms >= to_ms) return out;
  std::vector<std::uint64_t> starts;
  {
    std::shared_lock lk(catalog_mu_);
    for (auto it = intervals_.lower_bound(from_ms); it != intervals_.end() && it->first < to_ms;
         ++it) {
      starts.push_back(it->first);
    }
  }
  for (const std::uint64_t start : starts) {
    // Sealed: the stored digest, kept current by repair writes. Else: read the keys.
    auto stored = digest(stream, partition, start);
    if (!stored) return stored.error();
    IntervalDigest d{start, 0, 0};
    if (stored->has_value()) {
      d = **stored;
    } else {
      const Key bounds[] = {Key::at_time(start), Key::at_time(start + interval_ms_)};
      auto computed = range_digests(stream, partition, bounds);
      if (!computed) return computed.error();
      d.count = (*computed)[0].count;
      d.xor_hash = (*computed)[0].xor_hash;
    }
    if (d.count > 0) out.push_back(d);
  }
  return out;
}

Result<std::vector<RangeDigest>> RocksEventStore::range_digests(std::string_view stream,
                                                                std::uint32_t partition,
                                                                std::span<const Key> bounds) {
  if (bounds.size() < 2) {
    return Error(ErrorCode::kBadRequest, "range digests need at least two bounds");
  }
  for (std::size_t i = 1; i < bounds.size(); ++i) {
    if (!(bounds[i - 1] < bounds[i])) {
      return Error(ErrorCode::kBadRequest, "range digest bounds must be strictly ascending");
    }
  }
  std::vector<RangeDigest> out(bounds.size() - 1);
  const auto stream_id = find_stream(stream);
  if (!stream_id) return out;
  SnapshotGuard snapshot(db_.get());
  std::size_t piece = 0;
  Status read = for_each_event(
      *stream_id, partition, bounds.front(), bounds.back(), snapshot.get(),
      [&](const char* key16, const rocksdb::Slice&) {
        while (std::memcmp(key16, bounds[piece + 1].data(), Key::kSize) >= 0) ++piece;
        out[piece].count += 1;
        out[piece].xor_hash ^= layout::key_hash(key16);
        return true;
      });
  if (!read) return read.error();
  return out;
}

Result<KeyPage> RocksEventStore::keys(std::string_view stream, std::uint32_t partition, Key from,
                                      Key to, std::size_t max_keys) {
  KeyPage page;
  page.next_from = to;
  const auto stream_id = find_stream(stream);
  if (!stream_id) return page;
  const std::size_t limit = std::max<std::size_t>(1, max_keys);
  SnapshotGuard snapshot(db_.get());
  Status read = for_each_event(*stream_id, partition, from, to, snapshot.get(),
                               [&](const char* key16, const rocksdb::Slice&) {
                                 const Key k =
                                     Key::from_raw(reinterpret_cast<const std::uint8_t*>(key16));
                                 if (page.keys.size() == limit) {
                                   page.done = false;
                                   page.next_from = k;
                                   return false;
                                 }
                                 page.keys.push_back(k);
                                 return true;
                               });
  if (!read) return read.error();
  return page;
}

Result<EventBatch> RocksEventStore::events(std::string_view stream, std::uint32_t partition,
                                           std::span<const Key> keys, std::size_t max_bytes,
                                           std::optional<Key>* next) {
  EventBatch batch(stream, partition);
  batch.set_repair(true);
  *next = std::nullopt;
  const auto stream_id = find_stream(stream);
  if (!stream_id) return batch;
  SnapshotGuard snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  ro.fill_cache = false;
  char key[layout::kEventKeySize];
  layout::put_prefix(key, *stream_id, partition);
  std::string value;
  std::vector<HeaderView> headers;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (batch.size() > 0 && batch.bytes() >= max_bytes) {
      *next = keys[i];
      break;
    }
    rocksdb::ColumnFamilyHandle* cf = nullptr;
    {
      std::shared_lock lk(catalog_mu_);
      auto it = intervals_.find(layout::interval_start(keys[i].time_ms(), interval_ms_));
      if (it != intervals_.end()) cf = it->second.cf;
    }
    if (cf == nullptr) continue;
    std::memcpy(key + layout::kPrefixSize, keys[i].data(), Key::kSize);
    const rocksdb::Status s = db_->Get(ro, cf, rocksdb::Slice(key, sizeof key), &value);
    if (s.IsNotFound()) continue;
    if (!s.ok()) return to_status(s, "repair read failed").error();
    headers.clear();
    layout::DecodedValue decoded;
    if (!layout::decode_value(value, headers, &decoded)) {
      return Error(ErrorCode::kStorageError,
                   "corrupt event value at " + keys[i].to_text() + " in stream " +
                       std::string(stream));
    }
    batch.add(keys[i], decoded.payload, headers);
  }
  return batch;
}

}  // namespace alldata::storage
