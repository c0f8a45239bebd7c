// The production clock and the seeded generator of env.h.
#include "membership/env.h"

namespace alldata::broker {

std::uint64_t SteadyClock::now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::uint64_t SeededRandom::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t SeededRandom::below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

double SeededRandom::unit() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

}  // namespace alldata::broker
