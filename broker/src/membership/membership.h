// Cluster membership: who is in, who is alive, and what each member publishes of itself.
// SWIM (Das, Gupta, Motivala 2002) with the Lifeguard refinements (Dadgar et al. 2018), as
// HashiCorp's memberlist runs them under Consul and Serf, plus what AllData needs on top:
// a member lifecycle, a small typed state per member, seeds that are retried until reached
// (so groups that formed apart merge), and forgetting members that are gone.
//
//  - Failure detection: one probe per period (round robin over a shuffled list): a ping;
//    without an ack in `probe_timeout`, ping-reqs through `indirect_checks` members (which
//    answer a nack if they hear nothing); without any ack by the end of the period the
//    target is suspect. A suspicion times out (dead) after a timeout that starts long and
//    shortens as independent suspicions of the same member arrive (suspicion.h), unless the
//    suspect refutes it by raising its incarnation. Before declaring a member dead on its
//    own timeout, a node that heard from the suspect meanwhile waits longer (and tells it
//    again), and one that did not itself fail to reach it during the suspicion probes it
//    once more.
//  - Local health (Lifeguard): failed probes without the expected nacks and refutations
//    raise a score that stretches this node's probe period (1 + score) times, so a node
//    that is itself slow or cut off probes, and so accuses, less; timers that fire late
//    because the process did not run are pushed back (timer_queue.h).
//  - Dissemination: every change (alive/suspect/dead/removed) is queued (broadcast_queue.h)
//    and piggybacked on pings and acks and on gossip datagrams sent every `gossip_interval`
//    to `gossip_fanout` random members while anything is queued; a suspect is told of its
//    suspicion directly (the buddy system), so it can refute at once.
//  - Anti-entropy: a periodic full-state push-pull over the stream transport (TCP) with a
//    random member, scaled with log N; while joining, one every period; with unreached seeds
//    (1 s doubling to `seed_retry_max`) and with a random dead member now and then.
//  - Lifecycle: joining -> normal -> leaving -> left by the owner; removed by an operator.
//    A node is ready once its view is complete: a push-pull succeeded, every seed has been
//    reached (or `seed_wait` passed), and no new member appeared for `settle_periods`.
//  - Forgetting: dead, left and removed members are reaped after `reap_after`, leaving
//    tombstones shared by push-pull: left and removed ids stay refused for `tombstone_ttl`;
//    a dead member's old records are ignored for `dead_tombstone_ttl`, and the member
//    itself, running again under a newer incarnation, is welcome back.
//
// Wire form: protocol/alldata.capnp (MembershipDatagram, PushPull); the protocol, states and
// defaults in words: broker/README.md, "Membership", and protocol/README.md.
//
// Lifecycle and executors: construct, call start(), destroy, all on the executor that runs
// the transports' callbacks and `timers` (one thread). Nothing here is thread-safe; the
// broker publishes snapshots for other threads (cluster_view.h). Borrows the transports,
// timers, clock and random, which must outlive it. Event handlers run on that executor
// after the change is made, never in the middle of one: they may call back in.
#pragma once

#include "membership/env.h"
#include "membership/timer_queue.h"
#include "membership/types.h"

#include "alldata/protocol/error.h"

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::broker {

struct MembershipStats {
  std::uint64_t probes = 0;
  std::uint64_t probes_failed = 0;
  std::uint64_t tcp_pings = 0;            // probes that fell back to TCP
  std::uint64_t datagrams_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t largest_datagram = 0;
  std::uint64_t datagrams_received = 0;
  std::uint64_t push_pulls = 0;           // started by this node
  std::uint64_t push_pulls_failed = 0;
  std::uint64_t push_pull_bytes_sent = 0;  // requests sent and answers given
  std::uint64_t suspicions = 0;           // suspicions this node raised
  std::uint64_t deaths_declared = 0;      // death verdicts this node reached on its own
  std::uint64_t refutations = 0;          // times this node refuted a suspicion of itself
  std::uint64_t malformed_dropped = 0;
  std::uint64_t foreign_dropped = 0;      // another protocol or cluster
  std::uint64_t refused_dropped = 0;      // from refused ids
  std::uint64_t pauses = 0;               // this process did not run for a while
  std::uint32_t local_health = 0;         // Lifeguard's score now (0 = healthy)
};

class Membership {
 public:
  using Handler = std::function<void(const MembershipEvent&)>;

  // Throws std::invalid_argument for an empty or over-long node id (a configuration bug).
  Membership(MembershipOptions options, DatagramTransport& datagrams, StreamTransport& streams,
             TimerQueue& timers, Clock& clock, Random& random, std::shared_ptr<spdlog::logger> logger);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Starts probing, gossip and joining through the seeds.
  void start();

  // Publishes a new state of this node (a new incarnation) if it differs from the current
  // one; it reaches every member in a few gossip rounds. Errors: kBadRequest for a state
  // that cannot fit a datagram or says `removed`; kNotAllowed once this node left or was
  // removed.
  Status set_state(const MemberState& state);
  const MemberState& state() const;
  std::uint64_t incarnation() const;

  // Leaves the cluster for good: publishes lifecycle `left`, stops probing, keeps answering
  // and gossiping until the process ends. The node id is refused afterwards.
  void leave();
  // An operator's verdict: `node_id` is removed for good (it may not refute). kBadRequest
  // for this node's own id or an unknown one.
  Status remove(const std::string& node_id);

  // True once the view is complete (see above). A node without seeds is ready at start.
  bool ready() const;
  // One line for operators: "ready", "joining: waiting for seeds 10.0.0.1:7402 (connection
  // refused)", "removed by b0", ...
  std::string status() const;

  // Members this node knows (itself included), reaped ones excepted.
  const Member* member(std::string_view node_id) const;
  std::vector<Member> members() const;  // itself first, then by node id
  std::size_t size() const;              // members, itself included
  // Node ids refused until their tombstone expires.
  bool tombstoned(std::string_view node_id) const;

  std::uint64_t subscribe(Handler handler);
  void unsubscribe(std::uint64_t id);

  MembershipStats stats() const;
  const std::string& node_id() const noexcept;
  const std::string& address() const noexcept;
  const MembershipOptions& options() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace alldata::broker
