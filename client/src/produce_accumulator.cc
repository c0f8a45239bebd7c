#include "produce_accumulator.h"

#include "alldata/protocol/partitioner.h"

#include <algorithm>

namespace alldata::client::detail {

namespace {

constexpr std::size_t words(std::size_t bytes) noexcept { return (bytes + 7) / 8 * 8; }

}  // namespace

std::size_t event_wire_bytes(std::size_t payload_size, std::span<const Header> headers) noexcept {
  // Event in a composite list: 1 data word + 3 pointers; key: 2 words; payload padded.
  std::size_t n = 32 + 16 + words(payload_size);
  if (!headers.empty()) {
    n += 8;  // list tag
    for (const auto& h : headers) n += 16 + words(h.name.size() + 1) + words(h.value.size());
  }
  return n;
}

std::size_t request_wire_bytes(std::string_view stream) noexcept {
  // Segment table, root pointer, Request and Produce structs, list tag, stream name.
  return 128 + words(stream.size() + 1);
}

ProduceAccumulator::ProduceAccumulator(std::size_t batch_bytes, std::chrono::milliseconds linger,
                                       std::uint64_t seed)
    : batch_bytes_(batch_bytes), linger_(linger), seed_(seed) {}

ProduceAccumulator::StreamState& ProduceAccumulator::stream_state(std::string_view stream,
                                                                  std::uint32_t partitions) {
  StreamState* s = last_;
  if (s == nullptr || s->name != stream) {
    auto it = streams_.find(stream);
    if (it == streams_.end()) {
      auto fresh = std::make_unique<StreamState>();
      fresh->name = std::string(stream);
      fresh->sticky = static_cast<std::uint32_t>((protocol::hash64(stream) ^ seed_) %
                                                 std::max<std::uint32_t>(partitions, 1));
      it = streams_.emplace(fresh->name, std::move(fresh)).first;
    }
    s = it->second.get();
    last_ = s;
  }
  if (s->partitions != partitions) {
    // The cluster's partition count is new (first use, or another broker said otherwise).
    // Slots are never dropped: batches of partitions that no longer exist still close by
    // linger and go to the broker, which decides (kInvalidPartition).
    if (s->open.size() < static_cast<std::size_t>(partitions) * 4) {
      s->open.resize(static_cast<std::size_t>(partitions) * 4);
    }
    s->partitions = partitions;
    s->sticky %= std::max<std::uint32_t>(partitions, 1);
  }
  return *s;
}

void ProduceAccumulator::close(StreamState& s, std::size_t slot, std::vector<BatchPtr>& closed) {
  BatchPtr b = std::move(s.open[slot]);
  if (!b) return;
  --open_count_;
  if (b->partition == s.sticky && s.partitions > 0) s.sticky = (s.sticky + 1) % s.partitions;
  closed.push_back(std::move(b));
}

std::uint32_t ProduceAccumulator::sticky_partition(std::string_view stream,
                                                   std::uint32_t partitions) {
  return stream_state(stream, partitions).sticky;
}

ProduceAccumulator::Appended ProduceAccumulator::append(
    std::string_view stream, std::optional<std::uint32_t> keyed_partition,
    std::uint32_t partitions, CommitLevel level, const Key& key, std::string_view payload,
    std::span<const Header> headers, Producer::Callback&& callback, std::size_t accounted,
    SteadyClock::time_point now, std::vector<BatchPtr>& closed) {
  StreamState& s = stream_state(stream, partitions);
  const std::size_t event_bytes = event_wire_bytes(payload.size(), headers);
  const auto level_index = static_cast<std::size_t>(level);
  std::uint32_t partition = keyed_partition ? *keyed_partition : s.sticky;
  std::size_t slot = static_cast<std::size_t>(partition) * 4 + level_index;
  if (const auto& b = s.open[slot];
      b && b->event_count > 0 && b->wire_bytes + event_bytes > batch_bytes_) {
    close(s, slot, closed);  // full: this event starts the next batch
    if (!keyed_partition) {
      partition = s.sticky;
      slot = static_cast<std::size_t>(partition) * 4 + level_index;
    }
  }
  Appended out;
  out.partition = partition;
  auto& b = s.open[slot];
  if (!b) {
    b = std::make_unique<ProduceBatch>();
    b->id = next_id_++;
    b->stream = s.name;
    b->partition = partition;
    b->level = level;
    b->created = now;
    b->wire_bytes = request_wire_bytes(s.name);
    b->data.reserve(std::min<std::size_t>(batch_bytes_, 64 * 1024));
    by_age_.push_back(OpenEntry{b->id, now, &s, slot});
    ++open_count_;
    out.new_batch = b->id;
  }
  BatchEvent e;
  e.key = key;
  e.payload_offset = static_cast<std::uint32_t>(b->data.size());
  e.payload_size = static_cast<std::uint32_t>(payload.size());
  b->data.append(payload);
  if (!headers.empty()) {
    e.first_header = static_cast<std::uint32_t>(b->headers.size());
    e.header_count = static_cast<std::uint32_t>(headers.size());
    for (const auto& h : headers) {
      BatchHeader bh;
      bh.name_offset = static_cast<std::uint32_t>(b->data.size());
      bh.name_size = static_cast<std::uint32_t>(h.name.size());
      b->data.append(h.name);
      bh.value_offset = static_cast<std::uint32_t>(b->data.size());
      bh.value_size = static_cast<std::uint32_t>(h.value.size());
      b->data.append(h.value);
      b->headers.push_back(bh);
    }
  }
  if (callback) b->callbacks.emplace_back(b->event_count, std::move(callback));
  b->events.push_back(e);
  ++b->event_count;
  b->wire_bytes += event_bytes;
  b->accounted += accounted;
  if (b->wire_bytes >= batch_bytes_) close(s, slot, closed);
  return out;
}

void ProduceAccumulator::close_expired(SteadyClock::time_point now,
                                       std::vector<BatchPtr>& closed) {
  while (!by_age_.empty()) {
    const OpenEntry e = by_age_.front();
    const bool live = e.slot < e.stream->open.size() && e.stream->open[e.slot] &&
                      e.stream->open[e.slot]->id == e.id;
    if (live && e.created + linger_ > now) break;
    by_age_.pop_front();
    if (live) close(*e.stream, e.slot, closed);
  }
}

void ProduceAccumulator::close_all(std::vector<BatchPtr>& closed) {
  for (const OpenEntry& e : by_age_) {
    if (e.slot < e.stream->open.size() && e.stream->open[e.slot] &&
        e.stream->open[e.slot]->id == e.id) {
      close(*e.stream, e.slot, closed);
    }
  }
  by_age_.clear();
}

std::optional<SteadyClock::time_point> ProduceAccumulator::next_expiry() const {
  for (const OpenEntry& e : by_age_) {
    if (e.slot < e.stream->open.size() && e.stream->open[e.slot] &&
        e.stream->open[e.slot]->id == e.id) {
      return e.created + linger_;
    }
  }
  return std::nullopt;
}

}  // namespace alldata::client::detail
