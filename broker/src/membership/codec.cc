// Encoding and checked decoding of membership messages (Cap'n Proto, unpacked).
#include "membership/codec.h"

#include "alldata.capnp.h"
#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>

namespace alldata::broker {

namespace {

using protocol::text;
using protocol::view;

// ---- sizes (words of the unpacked encoding)

std::size_t text_words(std::size_t len) { return len == 0 ? 0 : (len + 1 + 7) / 8; }

template <class T>
constexpr std::size_t struct_words() {
  return T::_capnpPrivate::dataWordSize + T::_capnpPrivate::pointerCount;
}

std::size_t state_words(const MemberState& s) {
  std::size_t owed = s.owed.empty() ? 0 : 1;  // the list's tag word
  for (const Owed& o : s.owed) owed += struct_words<wire::Owed>() + text_words(o.node_id.size());
  return struct_words<wire::MemberState>() + text_words(s.client_address.size()) +
         text_words(s.peer_address.size()) + text_words(s.zone.size()) + text_words(s.region.size()) + owed;
}

std::size_t alive_words(const AliveMsg& a) {
  return struct_words<wire::MemberAlive>() + text_words(a.node_id.size()) +
         text_words(a.address.size()) + state_words(a.state);
}

struct BodyWords {
  std::size_t operator()(const PingMsg& m) const {
    return struct_words<wire::Ping>() + text_words(m.target.size());
  }
  std::size_t operator()(const PingReqMsg& m) const {
    return struct_words<wire::PingReq>() + text_words(m.target.size()) + text_words(m.target_address.size());
  }
  std::size_t operator()(const AckMsg&) const { return struct_words<wire::Ack>(); }
  std::size_t operator()(const NackMsg&) const { return struct_words<wire::Nack>(); }
  std::size_t operator()(const AliveMsg& m) const { return alive_words(m); }
  std::size_t operator()(const SuspectMsg& m) const {
    return struct_words<wire::MemberSuspect>() + text_words(m.node_id.size()) + text_words(m.from.size());
  }
  std::size_t operator()(const DeadMsg& m) const {
    return struct_words<wire::MemberDead>() + text_words(m.node_id.size()) + text_words(m.from.size());
  }
  std::size_t operator()(const RemovedMsg& m) const {
    return struct_words<wire::MemberRemoved>() + text_words(m.node_id.size()) + text_words(m.by.size());
  }
  std::size_t operator()(const RefusedMsg& m) const {
    return struct_words<wire::Refused>() + text_words(m.node_id.size()) + text_words(m.reason.size());
  }
};

// ---- encoding

void set_text(auto&& setter, const std::string& s) {
  if (!s.empty()) setter(text(s));
}

wire::Lifecycle to_wire(Lifecycle l) { return static_cast<wire::Lifecycle>(static_cast<std::uint16_t>(l)); }
wire::Liveness to_wire(Liveness l) { return static_cast<wire::Liveness>(static_cast<std::uint16_t>(l)); }

void fill_state(wire::MemberState::Builder b, const MemberState& s) {
  set_text([&](auto t) { b.setClientAddress(t); }, s.client_address);
  set_text([&](auto t) { b.setPeerAddress(t); }, s.peer_address);
  set_text([&](auto t) { b.setZone(t); }, s.zone);
  set_text([&](auto t) { b.setRegion(t); }, s.region);
  b.setPartitions(s.partitions);
  b.setReplicationFactor(s.replication_factor);
  b.setLifecycle(to_wire(s.lifecycle));
  b.setWatermarkMs(s.watermark_ms);
  b.setWatermarkHeld(s.watermark_held);
  b.setPendingHints(s.pending_hints);
  b.setLoad(s.load);
  b.setHandOverPartitions(s.hand_over_partitions);
  b.setHandOverBytes(s.hand_over_bytes);
  if (!s.owed.empty()) {
    auto list = b.initOwed(static_cast<unsigned>(s.owed.size()));
    for (unsigned i = 0; i < s.owed.size(); ++i) {
      set_text([&](auto t) { list[i].setNodeId(t); }, s.owed[i].node_id);
      list[i].setSinceMs(s.owed[i].since_ms);
    }
  }
}

void fill_alive(wire::MemberAlive::Builder b, const AliveMsg& a) {
  set_text([&](auto t) { b.setNodeId(t); }, a.node_id);
  set_text([&](auto t) { b.setAddress(t); }, a.address);
  b.setIncarnation(a.incarnation);
  fill_state(b.initState(), a.state);
  b.setWatermarkAgeMs(a.watermark_age_ms);
}

struct Fill {
  mutable wire::MembershipMessage::Builder b;
  void operator()(const PingMsg& m) const {
    auto p = b.initPing();
    p.setSeq(m.seq);
    set_text([&](auto t) { p.setTarget(t); }, m.target);
  }
  void operator()(const PingReqMsg& m) const {
    auto p = b.initPingReq();
    p.setSeq(m.seq);
    set_text([&](auto t) { p.setTarget(t); }, m.target);
    set_text([&](auto t) { p.setTargetAddress(t); }, m.target_address);
    p.setWantNack(m.want_nack);
  }
  void operator()(const AckMsg& m) const { b.initAck().setSeq(m.seq); }
  void operator()(const NackMsg& m) const { b.initNack().setSeq(m.seq); }
  void operator()(const AliveMsg& m) const { fill_alive(b.initAlive(), m); }
  void operator()(const SuspectMsg& m) const {
    auto s = b.initSuspect();
    set_text([&](auto t) { s.setNodeId(t); }, m.node_id);
    s.setIncarnation(m.incarnation);
    set_text([&](auto t) { s.setFrom(t); }, m.from);
  }
  void operator()(const DeadMsg& m) const {
    auto s = b.initDead();
    set_text([&](auto t) { s.setNodeId(t); }, m.node_id);
    s.setIncarnation(m.incarnation);
    set_text([&](auto t) { s.setFrom(t); }, m.from);
  }
  void operator()(const RemovedMsg& m) const {
    auto s = b.initRemoved();
    set_text([&](auto t) { s.setNodeId(t); }, m.node_id);
    set_text([&](auto t) { s.setBy(t); }, m.by);
  }
  void operator()(const RefusedMsg& m) const {
    auto s = b.initRefused();
    set_text([&](auto t) { s.setNodeId(t); }, m.node_id);
    set_text([&](auto t) { s.setReason(t); }, m.reason);
  }
};

std::string to_bytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// ---- decoding

struct Malformed {
  std::string why;
};

std::string checked(capnp::Text::Reader t, std::size_t max, const char* what) {
  if (t.size() > max) throw Malformed{std::string(what) + " longer than " + std::to_string(max) + " bytes"};
  return std::string(view(t));
}

std::string checked_id(capnp::Text::Reader t, const char* what) {
  std::string s = checked(t, kMaxIdBytes, what);
  if (s.empty()) throw Malformed{std::string(what) + " is empty"};
  return s;
}

template <class E>
E checked_enum(std::uint16_t v, std::uint16_t max, const char* what) {
  if (v > max) throw Malformed{std::string("unknown ") + what + " " + std::to_string(v)};
  return static_cast<E>(v);
}

MemberState read_state(wire::MemberState::Reader r) {
  MemberState s;
  s.client_address = checked(r.getClientAddress(), kMaxIdBytes, "client address");
  s.peer_address = checked(r.getPeerAddress(), kMaxIdBytes, "peer address");
  s.zone = checked(r.getZone(), kMaxIdBytes, "zone");
  s.region = checked(r.getRegion(), kMaxIdBytes, "region");
  s.partitions = r.getPartitions();
  s.replication_factor = r.getReplicationFactor();
  s.lifecycle = checked_enum<Lifecycle>(static_cast<std::uint16_t>(r.getLifecycle()), 4, "lifecycle");
  if (s.lifecycle == Lifecycle::kRemoved) throw Malformed{"a member cannot publish itself removed"};
  s.watermark_ms = r.getWatermarkMs();
  s.watermark_held = r.getWatermarkHeld();
  s.pending_hints = r.getPendingHints();
  s.load = r.getLoad();
  s.hand_over_partitions = r.getHandOverPartitions();
  s.hand_over_bytes = r.getHandOverBytes();
  const auto owed = r.getOwed();
  if (owed.size() > kMaxOwed) throw Malformed{"more than " + std::to_string(kMaxOwed) + " owed members"};
  for (auto o : owed) s.owed.push_back(Owed{checked(o.getNodeId(), kMaxIdBytes, "owed node id"), o.getSinceMs()});
  return s;
}

AliveMsg read_alive(wire::MemberAlive::Reader r) {
  AliveMsg a;
  a.node_id = checked_id(r.getNodeId(), "node id");
  a.address = checked_id(r.getAddress(), "address");
  a.incarnation = r.getIncarnation();
  a.state = read_state(r.getState());
  a.watermark_age_ms = r.getWatermarkAgeMs();
  return a;
}

Message read_message(wire::MembershipMessage::Reader r) {
  switch (r.which()) {
    case wire::MembershipMessage::PING: {
      auto p = r.getPing();
      return PingMsg{p.getSeq(), checked_id(p.getTarget(), "ping target")};
    }
    case wire::MembershipMessage::PING_REQ: {
      auto p = r.getPingReq();
      return PingReqMsg{p.getSeq(), checked_id(p.getTarget(), "ping-req target"),
                        checked_id(p.getTargetAddress(), "ping-req address"), p.getWantNack()};
    }
    case wire::MembershipMessage::ACK:
      return AckMsg{r.getAck().getSeq()};
    case wire::MembershipMessage::NACK:
      return NackMsg{r.getNack().getSeq()};
    case wire::MembershipMessage::ALIVE:
      return read_alive(r.getAlive());
    case wire::MembershipMessage::SUSPECT: {
      auto s = r.getSuspect();
      return SuspectMsg{checked_id(s.getNodeId(), "node id"), s.getIncarnation(), checked_id(s.getFrom(), "from")};
    }
    case wire::MembershipMessage::DEAD: {
      auto s = r.getDead();
      return DeadMsg{checked_id(s.getNodeId(), "node id"), s.getIncarnation(), checked_id(s.getFrom(), "from")};
    }
    case wire::MembershipMessage::REMOVED: {
      auto s = r.getRemoved();
      return RemovedMsg{checked_id(s.getNodeId(), "node id"), checked_id(s.getBy(), "by")};
    }
    case wire::MembershipMessage::REFUSED: {
      auto s = r.getRefused();
      return RefusedMsg{checked_id(s.getNodeId(), "node id"), checked(s.getReason(), kMaxTextBytes, "reason")};
    }
  }
  throw Malformed{"unknown message kind"};
}

// Copies `bytes` into word-aligned storage (received datagrams and frames are not aligned).
kj::Array<capnp::word> aligned(std::string_view bytes) {
  auto words = kj::heapArray<capnp::word>(bytes.size() / 8);
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  return words;
}

Error malformed(std::string why) { return Error(ErrorCode::kBadRequest, std::move(why)); }

}  // namespace

std::size_t encoded_bytes(const Message& m) {
  // A list element (the MembershipMessage union: one data word, one pointer) plus the body.
  return 8 * (struct_words<wire::MembershipMessage>() + std::visit(BodyWords{}, m));
}

std::size_t header_bytes(const Datagram& d) {
  // Segment table, root pointer, the datagram struct, its texts, the list's tag word.
  return 8 + 8 + 8 * (struct_words<wire::MembershipDatagram>() + text_words(d.cluster.size()) +
                      text_words(d.from.size()) + text_words(d.from_address.size()) + 1);
}

std::string encode(const Datagram& d) {
  std::size_t words = header_bytes(d) / 8;
  for (const auto& m : d.messages) words += encoded_bytes(m) / 8;
  capnp::MallocMessageBuilder message(static_cast<unsigned>(words + 8));
  auto b = message.initRoot<wire::MembershipDatagram>();
  b.setMagic(kMembershipMagic);
  set_text([&](auto t) { b.setCluster(t); }, d.cluster);
  set_text([&](auto t) { b.setFrom(t); }, d.from);
  set_text([&](auto t) { b.setFromAddress(t); }, d.from_address);
  b.setFromIncarnation(d.from_incarnation);
  auto list = b.initMessages(static_cast<unsigned>(d.messages.size()));
  for (unsigned i = 0; i < d.messages.size(); ++i) std::visit(Fill{list[i]}, d.messages[i]);
  return to_bytes(message);
}

Result<Datagram> decode_datagram(std::string_view bytes) {
  if (bytes.size() < 8 || bytes.size() % 8 != 0 || bytes.size() > kMaxReceivedDatagramBytes) {
    return malformed("datagram of " + std::to_string(bytes.size()) + " bytes");
  }
  auto words = aligned(bytes);
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), protocol::reader_options(bytes.size()));
    auto r = reader.getRoot<wire::MembershipDatagram>();
    if (r.getMagic() != kMembershipMagic) {
      return Error(ErrorCode::kUnsupportedVersion, "not a membership datagram (magic " +
                                                       std::to_string(r.getMagic()) + ")");
    }
    Datagram d;
    d.cluster = checked(r.getCluster(), kMaxIdBytes, "cluster");
    d.from = checked_id(r.getFrom(), "sender id");
    d.from_address = checked_id(r.getFromAddress(), "sender address");
    d.from_incarnation = r.getFromIncarnation();
    auto list = r.getMessages();
    d.messages.reserve(list.size());
    for (auto m : list) d.messages.push_back(read_message(m));
    return d;
  } catch (const Malformed& m) {
    return malformed(m.why);
  } catch (const kj::Exception& e) {
    return malformed(e.getDescription().cStr());
  }
}

std::string encode(const PushPullMsg& p) {
  capnp::MallocMessageBuilder message(static_cast<unsigned>(64 + p.members.size() * 40));
  auto b = message.initRoot<wire::PushPull>();
  b.setMagic(kMembershipMagic);
  set_text([&](auto t) { b.setCluster(t); }, p.cluster);
  set_text([&](auto t) { b.setFrom(t); }, p.from);
  set_text([&](auto t) { b.setFromAddress(t); }, p.from_address);
  b.setJoin(p.join);
  auto members = b.initMembers(static_cast<unsigned>(p.members.size()));
  for (unsigned i = 0; i < p.members.size(); ++i) {
    const auto& e = p.members[i];
    fill_alive(members[i].initRecord(), e.record);
    members[i].setLiveness(to_wire(e.liveness));
    set_text([&](auto t) { members[i].setRemovedBy(t); }, e.removed_by);
  }
  auto tombs = b.initTombstones(static_cast<unsigned>(p.tombstones.size()));
  for (unsigned i = 0; i < p.tombstones.size(); ++i) {
    set_text([&](auto t) { tombs[i].setNodeId(t); }, p.tombstones[i].node_id);
    set_text([&](auto t) { tombs[i].setReason(t); }, p.tombstones[i].reason);
    tombs[i].setRemainingMs(p.tombstones[i].remaining_ms);
    tombs[i].setIncarnation(p.tombstones[i].incarnation);
    tombs[i].setFinal(p.tombstones[i].final);
  }
  set_text([&](auto t) { b.setRefused(t); }, p.refused);
  b.setPing(p.ping);
  b.setQuery(p.query);
  return to_bytes(message);
}

Result<PushPullMsg> decode_push_pull(std::string_view bytes) {
  if (bytes.size() < 8 || bytes.size() % 8 != 0) {
    return malformed("push-pull of " + std::to_string(bytes.size()) + " bytes");
  }
  auto words = aligned(bytes);
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), protocol::reader_options(bytes.size()));
    auto r = reader.getRoot<wire::PushPull>();
    if (r.getMagic() != kMembershipMagic) {
      return Error(ErrorCode::kUnsupportedVersion, "not a membership push-pull");
    }
    PushPullMsg p;
    p.cluster = checked(r.getCluster(), kMaxIdBytes, "cluster");
    p.from = checked_id(r.getFrom(), "sender id");
    p.from_address = checked_id(r.getFromAddress(), "sender address");
    p.join = r.getJoin();
    auto members = r.getMembers();
    p.members.reserve(members.size());
    for (auto e : members) {
      MemberEntry m;
      m.record = read_alive(e.getRecord());
      m.liveness = checked_enum<Liveness>(static_cast<std::uint16_t>(e.getLiveness()), 2, "liveness");
      m.removed_by = checked(e.getRemovedBy(), kMaxIdBytes, "removed by");
      p.members.push_back(std::move(m));
    }
    for (auto t : r.getTombstones()) {
      p.tombstones.push_back(TombstoneEntry{checked_id(t.getNodeId(), "tombstone id"),
                                            checked(t.getReason(), kMaxTextBytes, "reason"),
                                            t.getRemainingMs(), t.getIncarnation(), t.getFinal()});
    }
    p.refused = checked(r.getRefused(), kMaxTextBytes, "refusal");
    p.ping = r.getPing();
    p.query = r.getQuery();
    return p;
  } catch (const Malformed& m) {
    return malformed(m.why);
  } catch (const kj::Exception& e) {
    return malformed(e.getDescription().cStr());
  }
}

}  // namespace alldata::broker
