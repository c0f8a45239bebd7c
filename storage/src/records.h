// Internal helpers for walking EventBatch records; storage/src only.
#pragma once

#include "alldata/protocol/key.h"
#include "layout.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace alldata::storage {

// Walks the records of an EventBatch: [16-byte key][u32 LE length][value].
class RecordReader {
 public:
  explicit RecordReader(const std::string& records)
      : p_(records.data()), end_(records.data() + records.size()) {}

  // False at the end, or for a malformed buffer (which add() never makes).
  bool next(const char** key, std::string_view* value) {
    if (static_cast<std::size_t>(end_ - p_) < layout::kRecordHeaderSize) return false;
    const std::uint32_t len = layout::get_u32_le(p_ + Key::kSize);
    if (len > static_cast<std::size_t>(end_ - p_) - layout::kRecordHeaderSize) return false;
    *key = p_;
    *value = std::string_view(p_ + layout::kRecordHeaderSize, len);
    p_ += layout::kRecordHeaderSize + len;
    return true;
  }
  bool at_end() const { return p_ == end_; }
  // Where the next record starts.
  const char* position() const { return p_; }

 private:
  const char* p_;
  const char* end_;
};

inline std::uint64_t time_of(const char* key16) {
  return Key::get_u64(reinterpret_cast<const std::uint8_t*>(key16)) >> 16;
}

}  // namespace alldata::storage
