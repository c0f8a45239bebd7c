// The hybrid-logical-clock key generator used by brokers and by producers (client-side keys).
// Per origin, keys strictly increase: the clock value never goes back when the wall clock
// does, and a counter overflow within one millisecond moves on to the next millisecond (the
// HLC value is `time_ms << 16 | counter`, so plain addition carries into the time).
#pragma once

#include "alldata/protocol/key.h"

#include <atomic>
#include <cstdint>
#include <optional>

namespace alldata {

// Wall-clock source, behind an interface so tests can make it jump.
class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the unix epoch.
  virtual std::uint64_t now_ms() = 0;
};

class SystemClock final : public Clock {
 public:
  std::uint64_t now_ms() override;
};

// Thread-safe (lock-free). Borrows `clock`, which must outlive the Keygen.
class Keygen {
 public:
  // `floor_hlc`: every key made is above this HLC value (a persisted high-water mark).
  Keygen(std::uint64_t origin, Clock& clock, std::uint64_t floor_hlc = 0);

  Keygen(const Keygen&) = delete;
  Keygen& operator=(const Keygen&) = delete;

  // Reserves `n` (> 0) consecutive HLC values and returns the first; key i of the range is
  // Key::from_hlc(first + i, origin()). Returns nullopt, reserving nothing, when the range
  // would pass the limit set by set_limit() (the caller must persist a higher mark first).
  std::optional<std::uint64_t> reserve(std::uint32_t n) noexcept;

  // One key. Ignores the limit: for producers, which persist nothing.
  Key next() noexcept;

  // No HLC value above `limit_hlc` is handed out until the limit is raised.
  void set_limit(std::uint64_t limit_hlc) noexcept { limit_.store(limit_hlc); }
  std::uint64_t limit() const noexcept { return limit_.load(); }

  // The last HLC value handed out (or the floor).
  std::uint64_t high_water() const noexcept { return last_.load(); }
  std::uint64_t origin() const noexcept { return origin_; }
  Clock& clock() noexcept { return clock_; }

 private:
  const std::uint64_t origin_;
  Clock& clock_;
  std::atomic<std::uint64_t> last_;
  std::atomic<std::uint64_t> limit_{~std::uint64_t{0}};
};

// A random 64-bit origin id (from std::random_device), never 0.
std::uint64_t random_origin();

}  // namespace alldata
