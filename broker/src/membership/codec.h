// The membership protocol's messages as plain structs, and their wire form: a
// MembershipDatagram (UDP) or a PushPull (TCP) of protocol/alldata.capnp. Decoding checks
// every bound (lengths of ids, addresses and texts; list sizes; the message's own size)
// and answers kBadRequest for anything malformed, never throws.
#pragma once

#include "membership/types.h"

#include "alldata/protocol/error.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace alldata::broker {

inline constexpr std::uint32_t kMembershipMagic = 0x414c444d;  // "ALDM"
inline constexpr std::size_t kMaxIdBytes = 255;                // node ids, addresses, zones
inline constexpr std::size_t kMaxTextBytes = 1024;             // reasons
inline constexpr std::size_t kMaxReceivedDatagramBytes = 65536;

struct AliveMsg {
  std::string node_id;
  std::string address;
  std::uint64_t incarnation = 0;
  MemberState state;
  std::uint64_t watermark_age_ms = 0;  // how long the sender has known the watermark
};
struct SuspectMsg {
  std::string node_id;
  std::uint64_t incarnation = 0;
  std::string from;
};
struct DeadMsg {
  std::string node_id;
  std::uint64_t incarnation = 0;
  std::string from;
};
struct RemovedMsg {
  std::string node_id;
  std::string by;
};
struct PingMsg {
  std::uint64_t seq = 0;
  std::string target;
};
struct PingReqMsg {
  std::uint64_t seq = 0;
  std::string target;
  std::string target_address;
  bool want_nack = false;
};
struct AckMsg {
  std::uint64_t seq = 0;
};
struct NackMsg {
  std::uint64_t seq = 0;
};
struct RefusedMsg {
  std::string node_id;
  std::string reason;
};

using Message = std::variant<PingMsg, PingReqMsg, AckMsg, NackMsg, AliveMsg, SuspectMsg, DeadMsg,
                             RemovedMsg, RefusedMsg>;

struct Datagram {
  std::string cluster;
  std::string from;
  std::string from_address;
  std::uint64_t from_incarnation = 0;
  std::vector<Message> messages;
};

struct MemberEntry {
  AliveMsg record;
  Liveness liveness = Liveness::kAlive;
  std::string removed_by;  // non-empty: removed
};

struct TombstoneEntry {
  std::string node_id;
  std::string reason;
  std::uint64_t remaining_ms = 0;
  std::uint64_t incarnation = 0;
  bool final = true;  // left or removed: refused; else a reaped dead member
};

struct PushPullMsg {
  std::string cluster;
  std::string from;
  std::string from_address;
  bool join = false;
  std::vector<MemberEntry> members;
  std::vector<TombstoneEntry> tombstones;
  std::string refused;
  bool ping = false;
  bool query = false;  // look only: answered with the view, nothing merged
};

// Bytes `m` adds to a datagram's message list (exact for the unpacked encoding).
std::size_t encoded_bytes(const Message& m);
// Bytes of a datagram with the header of `d` and no messages.
std::size_t header_bytes(const Datagram& d);

std::string encode(const Datagram& d);
// kBadRequest for a wrong magic ("foreign"), malformed bytes or fields out of bounds.
Result<Datagram> decode_datagram(std::string_view bytes);

std::string encode(const PushPullMsg& p);
Result<PushPullMsg> decode_push_pull(std::string_view bytes);

}  // namespace alldata::broker
