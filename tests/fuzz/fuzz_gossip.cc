// Fuzz target: gossip datagrams and push-pull messages as they arrive from the network.
// byte 0 even: a datagram, odd: a push-pull message; the rest is decoded. Whatever decodes
// must encode again and decode to the same encoding (the codec is the only reader of
// these bytes, so a lossy or unstable round trip is a bug); nothing may crash.
#include "membership/codec.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

template <class Decode>
void round_trip(std::string_view bytes, Decode decode) {
  auto first = decode(bytes);
  if (!first) return;
  const std::string again = alldata::broker::encode(*first);
  auto second = decode(again);
  if (!second) {
    std::fprintf(stderr, "fuzz_gossip: re-encoded message does not decode: %s\n",
                 second.error().to_string().c_str());
    std::abort();
  }
  if (alldata::broker::encode(*second) != again) {
    std::fprintf(stderr, "fuzz_gossip: the round trip is not stable\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    round_trip(bytes, [](std::string_view b) { return alldata::broker::decode_datagram(b); });
  } else {
    round_trip(bytes, [](std::string_view b) { return alldata::broker::decode_push_pull(b); });
  }
  return 0;
}

extern "C" void alldata_fuzz_finish() {}
