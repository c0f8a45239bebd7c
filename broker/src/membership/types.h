// The vocabulary of cluster membership: what a member is (its record, liveness and
// lifecycle), what it publishes of itself (MemberState), the events the protocol raises and
// the settings it runs with. Plain data: no I/O, no threads. The protocol itself is in
// membership.h; the wire form is MembershipDatagram / PushPull in protocol/alldata.capnp.
#pragma once

#include "alldata/protocol/member_state.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::broker {

// What the failure detector says of a member (SWIM), and a member's role
// (protocol/README.md, "Member lifecycle"): the owner moves itself through joining ->
// normal -> leaving -> left; `removed` is an operator's verdict about it. Shared with the
// client (alldata/protocol/member_state.h).
using alldata::Lifecycle;
using alldata::Liveness;

// What a broker publishes of itself. Only the owner changes it, under a new incarnation.
// Member `node_id` may lack events from `since_ms` on: the publishing member holds hints for
// it or knows of copies that were stored nowhere (repair debts). An empty node_id stands
// for every other member.
inline constexpr std::size_t kMaxOwed = 16;

struct Owed {
  std::string node_id;
  std::uint64_t since_ms = 0;

  friend bool operator==(const Owed&, const Owed&) = default;
};

struct MemberState {
  std::string client_address;
  std::string peer_address;
  std::string zone;
  std::string region;
  std::uint32_t partitions = 0;          // cluster setting
  std::uint32_t replication_factor = 0;  // cluster setting
  Lifecycle lifecycle = Lifecycle::kJoining;
  // The broker's completeness watermark. Held: complete below watermark_ms until further
  // notice. Not held: watermark_ms was its bound when published and it advances with time
  // from then on (so a broker that holds nothing back never needs to publish again).
  std::uint64_t watermark_ms = 0;
  bool watermark_held = false;
  std::uint64_t pending_hints = 0;
  std::uint64_t load = 0;
  // A joining broker's pull or a leaving broker's push: partitions still to look at, event
  // bytes copied so far (shown by `alldata cluster`).
  std::uint64_t hand_over_partitions = 0;
  std::uint64_t hand_over_bytes = 0;
  // Bounded (kMaxOwed entries, the oldest first; the agent folds the rest into one
  // entry for every other member).
  std::vector<Owed> owed;

  friend bool operator==(const MemberState&, const MemberState&) = default;
};

// One member as this node knows it.
struct Member {
  std::string node_id;
  std::string address;  // gossip host:port
  std::uint64_t incarnation = 0;
  Liveness liveness = Liveness::kAlive;
  bool removed = false;
  std::string removed_by;
  MemberState state;
  bool self = false;
  // Local monotonic times (ms): when the current incarnation's record arrived, when its
  // watermark (value and held flag) was first seen, and when liveness or lifecycle last
  // changed.
  std::uint64_t state_received_ms = 0;
  std::uint64_t watermark_received_ms = 0;
  std::uint64_t changed_ms = 0;

  Lifecycle lifecycle() const noexcept { return removed ? Lifecycle::kRemoved : state.lifecycle; }
  // Gone for good: left or removed (kept until reaped, never probed).
  bool gone() const noexcept {
    const Lifecycle l = lifecycle();
    return l == Lifecycle::kLeft || l == Lifecycle::kRemoved;
  }
  // Worth talking to: neither dead nor gone.
  bool reachable() const noexcept { return liveness != Liveness::kDead && !gone(); }
};

struct MembershipEvent {
  enum class Kind {
    kJoined,    // a member appeared (first record received)
    kUpdated,   // a member published a new state (same or new incarnation)
    kSuspect,   // a member became suspect
    kDead,      // a member was declared dead (a death verdict)
    kAlive,     // a suspect or dead member refuted it (a new incarnation)
    kLeft,      // a member left
    kRemoved,   // a member was removed by an operator
    kReaped,    // a dead, left or removed member was dropped from the list
    kSelf,      // this node's own lifecycle or readiness changed
  };
  Kind kind;
  std::string node_id;
  std::uint64_t incarnation = 0;
};

std::string_view to_string(MembershipEvent::Kind k) noexcept;

struct MembershipOptions {
  std::string node_id;                  // required, 1 to 255 bytes
  std::string cluster = "alldata";      // datagrams of another cluster are dropped
  std::string advertise_address;        // empty: the datagram transport's local address
  std::vector<std::string> seeds;       // gossip addresses (this node's own is skipped)
  MemberState state;                    // what this node publishes at start
  // The incarnation this node starts with. A restarted node must start above its last
  // one: the broker passes the wall clock in ms. (Refutation repairs a collision.)
  std::uint64_t initial_incarnation = 1;

  // Failure detection (SWIM with Lifeguard).
  std::chrono::milliseconds probe_interval{1000};  // one probe per period
  std::chrono::milliseconds probe_timeout{500};    // direct ack deadline, then ping-req
  std::size_t indirect_checks = 3;                 // ping-req through this many members
  // Suspicion timeout: min = suspicion_mult * max(1, log10(N)) * probe_interval, start at
  // suspicion_max_mult * min and fall towards min as independent suspicions come in.
  double suspicion_mult = 2.0;
  double suspicion_max_mult = 6.0;
  std::size_t suspicion_confirmations = 3;         // independent suspicions for min
  std::size_t max_local_health = 8;                // probe period scales by 1 + score

  // Dissemination.
  std::chrono::milliseconds gossip_interval{200};  // gossip pending updates this often ...
  std::size_t gossip_fanout = 3;                   // ... to this many random members
  std::size_t retransmit_mult = 4;                 // each update sent mult*ceil(log10(N+1)) times
  std::chrono::milliseconds gossip_to_dead{30'000};  // dead members still get gossip this long
  std::size_t max_datagram_bytes = 1400;

  // Anti-entropy and joining (TCP push-pull).
  std::chrono::milliseconds push_pull_interval{30'000};  // scaled up beyond 32 members
  std::chrono::milliseconds push_pull_timeout{10'000};
  // With this many new updates in one period, gossip cannot keep up: a push-pull follows
  // in each of the next 10 periods.
  std::size_t backlog_pull_threshold = 32;
  std::chrono::milliseconds seed_retry_max{30'000};    // unreached seeds: 1 s doubling to this
  std::chrono::milliseconds reconnect_interval{10'000};  // push-pull with a random dead member
  std::chrono::milliseconds seed_wait{10'000};  // a seed that reaches no other seed starts alone
  std::size_t settle_periods = 3;               // a view unchanged this many periods is complete
  bool promote_when_ready = true;               // joining -> normal once the view is complete

  // Forgetting.
  std::chrono::milliseconds reap_after{std::chrono::hours(24)};        // dead, left, removed
  std::chrono::milliseconds tombstone_ttl{std::chrono::hours(24 * 7)};  // left/removed ids refused this long
  // A reaped dead member's old records are ignored this long (every broker reaps it within
  // that time); the member itself, restarted, is welcome at any time.
  std::chrono::milliseconds dead_tombstone_ttl{std::chrono::hours(1)};
  std::size_t max_members = 10'000;  // members and, separately, tombstones

  // A timer firing this much later than due means this process did not run (stopped,
  // starved): pending timers are pushed back instead of judging peers by our own silence.
  std::chrono::milliseconds pause_threshold{2000};

  // Why `theirs` may not join a cluster whose member `ours` is, or nullopt if it may. The
  // default compares partitions and replication factor.
  std::function<std::optional<std::string>(const MemberState& ours, const MemberState& theirs)>
      compatible;
};

// The default MembershipOptions::compatible.
std::optional<std::string> same_cluster_settings(const MemberState& ours, const MemberState& theirs);

}  // namespace alldata::broker
