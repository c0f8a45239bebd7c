// Phi computation for the two interval models; see the header for why two exist.
#include "alldata/broker/phi_accrual.h"

#include <algorithm>
#include <cmath>

namespace alldata::broker {

PhiAccrualDetector::PhiAccrualDetector(const PhiAccrualOptions& options, std::uint64_t now_ms)
    : options_(options), last_ms_(now_ms) {
  if (options_.max_samples == 0) options_.max_samples = 1;
  const double first = std::max(1.0, options_.first_interval_estimate_ms);
  intervals_.push_back(first);
  sum_ = first;
  sum_sq_ = first * first;
}

void PhiAccrualDetector::heartbeat(std::uint64_t now_ms) {
  if (now_ms < last_ms_) return;
  const double interval = static_cast<double>(now_ms - last_ms_);
  last_ms_ = now_ms;
  // Several contacts in the same millisecond (a SYN answered by an ACK in one delivery)
  // are one arrival, not a zero interval that would drag the mean down.
  if (interval <= 0.0) return;
  intervals_.push_back(interval);
  sum_ += interval;
  sum_sq_ += interval * interval;
  while (intervals_.size() > options_.max_samples) {
    const double old = intervals_.front();
    intervals_.pop_front();
    sum_ -= old;
    sum_sq_ -= old * old;
  }
}

double PhiAccrualDetector::mean_interval_ms() const noexcept {
  return sum_ / static_cast<double>(intervals_.size());
}

double PhiAccrualDetector::std_dev_ms() const noexcept {
  const double n = static_cast<double>(intervals_.size());
  const double mean = sum_ / n;
  const double variance = std::max(0.0, sum_sq_ / n - mean * mean);
  return std::sqrt(variance);
}

double PhiAccrualDetector::phi(std::uint64_t now_ms) const {
  if (now_ms <= last_ms_) return 0.0;
  const double t = static_cast<double>(now_ms - last_ms_);
  const double mean = std::max(1.0, mean_interval_ms() + options_.acceptable_pause_ms);
  double result;
  if (options_.model == PhiAccrualOptions::Model::kExponential) {
    result = t / (mean * std::log(10.0));
  } else {
    const double sd = std::max({options_.min_std_dev_ms, std_dev_ms(), 1e-3});
    const double y = (t - mean) / sd;
    // P(X > t) for a normal X; erfc keeps precision far into the tail.
    const double p = 0.5 * std::erfc(y / std::sqrt(2.0));
    result = p > 0.0 ? -std::log10(p) : kMaxPhi;
  }
  return std::clamp(result, 0.0, kMaxPhi);
}

}  // namespace alldata::broker
