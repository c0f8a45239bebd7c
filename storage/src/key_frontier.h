// KeyFrontier: tells the writer, without reading RocksDB, that an event key cannot be stored
// yet, so that checking "is this key already stored?" (events are immutable) costs a read
// only for keys that might be.
//
// Per (interval, stream id, partition) it keeps `max_all`, a key at least as large as every
// key stored there, and per origin (bytes 8..15 of a key) the largest HLC (bytes 0..7)
// written by this process. Keys of one origin are made in increasing HLC order, so a
// producer's next key is above its own frontier and needs no read, however many other
// producers write the same partition.
//
// Invariant: every stored key of origin o has an HLC <= frontier(o), where frontier(o) is
// the origin's entry, or max_all's HLC for an origin without one. So `maybe_stored()` false
// means "certainly not stored". Forgetting entries (the bounds below) only makes answers
// more cautious, never wrong, as long as max_all stays an upper bound: it is loaded from
// RocksDB (the partition's last key) and raised by every note().
//
// Writer thread only; not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

namespace alldata::storage {

class KeyFrontier {
 public:
  using Key16 = std::array<char, 16>;

  class Partition {
   public:
    // `stored_max`: the largest key stored in the partition, nullopt when it holds none.
    explicit Partition(const std::optional<Key16>& stored_max);

    // False when `key16` is certainly not stored; true when it may be (read to know).
    bool maybe_stored(const char* key16) const;
    // Records that `key16` is stored (or about to be, in the current write).
    void note(const char* key16);
    std::size_t origins() const noexcept { return by_origin_.size(); }


   private:
    friend class KeyFrontier;
    Key16 max_all_{};
    bool empty_ = true;  // no key stored or noted: max_all_ means nothing
    std::unordered_map<std::uint64_t, std::uint64_t> by_origin_;  // origin -> largest HLC
  };

  // At most this many origins are remembered per partition (note() forgets them past it),
  // and this many partitions in all (trim() forgets them); later keys of what was
  // forgotten pay a read. The bounds hold the frontier to about 64 MiB.
  static constexpr std::size_t kMaxOriginsPerPartition = 4096;
  static constexpr std::size_t kMaxPartitions = 16384;
  // And at most about this many origin entries in all (trim() counts them every 256 calls).
  static constexpr std::size_t kMaxOrigins = 1u << 20;

  // The partition's frontier, or null when it is not loaded.
  Partition* find(std::uint64_t interval_start, std::uint32_t stream_id, std::uint32_t partition);
  // Adds a partition loaded from RocksDB; returns it (stable until trim() or clear()).
  Partition* add(std::uint64_t interval_start, std::uint32_t stream_id, std::uint32_t partition,
                 const std::optional<Key16>& stored_max);
  // Applies the bounds. Call between writes only: it invalidates Partition pointers. (A
  // note() for a write that then failed needs no undoing: a frontier above what is stored
  // only costs reads.)
  void trim();
  std::size_t partitions() const noexcept { return partitions_.size(); }

 private:
  std::map<std::tuple<std::uint64_t, std::uint32_t, std::uint32_t>, Partition> partitions_;
  std::size_t trims_ = 0;
};

}  // namespace alldata::storage
