#include "membership/suspicion.h"

#include <algorithm>
#include <cmath>

namespace alldata::broker {

Suspicion::Suspicion(std::string first_accuser, std::size_t k, std::uint64_t min_ms,
                     std::uint64_t max_ms, std::uint64_t start_ms)
    : k_(k), min_ms_(min_ms), max_ms_(std::max(min_ms, max_ms)), start_ms_(start_ms) {
  accusers_.insert(std::move(first_accuser));
}

bool Suspicion::confirm(const std::string& accuser) {
  if (confirmations() >= k_) return false;
  return accusers_.insert(accuser).second;
}

std::uint64_t Suspicion::deadline_ms() const noexcept {
  if (k_ == 0) return start_ms_ + min_ms_;
  const double n = static_cast<double>(confirmations());
  const double frac = std::log(n + 1.0) / std::log(static_cast<double>(k_) + 1.0);
  const double raw = static_cast<double>(max_ms_) - frac * static_cast<double>(max_ms_ - min_ms_);
  const auto timeout = std::max<std::uint64_t>(min_ms_, static_cast<std::uint64_t>(raw));
  return start_ms_ + timeout;
}

}  // namespace alldata::broker
