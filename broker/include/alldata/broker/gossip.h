// Cluster membership by gossip: a Scuttlebutt anti-entropy protocol over datagrams with
// phi-accrual failure detection. Every broker owns a small versioned key/value state (its
// listener addresses, zone, region, cluster settings, state, watermark, load); the
// gossiper spreads every broker's state to every other one and tells its owner who is
// live. It knows nothing of storage or placement.
//
// Its clock, randomness and datagram transport are interfaces, so the same code runs on
// UDP in a broker (gossip_udp.h) and by the thousand in one process on a simulated network
// (gossip_memory.h). The wire format, the exchange and the defaults are described in
// broker/README.md, "Gossip"; the datagram schema is at the end of protocol/alldata.capnp.
#pragma once

#include "alldata/broker/phi_accrual.h"
#include "alldata/protocol/error.h"

#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::broker {

// Milliseconds from any fixed origin, never going back. Must be callable from any thread
// that calls Gossiper::members() (the production clock is std::chrono::steady_clock).
class GossipClock {
 public:
  virtual ~GossipClock() = default;
  virtual std::uint64_t now_ms() = 0;
};

// Uniform random numbers. Only called on the gossiper's executor.
class GossipRandom {
 public:
  virtual ~GossipRandom() = default;
  // Uniform in [0, n); n > 0.
  virtual std::uint64_t below(std::uint64_t n) = 0;
  // Uniform in [0, 1).
  virtual double unit() = 0;
};

// An unreliable datagram service: datagrams may be lost, duplicated or reordered, never
// cut. Addresses are opaque strings ("host:port" for UDP).
class DatagramTransport {
 public:
  // Called on the transport's executor with the sender's address and the datagram's
  // bytes, both borrowed for the duration of the call.
  using Receiver = std::function<void(std::string_view from, std::string_view bytes)>;

  virtual ~DatagramTransport() = default;
  // The address other nodes reach this transport at.
  virtual std::string local_address() const = 0;
  // Queues one datagram to `to`; never blocks and never calls the receiver from inside.
  // A datagram that cannot be sent (bad address, queue full) is dropped, as the network
  // may drop any datagram.
  virtual void send(const std::string& to, std::string bytes) = 0;
  // Installs the receiver (an empty function stops delivery).
  virtual void set_receiver(Receiver receiver) = 0;
};

// std::chrono::steady_clock.
class SteadyGossipClock final : public GossipClock {
 public:
  std::uint64_t now_ms() override;
};

// A small deterministic generator (splitmix64): the same seed gives the same choices,
// which is what simulations need; production seeds it from std::random_device.
class SeededGossipRandom final : public GossipRandom {
 public:
  explicit SeededGossipRandom(std::uint64_t seed) : state_(seed) {}
  std::uint64_t below(std::uint64_t n) override;
  double unit() override;

 private:
  std::uint64_t next();
  std::uint64_t state_;
};

// Keys the broker publishes. Values are strings or bytes; the gossiper does not look at
// them, except the cluster settings (GossipOptions::cluster_setting_keys).
namespace gossip_keys {
inline constexpr const char* kClientAddress = "client.address";
inline constexpr const char* kPeerAddress = "peer.address";
inline constexpr const char* kZone = "zone";
inline constexpr const char* kRegion = "region";
inline constexpr const char* kPartitions = "cluster.partitions";
inline constexpr const char* kReplicationFactor = "cluster.rf";
inline constexpr const char* kState = "state";
inline constexpr const char* kWatermark = "watermark";
inline constexpr const char* kLoad = "load";
// Reserved for the gossiper itself (set_local refuses the prefix; never in events or
// member snapshots): bumped every round when GossipOptions::heartbeat is on.
inline constexpr const char* kReservedPrefix = "gossip.";
inline constexpr const char* kHeartbeat = "gossip.heartbeat";
}  // namespace gossip_keys

struct GossipOptions {
  // This node's unique id (required, at most 255 bytes).
  std::string node_id;
  // Datagrams whose cluster name differs are dropped and counted as foreign.
  std::string cluster = "alldata";
  // The address other nodes send to; empty = the transport's local_address().
  std::string advertise_address;
  // Gossip addresses contacted while fewer than `minimum_live_peers` peers are live.
  std::vector<std::string> seeds;
  std::size_t minimum_live_peers = 1;
  // How often the owner calls tick() (GossipTicker uses it). Default 1 s.
  std::chrono::milliseconds interval{1000};
  // Hard bound of every datagram sent, headers included (a safe size for one Ethernet
  // frame). What does not fit is sent in later rounds.
  std::size_t max_datagram_bytes = 1400;
  // At most this many deltas per datagram (0 = only the byte bound).
  std::size_t max_deltas_per_datagram = 0;
  // Keys that must hold the same value on every member. A node whose value differs from
  // ours is refused: its datagrams and state are dropped and one line is logged. A node
  // that has not yet published a key we have set is not a member until it does.
  std::vector<std::string> cluster_setting_keys = {gossip_keys::kPartitions,
                                                   gossip_keys::kReplicationFactor};
  // How long a refused node stays refused before its state is fetched and checked again.
  std::chrono::milliseconds refusal_duration{60'000};
  // Versions of this node's keys start above this. 0 = the system clock in ms, so the
  // state of a restarted node supersedes what the cluster remembers of it.
  std::uint64_t initial_version = 0;
  // Contacts feeding phi. A datagram directly from a node is always one (as in the
  // original gossipmonger). With `heartbeat` on, every round also bumps this node's
  // gossip.heartbeat key, and state of a node newer than any seen before, received from
  // anyone, is a contact too (as Cassandra): a peer is then heard of every round or two
  // whatever the cluster size, instead of every N/2 rounds with direct contacts only.
  bool heartbeat = true;
  // Bound on known nodes (members, pending and refused); beyond it new ids are ignored.
  std::size_t max_nodes = 4096;
  PhiAccrualOptions phi;
};

struct GossipEvent {
  enum class Kind {
    kNewPeer,   // a node became a member (its cluster settings match ours)
    kPeerDead,  // phi crossed the threshold (or the node was refused)
    kPeerLive,  // a dead member was heard from again
    kUpdate,    // a member's key changed: key, value
  };
  Kind kind;
  std::string node_id;
  std::string key;
  std::string value;
};

struct GossipMember {
  std::string node_id;
  std::string address;  // gossip address
  bool self = false;
  bool live = true;
  double phi = 0.0;  // 0 for self
  std::uint64_t max_version = 0;
  std::map<std::string, std::string> values;
};

struct GossipStats {
  std::uint64_t rounds = 0;
  std::uint64_t datagrams_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t largest_datagram_sent = 0;
  std::uint64_t datagrams_received = 0;
  std::uint64_t malformed_dropped = 0;  // undecodable, misaligned, oversized, bad fields
  std::uint64_t foreign_dropped = 0;    // wrong magic or cluster name
  std::uint64_t refused_dropped = 0;    // from a node refused for its cluster settings
  std::uint64_t deltas_sent = 0;
  std::uint64_t deltas_applied = 0;
  std::uint64_t nodes_refused = 0;
};

// One node's gossip. Lifecycle: construct (installs itself as the transport's receiver),
// call tick() every options.interval, destroy (uninstalls itself). tick() and the
// receiver run on the transport's executor; set_local(), get(), members(), stats() and
// subscribe() may be called from any thread (a mutex guards the state). Event handlers run
// on the executor, inside tick() or a receive, without the mutex held: they may call back.
// Construct and destroy it on the transport's executor (or while that executor is not
// running). Borrows `transport`, `clock` and `random`, which must outlive it.
class Gossiper {
 public:
  using Handler = std::function<void(const GossipEvent&)>;

  Gossiper(GossipOptions options, DatagramTransport& transport, GossipClock& clock,
           GossipRandom& random, std::shared_ptr<spdlog::logger> logger);
  ~Gossiper();
  Gossiper(const Gossiper&) = delete;
  Gossiper& operator=(const Gossiper&) = delete;

  // Sets a key of this node's state under a new version; it reaches the others in the
  // following rounds. Errors: kBadRequest when the key and value cannot fit one datagram,
  // or the key is empty or starts with the reserved "gossip.".
  Status set_local(const std::string& key, std::string value);

  // A member's value (self included); nullopt for unknown members or keys.
  std::optional<std::string> get(const std::string& node_id, const std::string& key) const;

  // Every member, self first, then by node id, with liveness and phi now (values without
  // the reserved gossip.* keys). Nodes still
  // pending (cluster settings not yet received) and refused nodes are not members.
  std::vector<GossipMember> members() const;
  std::optional<GossipMember> member(const std::string& node_id) const;

  // Registers a handler for every later event; returns an id for unsubscribe().
  std::uint64_t subscribe(Handler handler);
  void unsubscribe(std::uint64_t id);

  // One round: updates liveness (events), then sends a digest to one random live peer,
  // to one dead peer with probability dead/(live+1), and to a seed while fewer than
  // minimum_live_peers are live. Never to self.
  void tick();

  // Handles one datagram (the transport calls this). Bad datagrams are dropped and
  // counted in stats(), never thrown.
  void receive(std::string_view from, std::string_view bytes);

  GossipStats stats() const;
  const std::string& node_id() const noexcept { return options_.node_id; }
  const std::string& address() const noexcept { return address_; }
  const GossipOptions& options() const noexcept { return options_; }

 private:
  struct Impl;
  GossipOptions options_;
  DatagramTransport& transport_;
  std::string address_;
  mutable std::mutex mutex_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace alldata::broker
