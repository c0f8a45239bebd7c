// How an event's partition is chosen from its partition key, shared by producers and
// brokers so that both agree: xxHash64 (seed 0) of the key bytes, modulo the partition count.
#pragma once

#include <cstdint>
#include <string_view>

namespace alldata::protocol {

std::uint64_t hash64(std::string_view bytes) noexcept;

inline std::uint32_t partition_for_key(std::string_view key, std::uint32_t partitions) noexcept {
  return partitions == 0 ? 0 : static_cast<std::uint32_t>(hash64(key) % partitions);
}

}  // namespace alldata::protocol
