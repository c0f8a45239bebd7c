// The parts of the public API that do not depend on RocksDB: EventBatch's record encoding
// and the EventStore factory, which hands out the RocksDB implementation.
#include "alldata/storage/event_store.h"

#include "layout.h"
#include "rocks_event_store.h"

#include <algorithm>
#include <vector>

namespace alldata::storage {

EventBatch::EventBatch(std::string_view stream, std::uint32_t partition)
    : stream_(stream), partition_(partition) {}

void EventBatch::reserve(std::size_t events, std::size_t payload_bytes) {
  records_.reserve(records_.size() + events * (layout::kRecordHeaderSize + 1) + payload_bytes);
}

void EventBatch::add(const Key& key, std::string_view payload,
                     std::span<const HeaderView> headers) {
  const std::size_t value_size = layout::value_size(payload, headers);
  const std::size_t at = records_.size();
  // resize() grows geometrically like append(), so a batch costs O(log n) allocations.
  records_.resize(at + layout::kRecordHeaderSize + value_size);
  char* p = records_.data() + at;
  std::memcpy(p, key.data(), Key::kSize);
  layout::put_u32_le(p + Key::kSize, static_cast<std::uint32_t>(value_size));
  layout::encode_value(p + layout::kRecordHeaderSize, payload, headers);
  ++count_;
  min_time_ms_ = std::min(min_time_ms_, key.time_ms());
}

void EventBatch::for_each(const std::function<void(const Key&, std::string_view,
                                                   std::span<const HeaderView>)>& f) const {
  std::vector<HeaderView> headers;
  const char* p = records_.data();
  const char* end = p + records_.size();
  while (p + layout::kRecordHeaderSize <= end) {
    const Key key = Key::from_raw(reinterpret_cast<const std::uint8_t*>(p));
    const std::uint32_t size = layout::get_u32_le(p + Key::kSize);
    const std::string_view value(p + layout::kRecordHeaderSize, size);
    headers.clear();
    layout::DecodedValue decoded;
    // add() wrote these records, so they always decode.
    if (layout::decode_value(value, headers, &decoded)) f(key, decoded.payload, headers);
    p += layout::kRecordHeaderSize + size;
  }
}

Result<std::unique_ptr<EventStore>> EventStore::open(Options options) {
  auto store = RocksEventStore::open(std::move(options));
  if (!store) return store.error();
  return std::unique_ptr<EventStore>(std::move(*store));
}

Result<std::optional<IntervalDigest>> EventStore::digest(std::string_view, std::uint32_t,
                                                         std::uint64_t) {
  return Error(ErrorCode::kInternal, "digest() is not supported by this store");
}

namespace {
Error unsupported(std::string_view what) {
  return Error(ErrorCode::kInternal, std::string(what) + "() is not supported by this store");
}
}  // namespace

Result<std::vector<IntervalDigest>> EventStore::interval_digests(std::string_view, std::uint32_t,
                                                                 std::uint64_t, std::uint64_t) {
  return unsupported("interval_digests");
}
Result<std::vector<RangeDigest>> EventStore::range_digests(std::string_view, std::uint32_t,
                                                           std::span<const Key>) {
  return unsupported("range_digests");
}
Result<KeyPage> EventStore::keys(std::string_view, std::uint32_t, Key, Key, std::size_t) {
  return unsupported("keys");
}
Result<EventBatch> EventStore::events(std::string_view, std::uint32_t, std::span<const Key>,
                                      std::size_t, std::optional<Key>*) {
  return unsupported("events");
}

void EventStore::write_hint(std::string_view, EventBatch, std::function<void(Status)> done) {
  done(Error(ErrorCode::kInternal, "write_hint() is not supported by this store"));
}

Result<HintPage> EventStore::read_hints(std::string_view, std::size_t, std::string_view) {
  return Error(ErrorCode::kInternal, "read_hints() is not supported by this store");
}

Status EventStore::delete_hints(std::string_view, const EventBatch&) {
  return Error(ErrorCode::kInternal, "delete_hints() is not supported by this store");
}

std::map<std::string, std::uint64_t> EventStore::pending_hints() const { return {}; }

}  // namespace alldata::storage
