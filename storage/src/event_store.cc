// The parts of the public API that do not depend on RocksDB: EventBatch's record encoding
// and the EventStore factory, which hands out the RocksDB implementation.
#include "alldata/storage/event_store.h"

#include "layout.h"
#include "rocks_event_store.h"

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

}  // namespace alldata::storage
