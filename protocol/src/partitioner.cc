#include "alldata/protocol/partitioner.h"

#include <xxhash.h>

namespace alldata::protocol {

std::uint64_t hash64(std::string_view bytes) noexcept {
  return XXH64(bytes.data(), bytes.size(), 0);
}

}  // namespace alldata::protocol
