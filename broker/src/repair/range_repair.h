// Anti-entropy between two replicas of one (stream, partition): each ends up holding the
// union of their events (events are immutable, so there is nothing to resolve).
//
// How: per interval, compare the two digests (a sealed interval's is stored: no scan). Where
// they differ, split the range by time into `fanout` pieces and compare those digests, down
// to pieces holding at most `leaf_keys` keys on both sides together (or one millisecond);
// there, list both sides' keys and copy each missing event to the side that lacks it, as a
// repair write. When three quarters or more of a range's pieces differ, the difference is
// spread out and splitting further would prune nothing: that range is listed at once. Identical replicas cost one digest per interval; a difference costs the
// digests on the path to it, the key lists of its leaves, and the missing events.
//
// Memory is bounded by one key page per side and one copy chunk, whatever the range holds.
#pragma once

#include "repair/replica.h"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <string>

namespace alldata::broker::repair {

struct RepairStats {
  std::uint64_t ranges_compared = 0;  // intervals and pieces whose digests were compared
  std::uint64_t ranges_differed = 0;  // of those, the ones whose digests differed
  std::uint64_t keys_listed = 0;      // keys listed at the leaves, both sides
  std::uint64_t events_to_a = 0;      // events copied from b to a
  std::uint64_t events_to_b = 0;
  std::uint64_t bytes_to_a = 0;       // their record bytes (key, payload, headers)
  std::uint64_t bytes_to_b = 0;

  RepairStats& operator+=(const RepairStats& o);
};

struct RepairLimits {
  std::size_t fanout = 16;
  std::uint64_t leaf_keys = 1024;
  std::size_t key_page = 4096;            // keys per listing request
  std::size_t copy_keys = 1000;           // keys per copy request
  std::size_t copy_bytes = 4u << 20;      // record bytes per copy request
};

// Awaited before `bytes` of events are copied; may wait (a rate limit). Null: no limit.
using Throttle = std::function<boost::asio::awaitable<void>(std::uint64_t bytes)>;

// Repairs (stream, partition) between `a` and `b` over the intervals (of `interval_ms`)
// that start in [from_ms, to_ms). Errors: the first failed call of either replica (the
// repair stops there; what was copied stays copied, and a later repair goes on). The
// coroutine starts when awaited and keeps references to `stream`, `limits` and `throttle`:
// they must outlive it (no temporaries).
boost::asio::awaitable<Result<RepairStats>> repair_partition(
    Replica& a, Replica& b, const std::string& stream, std::uint32_t partition,
    std::uint64_t from_ms, std::uint64_t to_ms, std::uint64_t interval_ms,
    const RepairLimits& limits, const Throttle& throttle);

}  // namespace alldata::broker::repair
