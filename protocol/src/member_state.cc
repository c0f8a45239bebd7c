#include "alldata/protocol/member_state.h"

#include <algorithm>

namespace alldata {

std::string_view to_string(Liveness l) noexcept {
  switch (l) {
    case Liveness::kAlive: return "alive";
    case Liveness::kSuspect: return "suspect";
    case Liveness::kDead: return "dead";
  }
  return "?";
}

std::string_view to_string(Lifecycle l) noexcept {
  switch (l) {
    case Lifecycle::kJoining: return "joining";
    case Lifecycle::kNormal: return "normal";
    case Lifecycle::kLeaving: return "leaving";
    case Lifecycle::kLeft: return "left";
    case Lifecycle::kRemoved: return "removed";
  }
  return "?";
}

Liveness liveness_from(std::uint16_t v) noexcept { return static_cast<Liveness>(std::min<std::uint16_t>(v, 2)); }

Lifecycle lifecycle_from(std::uint16_t v) noexcept { return static_cast<Lifecycle>(std::min<std::uint16_t>(v, 4)); }

}  // namespace alldata
