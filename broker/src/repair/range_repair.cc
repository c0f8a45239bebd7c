#include "repair/range_repair.h"

#include <algorithm>
#include <map>

namespace alldata::broker::repair {
namespace asio = boost::asio;

RepairStats& RepairStats::operator+=(const RepairStats& o) {
  ranges_compared += o.ranges_compared;
  ranges_differed += o.ranges_differed;
  keys_listed += o.keys_listed;
  events_to_a += o.events_to_a;
  events_to_b += o.events_to_b;
  bytes_to_a += o.bytes_to_a;
  bytes_to_b += o.bytes_to_b;
  return *this;
}

namespace {

constexpr int kMaxDepth = 16;

// Time-split bounds of [from, to): `from`, then up to fanout-1 millisecond starts strictly
// inside, then `to`. Fewer than three bounds: the range cannot be split by time.
std::vector<Key> split(const Key& from, const Key& to, std::size_t fanout) {
  std::vector<Key> bounds{from};
  const std::uint64_t t0 = from.time_ms();
  const std::uint64_t t1 = to.time_ms();
  const std::uint64_t span = t1 > t0 ? t1 - t0 : 0;
  const std::uint64_t pieces = std::min<std::uint64_t>(fanout, span);
  for (std::uint64_t i = 1; i < pieces; ++i) {
    const Key b = Key::at_time(t0 + span * i / pieces);
    if (bounds.back() < b && b < to) bounds.push_back(b);
  }
  bounds.push_back(to);
  return bounds;
}

class PartitionRepair {
 public:
  PartitionRepair(Replica& a, Replica& b, const std::string& stream, std::uint32_t partition,
                  const RepairLimits& limits, const Throttle& throttle)
      : a_(a), b_(b), stream_(stream), partition_(partition), limits_(limits),
        throttle_(throttle) {}

  asio::awaitable<Status> run(std::uint64_t from_ms, std::uint64_t to_ms,
                              std::uint64_t interval_ms) {
    auto da = co_await a_.interval_digests(stream_, partition_, from_ms, to_ms);
    if (!da) co_return da.error();
    auto db = co_await b_.interval_digests(stream_, partition_, from_ms, to_ms);
    if (!db) co_return db.error();
    // Absent on one side = empty there.
    std::map<std::uint64_t, std::pair<storage::RangeDigest, storage::RangeDigest>> by_start;
    for (const auto& d : *da) by_start[d.interval_start_ms].first = {d.count, d.xor_hash};
    for (const auto& d : *db) by_start[d.interval_start_ms].second = {d.count, d.xor_hash};
    for (const auto& [start, pair] : by_start) {
      ++stats.ranges_compared;
      if (pair.first == pair.second) continue;
      ++stats.ranges_differed;
      Status s = co_await compare(Key::at_time(start), Key::at_time(start + interval_ms),
                                  pair.first.count + pair.second.count, 0);
      if (!s) co_return s;
    }
    co_return co_await flush();
  }

  RepairStats stats;

 private:
  // [from, to) differs and holds `keys` keys on both sides together.
  asio::awaitable<Status> compare(Key from, Key to, std::uint64_t keys, int depth) {
    if (keys <= limits_.leaf_keys || depth >= kMaxDepth) co_return co_await leaf(from, to);
    std::vector<Key> bounds = split(from, to, limits_.fanout);
    if (bounds.size() < 3) co_return co_await leaf(from, to);
    auto da = co_await a_.range_digests(stream_, partition_, bounds);
    if (!da) co_return da.error();
    auto db = co_await b_.range_digests(stream_, partition_, bounds);
    if (!db) co_return db.error();
    if (da->size() + 1 != bounds.size() || db->size() + 1 != bounds.size()) {
      co_return Error(ErrorCode::kProtocolError, "a replica answered digests for other pieces");
    }
    std::size_t holding = 0;
    std::size_t differing = 0;
    for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
      ++stats.ranges_compared;
      holding += (*da)[i].count + (*db)[i].count > 0 ? 1 : 0;
      if ((*da)[i] == (*db)[i]) continue;
      ++stats.ranges_differed;
      ++differing;
    }
    // A difference spread over (nearly) every piece: going deeper would read the whole
    // range again per level and prune nothing, so compare it key by key now.
    if (holding >= 4 && differing * 4 >= holding * 3) co_return co_await leaf(from, to);
    for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
      if ((*da)[i] == (*db)[i]) continue;
      Status s = co_await compare(bounds[i], bounds[i + 1], (*da)[i].count + (*db)[i].count,
                                  depth + 1);
      if (!s) co_return s;
    }
    co_return Status{};
  }

  // Copies what is still pending (the caller's last step).
  asio::awaitable<Status> flush() {
    if (Status s = co_await copy(b_, a_, to_a_, true); !s) co_return s;
    co_return co_await copy(a_, b_, to_b_, false);
  }

  // Lists both sides' keys of [from, to) page by page and queues what either lacks; copies
  // go out in chunks of `copy_keys`, across leaves (leaves are visited in key order).
  asio::awaitable<Status> leaf(Key from, Key to) {
    std::vector<Key>& to_a = to_a_;
    std::vector<Key>& to_b = to_b_;
    Key cursor = from;
    while (cursor < to) {
      auto ka = co_await a_.keys(stream_, partition_, cursor, to, limits_.key_page);
      if (!ka) co_return ka.error();
      auto kb = co_await b_.keys(stream_, partition_, cursor, to, limits_.key_page);
      if (!kb) co_return kb.error();
      stats.keys_listed += ka->keys.size() + kb->keys.size();
      // Both listings are complete below `upto`.
      Key upto = to;
      if (!ka->done && ka->next_from < upto) upto = ka->next_from;
      if (!kb->done && kb->next_from < upto) upto = kb->next_from;
      auto ia = ka->keys.begin();
      auto ib = kb->keys.begin();
      const auto ea = std::lower_bound(ka->keys.begin(), ka->keys.end(), upto);
      const auto eb = std::lower_bound(kb->keys.begin(), kb->keys.end(), upto);
      while (ia != ea || ib != eb) {
        if (ib == eb || (ia != ea && *ia < *ib)) {
          to_b.push_back(*ia++);
        } else if (ia == ea || *ib < *ia) {
          to_a.push_back(*ib++);
        } else {
          ++ia;
          ++ib;
        }
      }
      if (to_a.size() >= limits_.copy_keys) {
        if (Status s = co_await copy(b_, a_, to_a, true); !s) co_return s;
      }
      if (to_b.size() >= limits_.copy_keys) {
        if (Status s = co_await copy(a_, b_, to_b, false); !s) co_return s;
      }
      cursor = upto;
    }
    co_return Status{};
  }

  // Copies the events of `keys` from `source` to `target`; empties `keys`.
  asio::awaitable<Status> copy(Replica& source, Replica& target, std::vector<Key>& keys,
                               bool toward_a) {
    std::size_t at = 0;
    while (at < keys.size()) {
      const std::size_t n = std::min(limits_.copy_keys, keys.size() - at);
      std::vector<Key> chunk(keys.begin() + static_cast<std::ptrdiff_t>(at),
                             keys.begin() + static_cast<std::ptrdiff_t>(at + n));
      std::optional<Key> next;
      auto batch = co_await source.events(stream_, partition_, chunk, limits_.copy_bytes, &next);
      if (!batch) co_return batch.error();
      std::size_t read = n;
      if (next) read = static_cast<std::size_t>(
          std::lower_bound(chunk.begin(), chunk.end(), *next) - chunk.begin());
      if (read == 0) co_return Error(ErrorCode::kInternal, "a replica read no event of a copy");
      if (batch->size() > 0) {
        if (throttle_) co_await throttle_(batch->bytes());
        if (Status s = co_await target.store(*batch); !s) co_return s;
        (toward_a ? stats.events_to_a : stats.events_to_b) += batch->size();
        (toward_a ? stats.bytes_to_a : stats.bytes_to_b) += batch->bytes();
      }
      at += read;
    }
    keys.clear();
    co_return Status{};
  }

  std::vector<Key> to_a_;  // keys b has and a lacks, not copied yet
  std::vector<Key> to_b_;
  Replica& a_;
  Replica& b_;
  const std::string& stream_;
  std::uint32_t partition_;
  const RepairLimits& limits_;
  const Throttle& throttle_;
};

}  // namespace

asio::awaitable<Result<RepairStats>> repair_partition(Replica& a, Replica& b,
                                                      const std::string& stream,
                                                      std::uint32_t partition,
                                                      std::uint64_t from_ms, std::uint64_t to_ms,
                                                      std::uint64_t interval_ms,
                                                      const RepairLimits& limits,
                                                      const Throttle& throttle) {
  PartitionRepair r(a, b, stream, partition, limits, throttle);
  Status s = co_await r.run(from_ms, to_ms, interval_ms);
  if (!s) co_return s.error();
  co_return r.stats;
}

}  // namespace alldata::broker::repair
