// Copies this broker knows were never stored: a coordinator that could place neither an
// owner's copy nor a hint for it (every fallback failed, or the owner's hints reached
// --max-hint-bytes-per-node), or a write to an incoming owner that failed. Each debt names
// the owner, the (stream, partition) and the event times involved; the broker's watermark
// holds at the oldest debt (ClusterAgent), and the cluster settles a debt by asking the
// owner, once it is live, to repair that partition over those times (Cluster). So the
// watermark never passes a copy that repair has not restored.
//
// Bounded: at most `max_entries` debts; past it, one debt per owner covers every stream
// and partition (kAllPartitions, empty stream) and the union of the times. Thread-safe.
#pragma once

#include "alldata/protocol/error.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace alldata::broker::repair {

struct Debt {
  std::string owner;
  std::string stream;           // empty: every stream (with kAllPartitions)
  std::uint32_t partition = 0;  // kAllPartitions: every partition
  std::uint64_t from_ms = 0;    // the oldest event time owed
  std::uint64_t to_ms = 0;      // past the newest one

  friend bool operator==(const Debt&, const Debt&) = default;
};

inline constexpr std::uint32_t kAllPartitions = 0xffffffffu;
// As an owner: every owner (a coordinator that died with writes in flight, crash_lease.h).
// The settler turns it into one debt per live owner once the view is complete.
inline constexpr std::string_view kEveryOwner = "";

class RepairDebts {
 public:
  explicit RepairDebts(std::size_t max_entries = 65536) : max_entries_(max_entries) {}

  // Owner `owner` lacks events of (stream, partition) with times in [from_ms, to_ms).
  void add(std::string_view owner, std::string_view stream, std::uint32_t partition, std::uint64_t from_ms,
           std::uint64_t to_ms);
  // Removes `d` if nothing was added to it since it was read (a debt that grew stays).
  void settle(const Debt& d);

  std::vector<Debt> all() const;
  std::optional<std::uint64_t> oldest_ms() const;
  // The oldest event time owed to each owner that is owed anything.
  std::map<std::string, std::uint64_t> oldest_ms_by_owner() const;
  std::size_t size() const;
  // Rises on every change: persist when it moved.
  std::uint64_t version() const;

  // A text form for the store's metadata (one debt per line), and back. decode() replaces
  // what is held. Errors: kStorageError (a malformed line).
  std::string encode() const;
  Status decode(std::string_view text);

 private:
  using Where = std::tuple<std::string, std::string, std::uint32_t>;
  void add_locked(Where where, std::uint64_t from_ms, std::uint64_t to_ms);

  mutable std::mutex mu_;
  std::map<Where, std::pair<std::uint64_t, std::uint64_t>> debts_;
  std::size_t max_entries_;
  std::uint64_t version_ = 0;
};

}  // namespace alldata::broker::repair
