// How many replicas must store a write before it is acknowledged. Numbers match the wire
// enum `alldata::wire::CommitLevel`.
#pragma once

#include "alldata/protocol/error.h"

#include <cstdint>
#include <string_view>

namespace alldata {

enum class CommitLevel : std::uint8_t {
  kAny = 0,     // stored durably on some broker (a hint counts)
  kOne = 1,     // stored on one replica
  kQuorum = 2,  // stored on floor(RF/2)+1 replicas (the default)
  kAll = 3,     // stored on every replica
};

// "ANY", "ONE", "QUORUM", "ALL".
std::string_view to_string(CommitLevel level) noexcept;
// Case-insensitive inverse of to_string; kBadRequest otherwise.
Result<CommitLevel> parse_commit_level(std::string_view text);
// Replicas needed for `level` with replication factor `rf` (ANY and ONE: 1).
std::uint32_t required_replicas(CommitLevel level, std::uint32_t rf) noexcept;

}  // namespace alldata
