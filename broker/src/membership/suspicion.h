// Lifeguard's dynamic suspicion timeout. A suspicion starts with the longest timeout and
// shortens, logarithmically, as other members independently report the same suspect: a
// member many peers cannot reach is declared dead quickly, while one lone accusation (most
// often a lost datagram) leaves the suspect plenty of time to refute it.
//
//   timeout(n) = max(min, max - (max - min) * log(n + 1) / log(k + 1))
//
// where n is the number of confirmations beyond the first accuser and k the number that
// brings the timeout down to min (k == 0: min from the start). A value type.
#pragma once

#include <cstdint>
#include <set>
#include <string>

namespace alldata::broker {

class Suspicion {
 public:
  Suspicion(std::string first_accuser, std::size_t k, std::uint64_t min_ms, std::uint64_t max_ms,
            std::uint64_t start_ms);

  // Records that `accuser` suspects too. True if it is a new accuser and the deadline may
  // have moved; false for a repeat or once k confirmations are in.
  bool confirm(const std::string& accuser);

  std::uint64_t deadline_ms() const noexcept;
  std::uint64_t start_ms() const noexcept { return start_ms_; }
  std::size_t confirmations() const noexcept { return accusers_.size() - 1; }
  // Enough independent accusers for the shortest timeout.
  bool confirmed() const noexcept { return confirmations() >= k_; }

 private:
  std::size_t k_;
  std::uint64_t min_ms_;
  std::uint64_t max_ms_;
  std::uint64_t start_ms_;
  std::set<std::string> accusers_;
};

}  // namespace alldata::broker
