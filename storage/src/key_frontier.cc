#include "key_frontier.h"

namespace alldata::storage {
namespace {

std::uint64_t be64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

KeyFrontier::Partition::Partition(const std::optional<Key16>& stored_max) {
  if (stored_max) {
    max_all_ = *stored_max;
    empty_ = false;
  }
}

bool KeyFrontier::Partition::maybe_stored(const char* key16) const {
  if (empty_) return false;
  if (auto it = by_origin_.find(be64(key16 + 8)); it != by_origin_.end()) {
    return be64(key16) <= it->second;
  }
  return std::memcmp(key16, max_all_.data(), 16) <= 0;
}

void KeyFrontier::Partition::note(const char* key16) {
  const std::uint64_t hlc = be64(key16);
  // Forgetting origins is safe at any time: max_all bounds every one of them.
  if (by_origin_.size() >= kMaxOriginsPerPartition) by_origin_.clear();
  auto [it, inserted] = by_origin_.try_emplace(be64(key16 + 8), hlc);
  if (inserted) {
    // Until now this origin's frontier was max_all's HLC: its stored keys may reach it.
    if (!empty_) it->second = std::max(hlc, be64(max_all_.data()));
  } else {
    it->second = std::max(it->second, hlc);
  }
  if (empty_ || std::memcmp(key16, max_all_.data(), 16) > 0) {
    std::memcpy(max_all_.data(), key16, 16);
    empty_ = false;
  }
}

KeyFrontier::Partition* KeyFrontier::find(std::uint64_t interval_start, std::uint32_t stream_id,
                                          std::uint32_t partition) {
  auto it = partitions_.find({interval_start, stream_id, partition});
  return it == partitions_.end() ? nullptr : &it->second;
}

KeyFrontier::Partition* KeyFrontier::add(std::uint64_t interval_start, std::uint32_t stream_id,
                                         std::uint32_t partition,
                                         const std::optional<Key16>& stored_max) {
  auto [it, inserted] =
      partitions_.insert_or_assign({interval_start, stream_id, partition}, Partition(stored_max));
  return &it->second;
}

void KeyFrontier::trim() {
  if (partitions_.size() > kMaxPartitions) {
    partitions_.clear();
    return;
  }
  if (++trims_ % 256 != 0) return;
  std::size_t origins = 0;
  for (const auto& [id, p] : partitions_) origins += p.by_origin_.size();
  if (origins <= kMaxOrigins) return;
  for (auto& [id, p] : partitions_) p.by_origin_.clear();  // max_all bounds them all
}

}  // namespace alldata::storage
