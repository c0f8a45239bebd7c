// Framing of the wire protocol: a frame is a 4-byte big-endian length N followed by N
// bytes holding one Cap'n Proto message in the standard unpacked stream serialization
// (segment table, then segments). Readers check N before allocating anything.
#pragma once

#include "alldata/protocol/error.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>

#include <cstdint>
#include <string>

namespace alldata::protocol {

inline constexpr std::size_t kFrameHeaderBytes = 4;
inline constexpr std::uint32_t kDefaultMaxFrameBytes = 16u << 20;  // 16 MiB
inline constexpr int kDefaultNestingLimit = 16;

inline std::uint32_t read_frame_length(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
         (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

inline void write_frame_length(std::uint8_t* p, std::uint32_t n) noexcept {
  p[0] = static_cast<std::uint8_t>(n >> 24);
  p[1] = static_cast<std::uint8_t>(n >> 16);
  p[2] = static_cast<std::uint8_t>(n >> 8);
  p[3] = static_cast<std::uint8_t>(n);
}

// Checks a frame length read from the wire against the limit: 0, over `max_frame_bytes`,
// and lengths that are not a whole number of 8-byte words are errors (kBadRequest).
Status check_frame_length(std::uint32_t n, std::uint32_t max_frame_bytes);

// Appends one frame (length + serialized message) holding `message` to `out`.
// Returns the number of bytes appended.
std::size_t append_frame(capnp::MessageBuilder& message, std::string& out);

// Reader options for decoding a frame of `frame_bytes` bytes: the traversal limit is
// proportional to the frame (a message can never make the reader walk more than a small
// multiple of what was sent), nesting is bounded by `nesting_limit`.
capnp::ReaderOptions reader_options(std::size_t frame_bytes,
                                    int nesting_limit = kDefaultNestingLimit);

// A received frame body: word-aligned storage for `bytes` bytes, ready for a reader.
class FrameBuffer {
 public:
  FrameBuffer() = default;
  explicit FrameBuffer(std::uint32_t bytes)
      : words_(kj::heapArray<capnp::word>((bytes + 7) / 8)), bytes_(bytes) {}

  std::uint8_t* data() noexcept { return reinterpret_cast<std::uint8_t*>(words_.begin()); }
  std::uint32_t size() const noexcept { return bytes_; }
  kj::ArrayPtr<const capnp::word> words() const noexcept { return words_.asPtr(); }

 private:
  kj::Array<capnp::word> words_;
  std::uint32_t bytes_ = 0;
};

// Decodes the message in `frame`. The reader borrows `frame`, which must outlive it.
// Any structural problem (bad segment table, out-of-bounds pointer) surfaces as a
// kj::Exception when the reader is built or its fields are read; callers catch it.
inline capnp::FlatArrayMessageReader make_reader(const FrameBuffer& frame,
                                                 int nesting_limit = kDefaultNestingLimit) {
  return capnp::FlatArrayMessageReader(frame.words(),
                                       reader_options(frame.size(), nesting_limit));
}

}  // namespace alldata::protocol
