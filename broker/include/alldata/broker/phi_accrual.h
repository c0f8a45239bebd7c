// Phi-accrual failure detection (Hayashibara et al. 2004): instead of a yes/no timeout,
// a detector turns "how long since we last heard from this peer" into a suspicion level
// phi = -log10(P(a live peer stays silent this long)), estimated from a window of recent
// inter-arrival intervals. phi 1 means a 10% chance the silence is normal, phi 8 one in
// 10^8. The gossiper declares a peer dead when phi exceeds a threshold.
//
// Two models of the intervals are offered:
//  - kExponential (the default, as the original gossipmonger and Cassandra): arrivals are
//    memoryless, P(silence > t) = exp(-t / mean), so phi = t / (mean * ln 10). Gossip
//    contacts with a peer come from random peer selection, so their intervals are
//    geometric/exponential: this model is calibrated for them (the real tail is never
//    heavier), and a phi 8 verdict takes about 18.4 mean intervals of silence.
//  - kNormal (as Akka): P(silence > t) = 1 - CDF_normal(t; mean, stddev), with a minimum
//    standard deviation. Right for regular heartbeats; for random gossip contacts its thin
//    tail gives false positives (see broker/README.md, "Gossip").
// In both, `acceptable_pause_ms` is added to the mean: a pause that long costs nothing.
//
// A value type, not thread-safe; the gossiper keeps one per peer on its executor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

namespace alldata::broker {

struct PhiAccrualOptions {
  enum class Model { kExponential, kNormal };
  Model model = Model::kExponential;
  // Suspicion above which a peer is dead (10^-8 chance the silence is normal).
  double threshold = 8.0;
  // Intervals kept; older ones are forgotten so the estimate follows the current rate.
  std::size_t max_samples = 100;
  // kNormal only: floor of the standard deviation, so very regular arrivals do not make
  // a few ms of jitter look fatal.
  double min_std_dev_ms = 500.0;
  // Added to the mean interval: a pause (GC, a full gossip round missed) this long is free.
  double acceptable_pause_ms = 0.0;
  // The window starts with this interval, so phi is defined before the second contact.
  double first_interval_estimate_ms = 1000.0;
};

class PhiAccrualDetector {
 public:
  // The detector starts as if a contact happened at `now_ms`.
  PhiAccrualDetector(const PhiAccrualOptions& options, std::uint64_t now_ms);

  // Records a contact at `now_ms`. A time earlier than the last contact is ignored.
  void heartbeat(std::uint64_t now_ms);

  // Suspicion at `now_ms`: 0 right after a contact, growing with silence; finite, at most
  // kMaxPhi.
  double phi(std::uint64_t now_ms) const;

  // phi(now_ms) > threshold.
  bool is_dead(std::uint64_t now_ms) const { return phi(now_ms) > options_.threshold; }

  double mean_interval_ms() const noexcept;
  double std_dev_ms() const noexcept;
  std::uint64_t last_contact_ms() const noexcept { return last_ms_; }
  std::size_t samples() const noexcept { return intervals_.size(); }

  static constexpr double kMaxPhi = 300.0;

 private:
  PhiAccrualOptions options_;
  std::deque<double> intervals_;
  double sum_ = 0.0;
  double sum_sq_ = 0.0;
  std::uint64_t last_ms_;
};

}  // namespace alldata::broker
