#include "alldata/protocol/framing.h"

#include <cstring>

namespace alldata::protocol {

Status check_frame_length(std::uint32_t n, std::uint32_t max_frame_bytes) {
  if (n == 0) return Error(ErrorCode::kBadRequest, "zero-length frame");
  if (n > max_frame_bytes) {
    return Error(ErrorCode::kBadRequest, "frame of " + std::to_string(n) +
                                             " bytes is over the limit of " +
                                             std::to_string(max_frame_bytes) + " bytes");
  }
  if (n % 8 != 0) {
    return Error(ErrorCode::kBadRequest,
                 "frame of " + std::to_string(n) +
                     " bytes is not a whole number of 8-byte words (not a Cap'n Proto message)");
  }
  return {};
}

std::size_t append_frame(capnp::MessageBuilder& message, std::string& out) {
  auto segments = message.getSegmentsForOutput();
  const std::size_t count = segments.size();
  // Segment table: count-1, then each size (u32 little-endian), padded to a whole word.
  const std::size_t table_words = (count + 2) / 2;
  std::size_t body = table_words * 8;
  for (auto& s : segments) body += s.size() * sizeof(capnp::word);

  const std::size_t start = out.size();
  out.resize(start + kFrameHeaderBytes + body);
  auto* p = reinterpret_cast<std::uint8_t*>(out.data() + start);
  write_frame_length(p, static_cast<std::uint32_t>(body));
  p += kFrameHeaderBytes;
  auto put_le = [](std::uint8_t* q, std::uint32_t v) {
    q[0] = static_cast<std::uint8_t>(v);
    q[1] = static_cast<std::uint8_t>(v >> 8);
    q[2] = static_cast<std::uint8_t>(v >> 16);
    q[3] = static_cast<std::uint8_t>(v >> 24);
  };
  std::memset(p, 0, table_words * 8);
  put_le(p, static_cast<std::uint32_t>(count - 1));
  for (std::size_t i = 0; i < count; ++i) {
    put_le(p + 4 + 4 * i, static_cast<std::uint32_t>(segments[i].size()));
  }
  p += table_words * 8;
  for (auto& s : segments) {
    const std::size_t n = s.size() * sizeof(capnp::word);
    std::memcpy(p, s.begin(), n);
    p += n;
  }
  return kFrameHeaderBytes + body;
}

capnp::ReaderOptions reader_options(std::size_t frame_bytes, int nesting_limit) {
  capnp::ReaderOptions o;
  // Words the reader may visit: 4x the message, with a floor for tiny frames. This stops
  // amplification through shared pointers without refusing any honest message.
  o.traversalLimitInWords = std::max<std::uint64_t>(1024, (frame_bytes / 8) * 4);
  o.nestingLimit = nesting_limit;
  return o;
}

}  // namespace alldata::protocol
