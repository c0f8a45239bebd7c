// The Scuttlebutt gossiper: state, the 3-way exchange, the datagram bound, liveness and
// the cluster-settings check. Everything here runs under Gossiper::mutex_; events are
// collected in Impl::events and handed to subscribers after the mutex is released.
#include "alldata/broker/gossip.h"

#include "alldata.capnp.h"
#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace alldata::broker {

namespace {

using protocol::text;
using protocol::view;

constexpr std::size_t kMaxIdBytes = 255;
constexpr std::size_t kMaxAddressBytes = 255;
constexpr std::size_t kMaxKeyBytes = 1024;
// Datagrams up to the largest UDP payload are decoded; only sending is bounded by
// max_datagram_bytes, so nodes configured with different bounds still understand each other.
constexpr std::size_t kMaxReceiveBytes = 65536;

// Sizes in the unpacked Cap'n Proto encoding, in bytes (whole words).
std::size_t text_bytes(std::size_t len) { return (len + 1 + 7) / 8 * 8; }
std::size_t data_bytes(std::size_t len) { return (len + 7) / 8 * 8; }
// A GossipDigest in a struct list: 1 data word + 2 pointers, then its texts.
std::size_t digest_bytes(std::size_t id, std::size_t address) {
  return 24 + text_bytes(id) + text_bytes(address);
}
// A GossipNodeDeltas: 3 pointers, its texts, and its list's tag word.
std::size_t group_bytes(std::size_t id, std::size_t address) {
  return 24 + text_bytes(id) + text_bytes(address) + 8;
}
// A GossipDelta: 1 data word + 2 pointers, then the key text and the value data.
std::size_t delta_bytes(std::size_t key, std::size_t value) {
  return 24 + text_bytes(key) + data_bytes(value);
}

bool reserved(std::string_view key) {
  return key.substr(0, std::strlen(gossip_keys::kReservedPrefix)) == gossip_keys::kReservedPrefix;
}

struct Versioned {
  std::string value;
  std::uint64_t version = 0;
};

struct Node {
  Node(std::string i, std::string a, const PhiAccrualOptions& phi, std::uint64_t now)
      : id(std::move(i)), address(std::move(a)), detector(phi, now) {}
  std::string id;
  std::string address;
  std::map<std::string, Versioned, std::less<>> values;
  std::uint64_t max_version = 0;
  bool self = false;
  bool admitted = false;  // a member: cluster settings received and equal to ours
  bool live = true;
  PhiAccrualDetector detector;
};

struct Refusal {
  std::uint64_t until_ms = 0;
};

// Deltas chosen for one origin node: a prefix, in version order, of what the other side lacks.
struct Group {
  const Node* node;
  std::vector<std::pair<const std::string*, const Versioned*>> deltas;
};

struct Candidate {
  const Node* node;
  std::uint64_t known;  // the other side's max version of node
  std::size_t missing;  // how many of node's keys the other side lacks
};

std::string to_bytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

}  // namespace

std::uint64_t SteadyGossipClock::now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

std::uint64_t SeededGossipRandom::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t SeededGossipRandom::below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

double SeededGossipRandom::unit() {
  return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
}

struct Gossiper::Impl {
  Impl(const GossipOptions& o, DatagramTransport& t, const std::string& a, GossipClock& c,
       GossipRandom& r, std::shared_ptr<spdlog::logger> l)
      : options(o), transport(t), address(a), clock(c), random(r), logger(std::move(l)) {}

  const GossipOptions& options;
  DatagramTransport& transport;
  const std::string& address;
  GossipClock& clock;
  GossipRandom& random;
  std::shared_ptr<spdlog::logger> logger;

  std::map<std::string, Node, std::less<>> nodes;  // self included
  Node* self = nullptr;
  std::uint64_t local_version = 0;
  std::map<std::string, Refusal, std::less<>> refused;
  std::map<std::string, std::string, std::less<>> refusal_logged;  // node -> reason
  bool settings_changed = false;
  bool logged_id_clash = false;
  std::map<std::uint64_t, Handler> handlers;
  std::uint64_t next_handler = 1;
  GossipStats stats;
  std::vector<GossipEvent> events;

  // ---- sizes

  std::size_t header_bytes() const {
    // Segment table, root pointer, GossipDatagram (1 data word + 4 pointers), its texts,
    // the body struct (at most 2 words) and its lists' tag words.
    return 8 + 8 + 40 + text_bytes(options.cluster.size()) +
           text_bytes(options.node_id.size()) + text_bytes(address.size()) + 16 + 16;
  }

  std::size_t budget() const {
    const std::size_t h = header_bytes();
    return options.max_datagram_bytes > h ? options.max_datagram_bytes - h : 0;
  }

  // ---- membership

  Node* find(std::string_view id) {
    auto it = nodes.find(id);
    return it == nodes.end() ? nullptr : &it->second;
  }

  bool is_refused(std::string_view id, std::uint64_t now) {
    auto it = refused.find(id);
    if (it == refused.end()) return false;
    if (it->second.until_ms <= now) {
      refused.erase(it);
      return false;
    }
    return true;
  }

  void emit(GossipEvent::Kind kind, const std::string& id, std::string key = {},
            std::string value = {}) {
    events.push_back(GossipEvent{kind, id, std::move(key), std::move(value)});
  }

  enum class Admission { kPending, kAdmit, kMismatch };

  Admission check_settings(const Node& n, std::string* bad_key) const {
    bool pending = false;
    for (const auto& key : options.cluster_setting_keys) {
      auto ours = self->values.find(key);
      if (ours == self->values.end()) continue;
      auto theirs = n.values.find(key);
      if (theirs == n.values.end()) {
        pending = true;
      } else if (theirs->second.value != ours->second.value) {
        *bad_key = key;
        return Admission::kMismatch;
      }
    }
    return pending ? Admission::kPending : Admission::kAdmit;
  }

  // Takes copies: `id` is often the erased node's own member.
  void refuse(std::string id, std::string key, std::uint64_t now) {
    Node* n = find(id);
    std::string theirs = n ? n->values[key].value : std::string();
    const std::string& ours = self->values[key].value;
    const bool was_live_member = n && n->admitted && n->live;
    nodes.erase(id);
    refused[id] = Refusal{now + static_cast<std::uint64_t>(options.refusal_duration.count())};
    ++stats.nodes_refused;
    std::string reason = key + "\x1f" + theirs + "\x1f" + ours;
    auto& logged = refusal_logged[id];
    if (logged != reason) {
      logged = std::move(reason);
      logger->error(
          "gossip: refusing node {}: its cluster setting {} is '{}' but this cluster uses "
          "'{}'; its datagrams are dropped until its configuration matches",
          id, key, theirs, ours);
    }
    if (refusal_logged.size() > options.max_nodes) refusal_logged.clear();
    if (was_live_member) emit(GossipEvent::Kind::kPeerDead, id);
  }

  // Re-evaluates a node after its state changed: admission, refusal or update events.
  void evaluate(Node& n, const std::vector<std::string>& changed, std::uint64_t now) {
    std::string bad_key;
    const Admission a = check_settings(n, &bad_key);
    if (a == Admission::kMismatch) {
      refuse(n.id, bad_key, now);
      return;
    }
    if (!n.admitted) {
      if (a != Admission::kAdmit) return;
      n.admitted = true;
      n.live = true;
      logger->info("gossip: new peer {} at {}", n.id, n.address);
      emit(GossipEvent::Kind::kNewPeer, n.id);
      for (const auto& [key, v] : n.values) {
        if (!reserved(key)) emit(GossipEvent::Kind::kUpdate, n.id, key, v.value);
      }
      return;
    }
    for (const auto& key : changed) {
      if (reserved(key)) continue;
      auto it = n.values.find(key);
      if (it != n.values.end()) emit(GossipEvent::Kind::kUpdate, n.id, key, it->second.value);
    }
  }

  // A node heard of for the first time (directly or through someone's deltas).
  Node* learn(std::string_view id, std::string_view addr, std::uint64_t now) {
    if (nodes.size() >= options.max_nodes) return nullptr;
    auto [it, inserted] = nodes.try_emplace(std::string(id), std::string(id),
                                            std::string(addr), options.phi, now);
    Node& n = it->second;
    evaluate(n, {}, now);  // admitted at once when we have no cluster settings to check
    return find(id);
  }

  // Any datagram directly from `id` is a contact: phi restarts and a dead member is live.
  void contact(std::string_view id, std::string_view addr, std::uint64_t now) {
    Node* n = find(id);
    if (n == nullptr) {
      learn(id, addr, now);
      return;
    }
    if (!addr.empty() && n->address != addr) n->address = std::string(addr);
    touch(*n, now);
  }

  void touch(Node& n, std::uint64_t now) {
    n.detector.heartbeat(now);
    if (n.admitted && !n.live) {
      n.live = true;
      logger->info("gossip: peer {} is live again", n.id);
      emit(GossipEvent::Kind::kPeerLive, n.id);
    }
  }

  void apply(capnp::List<wire::GossipNodeDeltas>::Reader groups, std::uint64_t now) {
    for (auto g : groups) {
      const std::string_view id = view(g.getNodeId());
      const std::string_view addr = view(g.getAddress());
      if (id.empty() || id.size() > kMaxIdBytes || addr.size() > kMaxAddressBytes) {
        ++stats.malformed_dropped;
        continue;
      }
      if (id == options.node_id || is_refused(id, now)) continue;
      Node* n = find(id);
      if (n == nullptr) n = learn(id, addr, now);
      if (n == nullptr) continue;
      if (n->address.empty()) n->address = std::string(addr);
      std::vector<std::string> changed;
      const std::uint64_t max_before = n->max_version;
      for (auto d : g.getDeltas()) {
        const std::uint64_t version = d.getVersion();
        if (version <= n->max_version) continue;
        n->max_version = version;
        const std::string_view key = view(d.getKey());
        if (key.empty() || key.size() > kMaxKeyBytes) continue;
        const std::string_view value = view(d.getValue());
        auto [it, inserted] = n->values.try_emplace(std::string(key));
        const bool differs = inserted || it->second.value != value;
        it->second.value.assign(value);
        it->second.version = version;
        ++stats.deltas_applied;
        if (differs && std::find(changed.begin(), changed.end(), it->first) == changed.end()) {
          changed.push_back(it->first);
        }
      }
      const bool newer = n->max_version > max_before;
      evaluate(*n, changed, now);
      // New state of a node means it was alive after we last heard of it: an indirect
      // contact. (evaluate() may have refused and erased the node.)
      if (newer && options.heartbeat) {
        if (Node* still = find(id)) touch(*still, now);
      }
    }
  }

  // ---- choosing what to send

  std::vector<Group> plan(std::vector<Candidate> candidates, std::size_t& room) {
    // Most-outdated node first; ties in random order, so that when the datagram is full
    // no node is always last (seeded randomness keeps simulations reproducible).
    for (std::size_t i = candidates.size(); i > 1; --i) {
      std::swap(candidates[i - 1], candidates[random.below(i)]);
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Candidate& a, const Candidate& b) { return a.missing > b.missing; });
    std::vector<Group> groups;
    std::size_t count = 0;
    const std::size_t max_count =
        options.max_deltas_per_datagram ? options.max_deltas_per_datagram : SIZE_MAX;
    for (const auto& c : candidates) {
      if (count >= max_count) break;
      std::vector<std::pair<const std::string*, const Versioned*>> lacking;
      for (const auto& [key, v] : c.node->values) {
        if (v.version > c.known) lacking.emplace_back(&key, &v);
      }
      if (lacking.empty()) continue;
      // Oldest first: the receiver's max version then never passes a version it lacks.
      std::sort(lacking.begin(), lacking.end(),
                [](const auto& a, const auto& b) { return a.second->version < b.second->version; });
      const std::size_t head = group_bytes(c.node->id.size(), c.node->address.size());
      if (room < head + delta_bytes(lacking[0].first->size(), lacking[0].second->value.size())) {
        continue;  // a smaller node may still fit
      }
      room -= head;
      Group g{c.node, {}};
      for (const auto& d : lacking) {
        const std::size_t cost = delta_bytes(d.first->size(), d.second->value.size());
        if (cost > room || count >= max_count) break;
        room -= cost;
        g.deltas.push_back(d);
        ++count;
      }
      groups.push_back(std::move(g));
    }
    return groups;
  }

  std::size_t missing(const Node& n, std::uint64_t known) const {
    std::size_t m = 0;
    for (const auto& [key, v] : n.values) m += v.version > known ? 1 : 0;
    return m;
  }

  // ---- encoding

  capnp::MallocMessageBuilder new_message() const {
    return capnp::MallocMessageBuilder(
        static_cast<unsigned>(options.max_datagram_bytes / 8 + 512));
  }

  void fill_header(wire::GossipDatagram::Builder d) const {
    d.setMagic(wire::GOSSIP_MAGIC);
    d.setCluster(text(options.cluster));
    d.setNodeId(text(options.node_id));
    d.setAddress(text(address));
  }

  static void fill_groups(capnp::List<wire::GossipNodeDeltas>::Builder list,
                          const std::vector<Group>& groups) {
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto g = list[static_cast<unsigned>(i)];
      g.setNodeId(text(groups[i].node->id));
      g.setAddress(text(groups[i].node->address));
      auto deltas = g.initDeltas(static_cast<unsigned>(groups[i].deltas.size()));
      for (std::size_t j = 0; j < groups[i].deltas.size(); ++j) {
        auto d = deltas[static_cast<unsigned>(j)];
        d.setKey(text(*groups[i].deltas[j].first));
        d.setValue(protocol::data(groups[i].deltas[j].second->value));
        d.setVersion(groups[i].deltas[j].second->version);
      }
    }
  }

  // Drops the last delta (and an emptied group); false when nothing is left to drop.
  static bool trim(std::vector<Group>& groups) {
    while (!groups.empty() && groups.back().deltas.empty()) groups.pop_back();
    if (groups.empty()) return false;
    groups.back().deltas.pop_back();
    if (groups.back().deltas.empty()) groups.pop_back();
    return true;
  }

  std::size_t delta_count(const std::vector<Group>& groups) const {
    std::size_t n = 0;
    for (const auto& g : groups) n += g.deltas.size();
    return n;
  }

  void send(const std::string& to, std::string bytes, std::size_t deltas) {
    ++stats.datagrams_sent;
    stats.bytes_sent += bytes.size();
    stats.largest_datagram_sent =
        std::max<std::uint64_t>(stats.largest_datagram_sent, bytes.size());
    stats.deltas_sent += deltas;
    transport.send(to, std::move(bytes));
  }

  // ---- the exchange

  void send_syn(const std::string& to) {
    std::size_t room = budget();
    std::vector<const Node*> listed{self};
    room -= std::min(room, digest_bytes(self->id.size(), self->address.size()));
    std::vector<const Node*> others;
    std::size_t all = 0;
    for (const auto& [id, n] : nodes) {
      if (n.self) continue;
      others.push_back(&n);
      all += digest_bytes(n.id.size(), n.address.size());
    }
    const bool complete = all <= room;
    if (!complete) {
      // A random subset that fits: every node gets its turn over the rounds.
      for (std::size_t i = others.size(); i > 1; --i) {
        std::swap(others[i - 1], others[random.below(i)]);
      }
    }
    for (const Node* n : others) {
      const std::size_t cost = digest_bytes(n->id.size(), n->address.size());
      if (cost > room) continue;
      room -= cost;
      listed.push_back(n);
    }
    for (;;) {
      auto message = new_message();
      auto d = message.initRoot<wire::GossipDatagram>();
      fill_header(d);
      auto syn = d.initSyn();
      syn.setComplete(complete && listed.size() == others.size() + 1);
      auto list = syn.initDigests(static_cast<unsigned>(listed.size()));
      for (std::size_t i = 0; i < listed.size(); ++i) {
        auto e = list[static_cast<unsigned>(i)];
        e.setNodeId(text(listed[i]->id));
        e.setMaxVersion(listed[i]->max_version);
        e.setAddress(text(listed[i]->address));
      }
      if (capnp::computeSerializedSizeInWords(message) * 8 <= options.max_datagram_bytes ||
          listed.size() <= 1) {
        send(to, to_bytes(message), 0);
        return;
      }
      listed.pop_back();
    }
  }

  void handle_syn(std::string_view from, std::string_view sender, wire::GossipSyn::Reader syn,
                  std::uint64_t now) {
    auto digests = syn.getDigests();
    if (digests.size() > options.max_nodes) {
      ++stats.malformed_dropped;
      return;
    }
    std::map<std::string, std::uint64_t, std::less<>> theirs;
    struct Request {
      std::string id;
      std::uint64_t ours;
    };
    std::vector<Request> requests;
    std::size_t room = budget();
    for (auto e : digests) {
      const std::string_view id = view(e.getNodeId());
      if (id.empty() || id.size() > kMaxIdBytes) continue;
      const std::uint64_t their_max = e.getMaxVersion();
      auto [it, inserted] = theirs.try_emplace(std::string(id), their_max);
      if (!inserted) continue;
      if (id == options.node_id || is_refused(id, now)) continue;
      const Node* n = find(id);
      const std::uint64_t ours = n ? n->max_version : 0;
      const std::size_t cost = digest_bytes(id.size(), 0);
      if (their_max > ours && cost <= room) {
        room -= cost;
        requests.push_back(Request{std::string(id), ours});
      }
    }
    std::vector<Candidate> candidates;
    for (const auto& [id, n] : nodes) {
      if (id == sender) continue;  // its own state is its own business
      auto it = theirs.find(id);
      if (it == theirs.end() && !syn.getComplete()) continue;
      const std::uint64_t known = it == theirs.end() ? 0 : it->second;
      if (n.max_version > known) candidates.push_back(Candidate{&n, known, missing(n, known)});
    }
    std::vector<Group> groups = plan(std::move(candidates), room);
    for (;;) {
      auto message = new_message();
      auto d = message.initRoot<wire::GossipDatagram>();
      fill_header(d);
      auto ack = d.initAck();
      auto list = ack.initRequests(static_cast<unsigned>(requests.size()));
      for (std::size_t i = 0; i < requests.size(); ++i) {
        list[static_cast<unsigned>(i)].setNodeId(text(requests[i].id));
        list[static_cast<unsigned>(i)].setMaxVersion(requests[i].ours);
      }
      fill_groups(ack.initDeltas(static_cast<unsigned>(groups.size())), groups);
      if (capnp::computeSerializedSizeInWords(message) * 8 <= options.max_datagram_bytes) {
        send(std::string(from), to_bytes(message), delta_count(groups));
        return;
      }
      if (!trim(groups)) {
        if (requests.empty()) return;  // cannot happen with a sane bound; send nothing
        requests.pop_back();
      }
    }
  }

  void handle_ack(std::string_view from, std::string_view sender, wire::GossipAck::Reader ack,
                  std::uint64_t now) {
    apply(ack.getDeltas(), now);
    std::vector<Candidate> candidates;
    std::set<std::string, std::less<>> seen;
    for (auto r : ack.getRequests()) {
      const std::string_view id = view(r.getNodeId());
      if (id == sender || !seen.emplace(id).second) continue;
      const Node* n = find(id);
      if (n == nullptr) continue;
      const std::uint64_t known = r.getMaxVersion();
      if (n->max_version > known) candidates.push_back(Candidate{n, known, missing(*n, known)});
    }
    if (candidates.empty()) return;
    std::size_t room = budget();
    std::vector<Group> groups = plan(std::move(candidates), room);
    while (!groups.empty()) {
      auto message = new_message();
      auto d = message.initRoot<wire::GossipDatagram>();
      fill_header(d);
      fill_groups(d.initAck2().initDeltas(static_cast<unsigned>(groups.size())), groups);
      if (capnp::computeSerializedSizeInWords(message) * 8 <= options.max_datagram_bytes) {
        send(std::string(from), to_bytes(message), delta_count(groups));
        return;
      }
      trim(groups);
    }
  }

  void on_datagram(std::string_view from, std::string_view bytes) {
    ++stats.datagrams_received;
    if (bytes.size() < 8 || bytes.size() % 8 != 0 || bytes.size() > kMaxReceiveBytes) {
      ++stats.malformed_dropped;
      return;
    }
    auto words = kj::heapArray<capnp::word>(bytes.size() / 8);
    std::memcpy(words.begin(), bytes.data(), bytes.size());
    try {
      capnp::FlatArrayMessageReader reader(words.asPtr(),
                                           protocol::reader_options(bytes.size()));
      auto d = reader.getRoot<wire::GossipDatagram>();
      if (d.getMagic() != wire::GOSSIP_MAGIC || view(d.getCluster()) != options.cluster) {
        ++stats.foreign_dropped;
        return;
      }
      const std::string_view id = view(d.getNodeId());
      const std::string_view addr = view(d.getAddress());
      if (id.empty() || id.size() > kMaxIdBytes || addr.size() > kMaxAddressBytes) {
        ++stats.malformed_dropped;
        return;
      }
      const std::uint64_t now = clock.now_ms();
      if (id == options.node_id) {
        ++stats.malformed_dropped;
        if (!logged_id_clash) {
          logged_id_clash = true;
          logger->error("gossip: a datagram from {} claims this node's id {}", from, id);
        }
        return;
      }
      if (is_refused(id, now)) {
        ++stats.refused_dropped;
        return;
      }
      contact(id, addr, now);
      switch (d.which()) {
        case wire::GossipDatagram::SYN:
          handle_syn(from, id, d.getSyn(), now);
          break;
        case wire::GossipDatagram::ACK:
          handle_ack(from, id, d.getAck(), now);
          break;
        case wire::GossipDatagram::ACK2:
          apply(d.getAck2().getDeltas(), now);
          break;
        default:
          ++stats.malformed_dropped;
          break;
      }
    } catch (const kj::Exception&) {
      ++stats.malformed_dropped;
    }
  }

  void round() {
    const std::uint64_t now = clock.now_ms();
    ++stats.rounds;
    if (options.heartbeat) {
      auto& beat = self->values[gossip_keys::kHeartbeat];
      beat.value = std::to_string(stats.rounds);
      beat.version = ++local_version;
      self->max_version = beat.version;
    }
    if (settings_changed) {
      settings_changed = false;
      std::vector<std::string> ids;
      for (const auto& [id, n] : nodes) {
        if (!n.self) ids.push_back(id);
      }
      for (const auto& id : ids) {
        if (Node* n = find(id)) evaluate(*n, {}, now);
      }
    }
    std::vector<const Node*> live;
    std::vector<const Node*> dead;
    for (auto& [id, n] : nodes) {
      if (n.self || !n.admitted) continue;
      if (n.live) {
        const double phi = n.detector.phi(now);
        if (phi > options.phi.threshold) {
          n.live = false;
          logger->info("gossip: peer {} is dead (phi {:.1f}, silent {} ms)", id, phi,
                       now - n.detector.last_contact_ms());
          emit(GossipEvent::Kind::kPeerDead, id);
        }
      }
      (n.live ? live : dead).push_back(&n);
    }
    if (!live.empty()) send_syn(live[random.below(live.size())]->address);
    if (!dead.empty() &&
        random.unit() < static_cast<double>(dead.size()) / static_cast<double>(live.size() + 1)) {
      send_syn(dead[random.below(dead.size())]->address);
    }
    if (live.size() < options.minimum_live_peers) {
      std::vector<const std::string*> seeds;
      for (const auto& s : options.seeds) {
        if (s != address) seeds.push_back(&s);
      }
      if (!seeds.empty()) send_syn(*seeds[random.below(seeds.size())]);
    }
  }

  GossipMember snapshot(const Node& n, std::uint64_t now) const {
    GossipMember m;
    m.node_id = n.id;
    m.address = n.address;
    m.self = n.self;
    m.live = n.self || n.live;
    m.phi = n.self ? 0.0 : n.detector.phi(now);
    m.max_version = n.max_version;
    for (const auto& [key, v] : n.values) {
      if (!reserved(key)) m.values.emplace(key, v.value);
    }
    return m;
  }
};

Gossiper::Gossiper(GossipOptions options, DatagramTransport& transport, GossipClock& clock,
                   GossipRandom& random, std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      transport_(transport),
      address_(options_.advertise_address.empty() ? transport.local_address()
                                                  : options_.advertise_address) {
  if (options_.node_id.empty() || options_.node_id.size() > kMaxIdBytes) {
    throw std::invalid_argument("gossip: node id must be 1 to 255 bytes");
  }
  impl_ = std::make_unique<Impl>(options_, transport_, address_, clock, random, std::move(logger));
  const std::uint64_t now = clock.now_ms();
  auto [it, inserted] =
      impl_->nodes.try_emplace(options_.node_id, options_.node_id, address_, options_.phi, now);
  impl_->self = &it->second;
  impl_->self->self = true;
  impl_->self->admitted = true;
  impl_->local_version =
      options_.initial_version != 0
          ? options_.initial_version
          : static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  transport_.set_receiver(
      [this](std::string_view from, std::string_view bytes) { receive(from, bytes); });
}

Gossiper::~Gossiper() { transport_.set_receiver({}); }

Status Gossiper::set_local(const std::string& key, std::string value) {
  std::lock_guard lock(mutex_);
  if (key.empty() || key.size() > kMaxKeyBytes) {
    return Error(ErrorCode::kBadRequest, "gossip key must be 1 to 1024 bytes");
  }
  if (reserved(key)) {
    return Error(ErrorCode::kBadRequest, "gossip key '" + key + "' uses the reserved prefix");
  }
  const std::size_t need = group_bytes(options_.node_id.size(), address_.size()) +
                           delta_bytes(key.size(), value.size());
  if (need > impl_->budget()) {
    return Error(ErrorCode::kBadRequest,
                 "gossip key '" + key + "' with a value of " + std::to_string(value.size()) +
                     " bytes does not fit one datagram of " +
                     std::to_string(options_.max_datagram_bytes) + " bytes");
  }
  Node& self = *impl_->self;
  auto& slot = self.values[key];
  slot.value = std::move(value);
  slot.version = ++impl_->local_version;
  self.max_version = slot.version;
  if (std::find(options_.cluster_setting_keys.begin(), options_.cluster_setting_keys.end(),
                key) != options_.cluster_setting_keys.end()) {
    impl_->settings_changed = true;
  }
  return {};
}

std::optional<std::string> Gossiper::get(const std::string& node_id,
                                         const std::string& key) const {
  std::lock_guard lock(mutex_);
  const Node* n = impl_->find(node_id);
  if (n == nullptr || !n->admitted) return std::nullopt;
  auto it = n->values.find(key);
  if (it == n->values.end()) return std::nullopt;
  return it->second.value;
}

std::vector<GossipMember> Gossiper::members() const {
  std::lock_guard lock(mutex_);
  const std::uint64_t now = impl_->clock.now_ms();
  std::vector<GossipMember> out;
  out.push_back(impl_->snapshot(*impl_->self, now));
  for (const auto& [id, n] : impl_->nodes) {
    if (!n.self && n.admitted) out.push_back(impl_->snapshot(n, now));
  }
  return out;
}

std::optional<GossipMember> Gossiper::member(const std::string& node_id) const {
  std::lock_guard lock(mutex_);
  const Node* n = impl_->find(node_id);
  if (n == nullptr || !n->admitted) return std::nullopt;
  return impl_->snapshot(*n, impl_->clock.now_ms());
}

std::uint64_t Gossiper::subscribe(Handler handler) {
  std::lock_guard lock(mutex_);
  const std::uint64_t id = impl_->next_handler++;
  impl_->handlers.emplace(id, std::move(handler));
  return id;
}

void Gossiper::unsubscribe(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  impl_->handlers.erase(id);
}

GossipStats Gossiper::stats() const {
  std::lock_guard lock(mutex_);
  return impl_->stats;
}

void Gossiper::tick() {
  std::vector<GossipEvent> events;
  std::vector<Handler> handlers;
  {
    std::lock_guard lock(mutex_);
    impl_->round();
    events.swap(impl_->events);
    if (!events.empty()) {
      for (const auto& [id, h] : impl_->handlers) handlers.push_back(h);
    }
  }
  for (const auto& e : events) {
    for (const auto& h : handlers) h(e);
  }
}

void Gossiper::receive(std::string_view from, std::string_view bytes) {
  std::vector<GossipEvent> events;
  std::vector<Handler> handlers;
  {
    std::lock_guard lock(mutex_);
    impl_->on_datagram(from, bytes);
    events.swap(impl_->events);
    if (!events.empty()) {
      for (const auto& [id, h] : impl_->handlers) handlers.push_back(h);
    }
  }
  for (const auto& e : events) {
    for (const auto& h : handlers) h(e);
  }
}

}  // namespace alldata::broker
