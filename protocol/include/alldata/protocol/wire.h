// Adapters between the generated Cap'n Proto types (camelCase, in alldata::wire) and the
// project's own types. Internal to brokers and the client library: public headers of the
// other parts never include this.
#pragma once

#include "alldata.capnp.h"
#include "alldata/protocol/error.h"
#include "alldata/protocol/key.h"

#include <capnp/blob.h>

#include <string_view>

namespace alldata::protocol {

inline wire::ErrorCode to_wire(ErrorCode c) noexcept {
  const auto v = static_cast<std::uint16_t>(c);
  return v <= static_cast<std::uint16_t>(wire::ErrorCode::KEY_CONFLICT)
             ? static_cast<wire::ErrorCode>(v)
             : wire::ErrorCode::INTERNAL;
}

inline ErrorCode from_wire(wire::ErrorCode c) noexcept {
  return static_cast<ErrorCode>(static_cast<std::uint16_t>(c));
}

inline std::string_view view(capnp::Data::Reader d) noexcept {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}

inline std::string_view view(capnp::Text::Reader t) noexcept { return {t.cStr(), t.size()}; }

inline capnp::Data::Reader data(std::string_view s) noexcept {
  return {reinterpret_cast<const capnp::byte*>(s.data()), s.size()};
}

inline capnp::Text::Reader text(std::string_view s) noexcept {
  return {s.data(), s.size()};
}

// An empty Data means "no bound"; otherwise exactly 16 bytes.
inline Result<Key> key_or(capnp::Data::Reader d, Key if_empty) {
  if (d.size() == 0) return if_empty;
  return Key::from_bytes(view(d));
}

}  // namespace alldata::protocol
