#include "alldata/protocol/keygen.h"

#include <algorithm>
#include <chrono>
#include <random>

namespace alldata {

std::uint64_t SystemClock::now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

Keygen::Keygen(std::uint64_t origin, Clock& clock, std::uint64_t floor_hlc)
    : origin_(origin), clock_(clock), last_(floor_hlc) {}

std::optional<std::uint64_t> Keygen::reserve(std::uint32_t n) noexcept {
  if (n == 0) n = 1;
  const std::uint64_t wall = std::min(clock_.now_ms(), Key::kMaxTimeMs) << 16;
  const std::uint64_t limit = limit_.load(std::memory_order_relaxed);
  std::uint64_t cur = last_.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t first = std::max(cur + 1, wall);
    const std::uint64_t end = first + n - 1;
    if (end > limit) return std::nullopt;
    if (last_.compare_exchange_weak(cur, end, std::memory_order_relaxed)) return first;
  }
}

Key Keygen::next() noexcept {
  const std::uint64_t wall = std::min(clock_.now_ms(), Key::kMaxTimeMs) << 16;
  std::uint64_t cur = last_.load(std::memory_order_relaxed);
  std::uint64_t next;
  do {
    next = std::max(cur + 1, wall);
  } while (!last_.compare_exchange_weak(cur, next, std::memory_order_relaxed));
  return Key::from_hlc(next, origin_);
}

std::uint64_t random_origin() {
  std::random_device rd;
  std::uint64_t v = 0;
  while (v == 0) v = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return v;
}

}  // namespace alldata
