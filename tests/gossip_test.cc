// Gossip: Scuttlebutt convergence, phi-accrual failure detection, the datagram bound, bad
// and foreign datagrams, the cluster-settings check, the original gossipmonger's
// behaviours, and three gossipers on real UDP sockets. Everything but the last runs on the
// simulated clock, randomness and network, so it is deterministic and never sleeps.
#include "alldata.capnp.h"
#include "alldata/broker/gossip.h"
#include "alldata/broker/gossip_memory.h"
#include "alldata/broker/gossip_udp.h"
#include "alldata/broker/phi_accrual.h"
#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ostream_sink.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace alldata::broker {
namespace {

using Kind = GossipEvent::Kind;

std::shared_ptr<spdlog::logger> null_logger() {
  return std::make_shared<spdlog::logger>("gossip",
                                          std::make_shared<spdlog::sinks::null_sink_mt>());
}

// ---- decoding captured datagrams

struct Parsed {
  enum class Type { kSyn, kAck, kAck2, kBad } type = Type::kBad;
  std::string from;
  struct Entry {
    std::string id;
    std::uint64_t max_version;
    std::string address;
  };
  std::vector<Entry> digests;  // SYN digests or ACK requests
  bool complete = false;
  struct Group {
    std::string id;
    std::vector<std::pair<std::string, std::uint64_t>> deltas;  // key, version
  };
  std::vector<Group> groups;
  std::size_t delta_count() const {
    std::size_t n = 0;
    for (const auto& g : groups) n += g.deltas.size();
    return n;
  }
};

Parsed parse(std::string_view bytes) {
  Parsed p;
  if (bytes.size() % 8 != 0 || bytes.empty()) return p;
  auto words = kj::heapArray<capnp::word>(bytes.size() / 8);
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::FlatArrayMessageReader reader(words.asPtr());
  auto d = reader.getRoot<wire::GossipDatagram>();
  p.from = protocol::view(d.getNodeId());
  auto groups = [&](capnp::List<wire::GossipNodeDeltas>::Reader list) {
    for (auto g : list) {
      Parsed::Group group{std::string(protocol::view(g.getNodeId())), {}};
      for (auto delta : g.getDeltas()) {
        group.deltas.emplace_back(std::string(protocol::view(delta.getKey())),
                                  delta.getVersion());
      }
      p.groups.push_back(std::move(group));
    }
  };
  auto entries = [&](capnp::List<wire::GossipDigest>::Reader list) {
    for (auto e : list) {
      p.digests.push_back({std::string(protocol::view(e.getNodeId())), e.getMaxVersion(),
                           std::string(protocol::view(e.getAddress()))});
    }
  };
  switch (d.which()) {
    case wire::GossipDatagram::SYN:
      p.type = Parsed::Type::kSyn;
      p.complete = d.getSyn().getComplete();
      entries(d.getSyn().getDigests());
      break;
    case wire::GossipDatagram::ACK:
      p.type = Parsed::Type::kAck;
      entries(d.getAck().getRequests());
      groups(d.getAck().getDeltas());
      break;
    case wire::GossipDatagram::ACK2:
      p.type = Parsed::Type::kAck2;
      groups(d.getAck2().getDeltas());
      break;
    default:
      break;
  }
  return p;
}

std::string serialize(capnp::MessageBuilder& message) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// ---- the simulated cluster

struct SimNode {
  std::string address;
  std::unique_ptr<MemoryTransport> transport;
  std::unique_ptr<Gossiper> gossiper;
  std::vector<GossipEvent> events;
  bool stopped = false;
};

class GossipTest : public ::testing::Test {
 protected:
  static constexpr std::uint64_t kInterval = 1000;

  GossipOptions options_for(int i) {
    GossipOptions o;
    o.node_id = "n" + std::to_string(i);
    o.cluster = "test";
    o.seeds = {"addr-0"};
    o.initial_version = clock_.now_ms();
    return o;
  }

  SimNode& add(GossipOptions o, std::shared_ptr<spdlog::logger> logger = null_logger(),
               bool settings = true) {
    auto node = std::make_unique<SimNode>();
    node->address = "addr-" + o.node_id.substr(1);
    node->transport = std::make_unique<MemoryTransport>(network_, node->address);
    start(*node, std::move(o), std::move(logger), settings);
    nodes_.push_back(std::move(node));
    return *nodes_.back();
  }

  void start(SimNode& node, GossipOptions o, std::shared_ptr<spdlog::logger> logger,
             bool settings) {
    const std::string id = o.node_id;
    node.gossiper =
        std::make_unique<Gossiper>(std::move(o), *node.transport, clock_, random_, logger);
    node.gossiper->subscribe([&node](const GossipEvent& e) { node.events.push_back(e); });
    if (settings) {
      ASSERT_TRUE(node.gossiper->set_local(gossip_keys::kPartitions, "16"));
      ASSERT_TRUE(node.gossiper->set_local(gossip_keys::kReplicationFactor, "3"));
    }
    ASSERT_TRUE(node.gossiper->set_local(gossip_keys::kClientAddress, id + ":7400"));
    ASSERT_TRUE(node.gossiper->set_local(gossip_keys::kZone, "zone-" + id));
  }

  void add_nodes(int n) {
    for (int i = 0; i < n; ++i) add(options_for(i));
  }

  // One gossip interval: every running node ticks, the network delivers everything, the
  // clock moves on.
  void round() {
    for (auto& n : nodes_) {
      if (!n->stopped) n->gossiper->tick();
    }
    network_.run();
    clock_.advance(kInterval);
  }

  void stop(SimNode& n) {
    n.stopped = true;
    network_.set_down(n.address, true);
  }

  void resume(SimNode& n) {
    n.stopped = false;
    network_.set_down(n.address, false);
  }

  // Every running node lists exactly the running nodes, all live, each with the values
  // its owner set.
  bool converged() const {
    std::map<std::string, std::map<std::string, std::string>> truth;
    for (const auto& n : nodes_) {
      if (!n->stopped) truth[n->gossiper->node_id()] = n->gossiper->members().front().values;
    }
    for (const auto& n : nodes_) {
      if (n->stopped) continue;
      auto members = n->gossiper->members();
      if (members.size() != truth.size()) return false;
      for (const auto& m : members) {
        auto it = truth.find(m.node_id);
        if (!m.live || it == truth.end() || m.values != it->second) return false;
      }
    }
    return true;
  }

  int rounds_until_converged(int limit) {
    for (int r = 1; r <= limit; ++r) {
      round();
      if (converged()) return r;
    }
    return limit + 1;
  }

  const SimNode* find(const std::string& id) const {
    for (const auto& n : nodes_) {
      if (n->gossiper->node_id() == id) return n.get();
    }
    return nullptr;
  }

  static std::size_t count(const SimNode& n, Kind kind, const std::string& id) {
    std::size_t c = 0;
    for (const auto& e : n.events) c += (e.kind == kind && e.node_id == id) ? 1 : 0;
    return c;
  }

  static bool sees_live(const SimNode& n, const std::string& id, bool live) {
    auto m = n.gossiper->member(id);
    return m && m->live == live;
  }

  ManualGossipClock clock_{1'000'000};
  SeededGossipRandom random_{42};
  MemoryNetwork network_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
};

TEST_F(GossipTest, FiveNodesConvergeWithinFifteenRounds) {
  add_nodes(5);
  const int rounds = rounds_until_converged(15);
  EXPECT_LE(rounds, 15);
  for (const auto& n : nodes_) {
    auto members = n->gossiper->members();
    ASSERT_EQ(members.size(), 5u);
    EXPECT_TRUE(members.front().self);
    EXPECT_EQ(members.front().node_id, n->gossiper->node_id());
    for (const auto& m : members) {
      EXPECT_EQ(m.values.at(gossip_keys::kZone), "zone-" + m.node_id);
      if (!m.self) {
        EXPECT_EQ(count(*n, Kind::kNewPeer, m.node_id), 1u);
        EXPECT_LT(m.phi, 8.0);
      }
    }
  }
  // A later change reaches everyone quickly too.
  ASSERT_TRUE(nodes_[3]->gossiper->set_local(gossip_keys::kLoad, "0.75"));
  EXPECT_LE(rounds_until_converged(10), 10);
  EXPECT_EQ(nodes_[0]->gossiper->get("n3", gossip_keys::kLoad), "0.75");
}

TEST_F(GossipTest, HundredNodesConvergeWithPartialDigests) {
  std::size_t largest = 0;
  network_.set_observer([&](const std::string&, const std::string&, std::string_view bytes) {
    largest = std::max(largest, bytes.size());
  });
  add_nodes(100);
  // 100 states of about 300 bytes fit neither one digest nor one reply: digests are random
  // subsets and each reply carries a few nodes, so this takes more rounds than 5 nodes.
  // (Checked every 5 rounds: the check itself is the expensive part.)
  int rounds = 0;
  while (rounds < 150) {
    for (int i = 0; i < 5; ++i) round();
    rounds += 5;
    if (converged()) break;
  }
  EXPECT_LE(rounds, 100);
  EXPECT_LE(largest, 1400u);
  const GossipStats stats = nodes_[0]->gossiper->stats();
  EXPECT_LE(stats.largest_datagram_sent, 1400u);
}

TEST_F(GossipTest, StoppedNodeIsDeclaredDeadAndLiveAgainAfterItReturns) {
  add_nodes(5);
  ASSERT_LE(rounds_until_converged(15), 15);
  // Let the detectors learn the contact rate.
  for (int i = 0; i < 60; ++i) round();
  ASSERT_TRUE(converged());

  SimNode& victim = *nodes_[4];
  stop(victim);
  const std::uint64_t stopped_at = clock_.now_ms();
  auto all_see = [&](bool live) {
    for (const auto& n : nodes_) {
      if (n.get() != &victim && !sees_live(*n, "n4", live)) return false;
    }
    return true;
  };
  int rounds = 0;
  while (!all_see(false) && rounds < 300) {
    round();
    ++rounds;
  }
  ASSERT_TRUE(all_see(false)) << "not declared dead after " << rounds << " rounds";
  // Exponential phi: dead after about 18.4 mean contact intervals of silence.
  EXPECT_LE(clock_.now_ms() - stopped_at, 90'000u);
  for (const auto& n : nodes_) {
    if (n.get() == &victim) continue;
    EXPECT_EQ(count(*n, Kind::kPeerDead, "n4"), 1u);
    for (const std::string id : {"n0", "n1", "n2", "n3"}) {
      EXPECT_EQ(count(*n, Kind::kPeerDead, id), 0u) << "false positive on " << id;
    }
    EXPECT_GT(n->gossiper->member("n4")->phi, 8.0);
  }

  resume(victim);
  rounds = 0;
  while (!converged() && rounds < 15) {
    round();
    ++rounds;
  }
  EXPECT_TRUE(converged()) << "not live again after " << rounds << " rounds";
  for (const auto& n : nodes_) {
    if (n.get() != &victim) {
      EXPECT_EQ(count(*n, Kind::kPeerLive, "n4"), 1u);
    }
  }
}

TEST_F(GossipTest, RestartedNodeStateSupersedesItsOldState) {
  add_nodes(4);
  ASSERT_TRUE(nodes_[3]->gossiper->set_local(gossip_keys::kState, "running"));
  ASSERT_LE(rounds_until_converged(15), 15);
  SimNode& n3 = *nodes_[3];
  stop(n3);
  for (int i = 0; i < 5; ++i) round();
  // A new process: fresh state, versions starting from the (later) clock.
  n3.gossiper.reset();
  n3.events.clear();
  resume(n3);
  start(n3, options_for(3), null_logger(), true);
  ASSERT_TRUE(n3.gossiper->set_local(gossip_keys::kState, "restarted"));
  ASSERT_LE(rounds_until_converged(15), 15);
  for (const auto& n : nodes_) {
    EXPECT_EQ(n->gossiper->get("n3", gossip_keys::kState), "restarted");
  }
  // The new process learns everyone again.
  EXPECT_EQ(n3.gossiper->members().size(), 4u);
}

TEST_F(GossipTest, DatagramsStayWithinBoundWithManyKeys) {
  std::size_t largest = 0;
  std::size_t datagrams = 0;
  network_.set_observer([&](const std::string&, const std::string&, std::string_view bytes) {
    largest = std::max(largest, bytes.size());
    ++datagrams;
    EXPECT_LE(bytes.size(), 1400u);
  });
  add_nodes(5);
  for (int i = 0; i < 500; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "key.%03d", i);
    ASSERT_TRUE(nodes_[i % 5]->gossiper->set_local(key, std::string(100, 'a' + i % 26)));
  }
  const int rounds = rounds_until_converged(300);
  EXPECT_LE(rounds, 120);
  EXPECT_LE(largest, 1400u);
  EXPECT_GT(largest, 1200u) << "deltas should fill datagrams";
  for (const auto& n : nodes_) {
    EXPECT_LE(n->gossiper->stats().largest_datagram_sent, 1400u);
    EXPECT_EQ(n->gossiper->get("n2", "key.497"), std::string(100, 'a' + 497 % 26));
  }
  // A value that can never fit one datagram is refused up front.
  auto too_big = nodes_[0]->gossiper->set_local("blob", std::string(1400, 'x'));
  ASSERT_FALSE(too_big);
  EXPECT_EQ(too_big.error().code, ErrorCode::kBadRequest);
}

TEST_F(GossipTest, SmallerBoundIsRespectedAndStillConverges) {
  std::size_t largest = 0;
  network_.set_observer([&](const std::string&, const std::string&, std::string_view bytes) {
    largest = std::max(largest, bytes.size());
  });
  for (int i = 0; i < 3; ++i) {
    auto o = options_for(i);
    o.max_datagram_bytes = 512;
    add(o);
  }
  for (int i = 0; i < 60; ++i) {
    char key[16];
    std::snprintf(key, sizeof key, "k%d", i);
    ASSERT_TRUE(nodes_[0]->gossiper->set_local(key, std::string(50, 'v')));
  }
  EXPECT_LE(rounds_until_converged(200), 200);
  EXPECT_LE(largest, 512u);
}

TEST_F(GossipTest, GarbageAndForeignDatagramsAreDroppedAndCounted) {
  add_nodes(3);
  ASSERT_LE(rounds_until_converged(15), 15);
  Gossiper& g = *nodes_[0]->gossiper;
  const GossipStats before = g.stats();

  // Capture real datagrams to mangle.
  std::vector<std::string> real;
  network_.set_observer([&](const std::string&, const std::string&, std::string_view bytes) {
    real.emplace_back(bytes);
  });
  round();
  network_.set_observer({});
  ASSERT_FALSE(real.empty());

  std::size_t malformed = 0;
  network_.inject("evil", "addr-0", "");
  network_.inject("evil", "addr-0", "1234567");
  network_.inject("evil", "addr-0", std::string(70'000, '\0'));
  network_.inject("evil", "addr-0", real[0].substr(0, real[0].size() / 2 & ~std::size_t{7}));
  malformed += 4;
  SeededGossipRandom noise(7);
  for (int i = 0; i < 200; ++i) {
    std::string junk(8 * (1 + noise.below(40)), '\0');
    for (auto& c : junk) c = static_cast<char>(noise.below(256));
    network_.inject("evil", "addr-0", junk);
  }
  // Foreign: another cluster's name, and a wrong magic.
  std::size_t foreign = 0;
  {
    capnp::MallocMessageBuilder m;
    auto d = m.initRoot<wire::GossipDatagram>();
    d.setMagic(wire::GOSSIP_MAGIC);
    d.setCluster("other-cluster");
    d.setNodeId("intruder");
    d.setAddress("addr-x");
    d.initSyn();
    network_.inject("addr-x", "addr-0", serialize(m));
    d.setCluster("test");
    d.setMagic(0xdeadbeef);
    network_.inject("addr-x", "addr-0", serialize(m));
    foreign += 2;
  }
  network_.run();
  const GossipStats after = g.stats();
  EXPECT_EQ(after.malformed_dropped + after.foreign_dropped -
                (before.malformed_dropped + before.foreign_dropped),
            malformed + foreign + 200);
  EXPECT_GE(after.malformed_dropped - before.malformed_dropped, malformed);
  EXPECT_GE(after.foreign_dropped - before.foreign_dropped, foreign);
  EXPECT_FALSE(g.member("intruder"));

  // The cluster still works.
  ASSERT_TRUE(nodes_[1]->gossiper->set_local(gossip_keys::kLoad, "after-garbage"));
  for (int i = 0; i < 30 && g.get("n1", gossip_keys::kLoad) != "after-garbage"; ++i) round();
  EXPECT_EQ(g.get("n1", gossip_keys::kLoad), "after-garbage");

  // Bit-flipped real datagrams may decode to anything (gossip is not authenticated: UDP's
  // checksum is what keeps real corruption out); they must never crash.
  for (int i = 0; i < 2000; ++i) {
    std::string bytes = real[i % real.size()];
    for (int f = 0; f < 3; ++f) bytes[noise.below(bytes.size())] ^= 1 << noise.below(8);
    network_.inject("evil", "addr-" + std::to_string(i % 3), bytes);
  }
  network_.run();
  for (int i = 0; i < 5; ++i) round();
  EXPECT_GT(g.stats().malformed_dropped, after.malformed_dropped);
}

TEST_F(GossipTest, MismatchedClusterSettingsAreRefusedWithOneLogLine) {
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto logger = std::make_shared<spdlog::logger>("gossip", sink);
  add(options_for(0), logger);
  add(options_for(1));
  add(options_for(2));
  SimNode& odd = add(options_for(3), null_logger(), false);
  ASSERT_TRUE(odd.gossiper->set_local(gossip_keys::kPartitions, "32"));
  ASSERT_TRUE(odd.gossiper->set_local(gossip_keys::kReplicationFactor, "3"));
  odd.stopped = true;  // excluded from converged(): it is not a member anywhere
  for (int i = 0; i < 150; ++i) {  // longer than the refusal duration (60 s)
    for (auto& n : nodes_) n->gossiper->tick();
    network_.run();
    clock_.advance(kInterval);
  }
  EXPECT_TRUE(converged());
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(nodes_[i]->gossiper->member("n3")) << "n" << i;
    EXPECT_EQ(count(*nodes_[i], Kind::kNewPeer, "n3"), 0u);
  }
  // The odd node refuses the others just the same.
  EXPECT_EQ(odd.gossiper->members().size(), 1u);
  EXPECT_GT(nodes_[0]->gossiper->stats().refused_dropped + odd.gossiper->stats().refused_dropped,
            0u);

  const std::string text = log.str();
  std::size_t lines = 0;
  for (std::size_t p = text.find("refusing node n3"); p != std::string::npos;
       p = text.find("refusing node n3", p + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << text;
  EXPECT_NE(text.find("cluster.partitions is '32' but this cluster uses '16'"),
            std::string::npos)
      << text;
}

// ---- the original gossipmonger's behaviours

TEST_F(GossipTest, DigestListsSelfFirstAndEveryKnownNodeWithMaxVersion) {
  add_nodes(3);
  ASSERT_LE(rounds_until_converged(15), 15);
  std::map<std::string, std::uint64_t> known;
  for (const auto& m : nodes_[0]->gossiper->members()) known[m.node_id] = m.max_version;
  std::vector<Parsed> syns;
  network_.set_observer([&](const std::string& from, const std::string&, std::string_view b) {
    Parsed p = parse(b);
    if (from == "addr-0" && p.type == Parsed::Type::kSyn) syns.push_back(p);
  });
  round();
  ASSERT_EQ(syns.size(), 1u);
  const Parsed& syn = syns[0];
  EXPECT_TRUE(syn.complete);
  ASSERT_EQ(syn.digests.size(), 3u);
  EXPECT_EQ(syn.digests[0].id, "n0");
  for (const auto& e : syn.digests) {
    ASSERT_EQ(known.count(e.id), 1u) << e.id;
    if (e.id == "n0") {
      EXPECT_EQ(e.max_version, known[e.id] + 1);  // the round's heartbeat
    } else {
      EXPECT_EQ(e.max_version, known[e.id]);
    }
    EXPECT_EQ(e.address, "addr-" + e.id.substr(1));
  }
}

TEST_F(GossipTest, RoundTargetsOneLivePeerAndNeverSelf) {
  add_nodes(5);
  ASSERT_LE(rounds_until_converged(15), 15);
  std::map<std::string, int> syn_targets;
  network_.set_observer([&](const std::string& from, const std::string& to, std::string_view b) {
    if (from == "addr-0" && parse(b).type == Parsed::Type::kSyn) ++syn_targets[to];
  });
  for (int i = 0; i < 200; ++i) {
    nodes_[0]->gossiper->tick();
    network_.run();
    clock_.advance(10);  // no one goes dead meanwhile
  }
  int total = 0;
  for (const auto& [to, n] : syn_targets) {
    EXPECT_NE(to, "addr-0");
    total += n;
  }
  EXPECT_EQ(total, 200);                // exactly one SYN per round: no dead, no seed
  EXPECT_EQ(syn_targets.size(), 4u);    // random over every live peer
  for (const auto& [to, n] : syn_targets) EXPECT_GT(n, 20) << to;
}

TEST_F(GossipTest, RoundTargetsSeedWhenTooFewLiveButNeverSelf) {
  // A lone seed gossips with nobody: it is its own only seed.
  auto& lone = add(options_for(0));
  lone.gossiper->tick();
  EXPECT_EQ(lone.gossiper->stats().datagrams_sent, 0u);
  // A node with no live peer contacts a seed every round.
  auto o = options_for(1);
  o.seeds = {"addr-0", "addr-1"};
  auto& fresh = add(o);
  std::vector<std::string> targets;
  network_.set_observer([&](const std::string& from, const std::string& to, std::string_view b) {
    if (from == "addr-1" && parse(b).type == Parsed::Type::kSyn) targets.push_back(to);
  });
  fresh.gossiper->tick();
  ASSERT_EQ(targets, std::vector<std::string>{"addr-0"});
  network_.run();
  EXPECT_TRUE(lone.gossiper->member("n1"));
  EXPECT_TRUE(fresh.gossiper->member("n0"));
}

TEST_F(GossipTest, RoundTargetsDeadPeerWithProbabilityDeadOverLivePlusOne) {
  add_nodes(5);
  ASSERT_LE(rounds_until_converged(15), 15);
  for (int i = 0; i < 30; ++i) round();
  stop(*nodes_[4]);
  int rounds = 0;
  while (!sees_live(*nodes_[0], "n4", false) && rounds++ < 300) round();
  ASSERT_TRUE(sees_live(*nodes_[0], "n4", false));
  // 3 live, 1 dead: the dead one gets a SYN with probability 1/4 per round.
  int to_dead = 0;
  network_.set_observer([&](const std::string& from, const std::string& to, std::string_view b) {
    if (from == "addr-0" && to == "addr-4" && parse(b).type == Parsed::Type::kSyn) ++to_dead;
  });
  for (int i = 0; i < 400; ++i) round();
  EXPECT_GT(to_dead, 60);   // expected 100, sd about 8.7
  EXPECT_LT(to_dead, 140);
}

TEST_F(GossipTest, DeltasMostOutdatedNodeFirstOldestVersionsFirstAndBounded) {
  // n0 learns n1 (3 keys of its own besides the four every node sets) and n2 (8 keys)
  // while n3 is away; then n3's first SYN to n0 shows how n0 orders its deltas.
  auto o0 = options_for(0);
  o0.max_deltas_per_datagram = 5;
  add(o0);
  add(options_for(1));
  add(options_for(2));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(nodes_[1]->gossiper->set_local("a" + std::to_string(i), "x"));
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(nodes_[2]->gossiper->set_local("b" + std::to_string(i), "y"));
  ASSERT_LE(rounds_until_converged(40), 40);
  auto o3 = options_for(3);
  o3.seeds = {"addr-0"};
  SimNode& late = add(o3);
  std::vector<Parsed> acks;
  network_.set_observer([&](const std::string& from, const std::string& to, std::string_view b) {
    Parsed p = parse(b);
    if (from == "addr-0" && to == "addr-3" && p.type == Parsed::Type::kAck) acks.push_back(p);
  });
  late.gossiper->tick();
  network_.run();
  ASSERT_EQ(acks.size(), 1u);
  const Parsed& ack = acks[0];
  // n0 requests n3's state, which it lacks entirely.
  ASSERT_EQ(ack.digests.size(), 1u);
  EXPECT_EQ(ack.digests[0].id, "n3");
  EXPECT_EQ(ack.digests[0].max_version, 0u);
  // At most 5 deltas, all of the most outdated node (n2: 12 keys), oldest first.
  EXPECT_EQ(ack.delta_count(), 5u);
  ASSERT_EQ(ack.groups.size(), 1u);
  EXPECT_EQ(ack.groups[0].id, "n2");
  const auto& d = ack.groups[0].deltas;
  for (std::size_t i = 1; i < d.size(); ++i) EXPECT_LT(d[i - 1].second, d[i].second);
  EXPECT_EQ(d[0].first, gossip_keys::kPartitions);  // the first key n2 ever set
  // Without a count bound, whole groups in order of outdatedness: n2, n1, n0.
  acks.clear();
  nodes_[0]->gossiper.reset();
  auto o0b = options_for(0);
  start(*nodes_[0], o0b, null_logger(), true);
  for (int i = 0; i < 40; ++i) {
    for (int j = 0; j < 3; ++j) nodes_[j]->gossiper->tick();
    network_.run();
    clock_.advance(kInterval);
  }
  ASSERT_EQ(nodes_[0]->gossiper->members().size(), 3u);  // n3 is not ticking: unknown
  SimNode& later = add([&] {
    auto o = options_for(4);
    o.seeds = {"addr-0"};
    return o;
  }());
  network_.set_observer([&](const std::string& from, const std::string& to, std::string_view b) {
    Parsed p = parse(b);
    if (from == "addr-0" && to == "addr-4" && p.type == Parsed::Type::kAck) acks.push_back(p);
  });
  later.gossiper->tick();
  network_.run();
  ASSERT_EQ(acks.size(), 1u);
  std::vector<std::string> order;
  for (const auto& g : acks[0].groups) order.push_back(g.id);
  ASSERT_GE(order.size(), 2u);
  EXPECT_EQ(order[0], "n2");
  EXPECT_EQ(order[1], "n1");
}

TEST_F(GossipTest, UnknownPeerLearnedThroughAnotherIsAdded) {
  // A chain: n1 seeds n0, n2 seeds only n1; n0 never hears from n2 directly at first.
  add(options_for(0));
  auto o1 = options_for(1);
  o1.seeds = {"addr-0"};
  add(o1);
  auto o2 = options_for(2);
  o2.seeds = {"addr-1"};
  add(o2);
  ASSERT_LE(rounds_until_converged(15), 15);
  EXPECT_EQ(count(*nodes_[0], Kind::kNewPeer, "n2"), 1u);
  EXPECT_EQ(nodes_[0]->gossiper->get("n2", gossip_keys::kZone), "zone-n2");
}

TEST_F(GossipTest, UpdateEventsReportChangedKeysOnce) {
  add_nodes(3);
  ASSERT_LE(rounds_until_converged(15), 15);
  for (auto& n : nodes_) n->events.clear();
  ASSERT_TRUE(nodes_[1]->gossiper->set_local(gossip_keys::kWatermark, "1000"));
  ASSERT_LE(rounds_until_converged(10), 10);
  for (int i = 0; i < 5; ++i) round();
  for (int i : {0, 2}) {
    ASSERT_EQ(nodes_[i]->events.size(), 1u);
    const GossipEvent& e = nodes_[i]->events[0];
    EXPECT_EQ(e.kind, Kind::kUpdate);
    EXPECT_EQ(e.node_id, "n1");
    EXPECT_EQ(e.key, gossip_keys::kWatermark);
    EXPECT_EQ(e.value, "1000");
  }
  // The same value again is a new version but no change: no event.
  ASSERT_TRUE(nodes_[1]->gossiper->set_local(gossip_keys::kWatermark, "1000"));
  for (int i = 0; i < 10; ++i) round();
  EXPECT_EQ(nodes_[0]->events.size(), 1u);
  // The owner gets no events about itself.
  EXPECT_TRUE(nodes_[1]->events.empty());
}

TEST_F(GossipTest, StaleDeltasAreIgnored) {
  add_nodes(2);
  ASSERT_LE(rounds_until_converged(15), 15);
  const auto before = nodes_[0]->gossiper->member("n1");
  ASSERT_TRUE(before);
  capnp::MallocMessageBuilder m;
  auto d = m.initRoot<wire::GossipDatagram>();
  d.setMagic(wire::GOSSIP_MAGIC);
  d.setCluster("test");
  d.setNodeId("n1");
  d.setAddress("addr-1");
  auto groups = d.initAck2().initDeltas(1);
  groups[0].setNodeId("n1");
  groups[0].setAddress("addr-1");
  auto deltas = groups[0].initDeltas(1);
  deltas[0].setKey(gossip_keys::kZone);
  deltas[0].setValue(protocol::data("stale-zone"));
  deltas[0].setVersion(before->max_version);  // not above the max seen
  network_.inject("addr-1", "addr-0", serialize(m));
  network_.run();
  EXPECT_EQ(nodes_[0]->gossiper->get("n1", gossip_keys::kZone), "zone-n1");
  deltas[0].setVersion(before->max_version + 1);
  network_.inject("addr-1", "addr-0", serialize(m));
  network_.run();
  EXPECT_EQ(nodes_[0]->gossiper->get("n1", gossip_keys::kZone), "stale-zone");
}

// ---- phi accrual

class PhiAccrualTest : public ::testing::Test {
 protected:
  static PhiAccrualDetector regular(PhiAccrualOptions o, std::uint64_t interval, int beats,
                                    std::uint64_t* last) {
    PhiAccrualDetector d(o, 0);
    std::uint64_t t = 0;
    for (int i = 0; i < beats; ++i) d.heartbeat(t += interval);
    *last = t;
    return d;
  }
};

TEST_F(PhiAccrualTest, GrowsWithSilence) {
  for (auto model : {PhiAccrualOptions::Model::kExponential, PhiAccrualOptions::Model::kNormal}) {
    PhiAccrualOptions o;
    o.model = model;
    std::uint64_t last = 0;
    auto d = regular(o, 1000, 20, &last);
    EXPECT_EQ(d.phi(last), 0.0);
    double previous = 0.0;
    for (std::uint64_t silence : {500, 1000, 2000, 3000, 5000, 10000}) {
      const double phi = d.phi(last + silence);
      EXPECT_GT(phi, previous) << silence;
      previous = phi;
    }
    EXPECT_LE(d.phi(last + 100'000'000), PhiAccrualDetector::kMaxPhi);
    EXPECT_TRUE(std::isfinite(d.phi(last + 100'000'000)));
    d.heartbeat(last + 10'000);
    EXPECT_EQ(d.phi(last + 10'000), 0.0);
  }
}

TEST_F(PhiAccrualTest, ExponentialCrossesThresholdAfterMeanTimesEightLnTen) {
  PhiAccrualOptions o;  // defaults: exponential, threshold 8
  std::uint64_t last = 0;
  auto d = regular(o, 1000, 50, &last);
  EXPECT_NEAR(d.mean_interval_ms(), 1000.0, 1e-9);
  const double crossing = 8 * std::log(10.0) * 1000.0;  // 18420 ms
  EXPECT_FALSE(d.is_dead(last + static_cast<std::uint64_t>(crossing * 0.98)));
  EXPECT_TRUE(d.is_dead(last + static_cast<std::uint64_t>(crossing * 1.02)));
  // phi 1 after mean * ln 10: P(silence that long) = 10%.
  EXPECT_NEAR(d.phi(last + 2303), 1.0, 0.01);
}

TEST_F(PhiAccrualTest, NormalCrossingMatchesTheDistributionWithMinStdDev) {
  PhiAccrualOptions o;
  o.model = PhiAccrualOptions::Model::kNormal;
  o.min_std_dev_ms = 500;
  PhiAccrualDetector d(o, 0);
  std::uint64_t t = 0;
  for (int i = 0; i < 99; ++i) d.heartbeat(t += (i % 2 ? 900 : 1100));
  EXPECT_NEAR(d.mean_interval_ms(), 1000.0, 5.0);
  EXPECT_LT(d.std_dev_ms(), 500.0);  // so the floor applies
  // At the mean, half of the intervals are longer: phi = -log10(0.5).
  EXPECT_NEAR(d.phi(t + 1000), 0.301, 0.01);
  // P(X > mean + 5.612 sd) = 1e-8 for a normal X: the threshold-8 crossing.
  const double crossing = 1000.0 + 5.612 * 500.0;
  EXPECT_FALSE(d.is_dead(t + static_cast<std::uint64_t>(crossing - 100)));
  EXPECT_TRUE(d.is_dead(t + static_cast<std::uint64_t>(crossing + 100)));
}

TEST_F(PhiAccrualTest, AcceptablePauseDelaysTheVerdict) {
  PhiAccrualOptions o;
  o.acceptable_pause_ms = 2000;
  std::uint64_t last = 0;
  auto d = regular(o, 1000, 50, &last);
  const double crossing = 8 * std::log(10.0) * 3000.0;
  EXPECT_FALSE(d.is_dead(last + static_cast<std::uint64_t>(crossing * 0.98)));
  EXPECT_TRUE(d.is_dead(last + static_cast<std::uint64_t>(crossing * 1.02)));
}

TEST_F(PhiAccrualTest, WindowForgetsOldIntervals) {
  PhiAccrualOptions o;
  o.max_samples = 10;
  PhiAccrualDetector d(o, 0);
  std::uint64_t t = 0;
  for (int i = 0; i < 10; ++i) d.heartbeat(t += 100);
  EXPECT_NEAR(d.mean_interval_ms(), 100.0, 1e-9);
  for (int i = 0; i < 10; ++i) d.heartbeat(t += 5000);
  EXPECT_EQ(d.samples(), 10u);
  EXPECT_NEAR(d.mean_interval_ms(), 5000.0, 1e-9);
  // Contacts in the same millisecond and clocks going back are not intervals.
  d.heartbeat(t);
  d.heartbeat(t - 10);
  EXPECT_NEAR(d.mean_interval_ms(), 5000.0, 1e-9);
}

// ---- real UDP

TEST_F(GossipTest, ThreeGossipersOnUdpConverge) {
  boost::asio::io_context io;
  SteadyGossipClock clock;
  SeededGossipRandom random(99);
  std::vector<std::unique_ptr<UdpGossipTransport>> transports;
  std::vector<std::unique_ptr<Gossiper>> gossipers;
  std::vector<std::unique_ptr<GossipTicker>> tickers;
  for (int i = 0; i < 3; ++i) {
    auto t = UdpGossipTransport::open(io.get_executor(), "127.0.0.1:0", null_logger());
    ASSERT_TRUE(t) << t.error().to_string();
    EXPECT_NE((*t)->port(), 0);
    transports.push_back(std::move(*t));
  }
  for (int i = 0; i < 3; ++i) {
    GossipOptions o;
    o.node_id = "udp" + std::to_string(i);
    o.cluster = "udp-test";
    o.seeds = {transports[0]->local_address()};
    o.interval = std::chrono::milliseconds(50);
    gossipers.push_back(
        std::make_unique<Gossiper>(o, *transports[i], clock, random, null_logger()));
    ASSERT_TRUE(gossipers.back()->set_local(gossip_keys::kPartitions, "16"));
    ASSERT_TRUE(gossipers.back()->set_local(gossip_keys::kZone, "z" + std::to_string(i)));
    tickers.push_back(std::make_unique<GossipTicker>(io.get_executor(), *gossipers.back(),
                                                     o.interval));
    tickers.back()->start();
  }
  auto done = [&] {
    for (const auto& g : gossipers) {
      auto members = g->members();
      if (members.size() != 3) return false;
      for (const auto& m : members) {
        if (!m.live || m.values.count(gossip_keys::kZone) == 0) return false;
      }
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.run_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(done());
  EXPECT_EQ(gossipers[2]->get("udp1", gossip_keys::kZone), "z1");
  // Garbage on the real socket is dropped and counted.
  {
    boost::asio::ip::udp::socket raw(io, boost::asio::ip::udp::endpoint(
                                             boost::asio::ip::make_address("127.0.0.1"), 0));
    raw.send_to(boost::asio::buffer(std::string(16, '\x7f')),
                boost::asio::ip::udp::endpoint(boost::asio::ip::make_address("127.0.0.1"),
                                               transports[1]->port()));
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (gossipers[1]->stats().malformed_dropped + gossipers[1]->stats().foreign_dropped == 0 &&
           std::chrono::steady_clock::now() < until) {
      io.run_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(gossipers[1]->stats().malformed_dropped + gossipers[1]->stats().foreign_dropped,
              1u);
  }
  for (auto& t : tickers) t->stop();
  tickers.clear();
  gossipers.clear();
  transports.clear();
  io.run_for(std::chrono::milliseconds(10));
}

TEST_F(GossipTest, UdpTransportRejectsBadAddresses) {
  boost::asio::io_context io;
  auto bad = UdpGossipTransport::open(io.get_executor(), "no-port", null_logger());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kBadRequest);
  auto v6 = UdpGossipTransport::open(io.get_executor(), "[::1]:0", null_logger());
  if (v6) {
    EXPECT_EQ((*v6)->local_address().rfind("[::1]:", 0), 0u);
  }
}

}  // namespace
}  // namespace alldata::broker
