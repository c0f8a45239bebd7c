// What the cluster says of a member: its liveness (the failure detector's view) and its
// lifecycle (its role, protocol/README.md "Member lifecycle"). Numbers match the wire enums
// `alldata::wire::Liveness` and `alldata::wire::Lifecycle`; brokers and clients share these.
#pragma once

#include <cstdint>
#include <string_view>

namespace alldata {

enum class Liveness : std::uint8_t {
  kAlive = 0,
  kSuspect = 1,  // a probe failed; the member may refute it
  kDead = 2,     // the suspicion timed out unrefuted
};

enum class Lifecycle : std::uint8_t {
  kJoining = 0,  // new: owns nothing, does not coordinate writes yet
  kNormal = 1,   // owns partitions
  kLeaving = 2,  // owns partitions, handing them over
  kLeft = 3,     // gone by its own decision
  kRemoved = 4,  // gone by an operator's decision
};

// "alive", "suspect", "dead"; "joining", "normal", "leaving", "left", "removed".
std::string_view to_string(Liveness l) noexcept;
std::string_view to_string(Lifecycle l) noexcept;

// The enum for a wire value; out-of-range values clamp to the last enumerant (a newer peer).
Liveness liveness_from(std::uint16_t v) noexcept;
Lifecycle lifecycle_from(std::uint16_t v) noexcept;

}  // namespace alldata
