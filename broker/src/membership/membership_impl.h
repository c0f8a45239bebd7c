// Membership's private state, shared by its source files:
//   membership.cc        the member table and the rules (alive, suspect, dead, removed,
//                        refutation, lifecycle, reaping), events
//   membership_api.cc    the public API
//   membership_probe.cc  datagrams: probes, ping-reqs, acks and nacks, gossip, receiving
//   membership_sync.cc   push-pull (anti-entropy, joining, seeds, reconnecting), readiness
#pragma once

#include "membership/broadcast_queue.h"
#include "membership/codec.h"
#include "membership/membership.h"
#include "membership/suspicion.h"

#include <map>
#include <memory>
#include <set>
#include <optional>
#include <unordered_map>

namespace alldata::broker {

// Lookups by string_view without building a std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

struct Membership::Impl {
  Impl(MembershipOptions o, DatagramTransport& d, StreamTransport& s, TimerQueue& t, Clock& c, Random& r,
       std::shared_ptr<spdlog::logger> l);

  // One member, self included.
  struct Node {
    Member m;
    std::uint64_t record_incarnation = 0;  // incarnation of m.state / m.address (m.incarnation
                                           // is liveness's, which a suspicion may raise)
    std::size_t index = 0;                 // position in `list`
    std::optional<Suspicion> suspicion;
    TimerQueue::Id suspicion_timer = 0;
    bool verifying = false;                // a last probe before a verdict is under way
    std::uint64_t extended_ms = 0;         // last time direct contact postponed the verdict
    std::uint64_t heard_ms = 0;            // last datagram from it (or ack of a probe of it)
    std::uint64_t failed_ms = 0;           // last probe of it by this node that failed
    std::uint64_t told_ms = 0;             // last time it was told it is suspected or dead
    std::uint64_t asked_ms = 0;            // last time its newer record was asked for (for
                                           // this node itself: last time one was sent)
  };

  struct Probe {
    std::string target;
    std::uint64_t started_ms = 0;
    bool verify = false;  // the last probe before a verdict
    bool acked = false;
    std::size_t nacks = 0;
    std::size_t expected_nacks = 0;
    bool tcp_pending = false;  // the TCP ping has not answered or failed yet
    bool waited = false;       // the conclusion already waited for it once
  };

  // A ping sent for another member's ping-req: its ack (or a nack) goes back there.
  struct Forward {
    std::string requester_address;
    std::uint64_t requester_seq = 0;
    bool acked = false;
  };

  struct Seed {
    std::string address;
    bool reached = false;        // a push-pull with it succeeded once
    bool in_flight = false;
    std::uint64_t next_ms = 0;   // next attempt
    std::uint64_t backoff_ms = 1000;
    std::string last_error;
    std::string node_id;         // learned from its answer
  };

  // A forgotten member: final (left, removed: refused) or a reaped dead one (records up to
  // `incarnation` are old news; a newer one is welcome).
  struct Tombstone {
    std::string reason;
    std::uint64_t expires_ms = 0;
    std::uint64_t incarnation = 0;
    bool final = true;
  };

  // ---- membership.cc: the table and the rules
  Node* find(std::string_view id);
  const Node* find(std::string_view id) const;
  Node& self() { return *self_node; }
  const Node& self() const { return *self_node; }
  std::size_t live_count() const;    // members not gone, self included (the N of the formulas)
  void count_members();              // recounts them (each probe period, and on reaping)
  std::size_t retransmit_limit() const;
  std::uint64_t suspicion_min_ms() const;
  AliveMsg self_record() const;
  AliveMsg record_of(const Node& n) const;

  void on_alive(const AliveMsg& a, bool learned_dead = false);
  // The member a suspicion or verdict at `inc` applies to, or nullptr: unknown, removed,
  // already dead or gone, outdated, or this node (which then refutes it).
  Node* accused(const std::string& id, std::uint64_t inc);
  void on_suspect(const std::string& id, std::uint64_t inc, const std::string& from);
  void on_dead(const std::string& id, std::uint64_t inc, const std::string& from);
  void on_removed(const std::string& id, const std::string& by);
  void refute(std::uint64_t accused);
  void suspicion_expired(const std::string& id);
  void declare_dead(Node& n);
  void arm_suspicion_timer(Node& n);
  Node* add(const AliveMsg& a, Liveness liveness);
  void reap(Node& n, const std::string& reason);
  void add_tombstone(const std::string& id, std::string reason, std::uint64_t ttl_ms, std::uint64_t incarnation,
                     bool final);
  void erase_tombstone(const std::string& id);
  void reap_tick();
  std::optional<std::string> refusal_of(std::string_view id) const;
  // Queues an update for dissemination: fully, or, for what a push-pull brought (the
  // anti-entropy already spreads it), for a couple of sends only.
  void gossip(const std::string& id, Message message);
  void emit(MembershipEvent::Kind kind, const std::string& id, std::uint64_t inc);
  void flush_events();
  // Arms a timer whose callback is skipped once this object is gone, and delivers the
  // events the callback raised.
  TimerQueue::Id arm(std::uint64_t when_ms, std::function<void()> fn);

  // ---- membership_probe.cc: datagrams
  void probe_tick();
  void probe(Node& target, bool verify);
  void probe_indirect(std::uint64_t seq);
  void tcp_ping(std::uint64_t seq, const Node& target);
  void probe_done(std::uint64_t seq);
  void gossip_tick();
  void receive(std::string_view from, std::string_view bytes);
  void handle(const Datagram& d, const Message& m);
  void send(const std::string& to, std::vector<Message> messages, bool piggyback = true);
  void tell(Node& n);  // tells a suspect or dead member so, at most once a second
  std::vector<Node*> random_members(std::size_t k, const std::function<bool(const Node&)>& ok);
  std::uint64_t probe_period_ms() const;
  void change_health(int delta);

  // ---- membership_sync.cc: push-pull
  // `backlog`, `joining`: counted in backlog_pulls_in_flight / join_pulls_in_flight.
  void push_pull(const std::string& address, bool join, Seed* seed, bool backlog = false, bool joining = false);
  void backlog_pull();  // each probe period while the broadcast queue is long
  void push_pull_answered(const std::string& address, bool seed, Result<std::string> answer);
  std::string answer_push_pull(std::string_view from, std::string_view bytes);
  PushPullMsg snapshot_message(bool join) const;
  void merge(const PushPullMsg& p);
  void sync_tick();   // periodic push-pull
  void seed_tick();   // unreached seeds
  void reconnect_tick();
  void ready_tick();  // while joining
  void set_ready();   // the view is complete: ready, and normal if it was joining
  bool seed_known(const Seed& s) const;
  std::uint64_t push_pull_interval_ms() const;
  std::string status_line() const;

  MembershipOptions options;
  DatagramTransport& datagrams;
  StreamTransport& streams;
  TimerQueue& timers;
  Clock& clock;
  Random& random;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<int> life = std::make_shared<int>(0);
  std::string address;

  std::unordered_map<std::string, std::unique_ptr<Node>, StringHash, std::equal_to<>> nodes;
  std::vector<Node*> list;  // every node, in no particular order (random picks)
  std::size_t counted_members = 1;
  Node* self_node = nullptr;
  std::map<std::string, Tombstone, std::less<>> tombstones;
  std::set<std::pair<std::uint64_t, std::string>> tombstone_expiry;  // (expires, id): eviction order
  std::map<std::string, std::pair<std::string, std::uint64_t>, std::less<>> refused;  // settings: reason, until

  BroadcastQueue queue;
  std::vector<std::string> probe_order;
  std::size_t probe_index = 0;
  std::uint64_t next_seq = 1;
  std::unordered_map<std::uint64_t, Probe> probes;
  std::unordered_map<std::uint64_t, Forward> forwards;
  std::uint32_t health = 0;

  std::vector<Seed> seeds;
  bool is_seed = false;            // this node's own address is among the seeds
  bool ready = false;
  bool synced_once = false;        // a push-pull succeeded
  bool left = false;
  std::string refused_reason;      // why others refuse this node (empty: they do not)
  std::uint64_t started_ms = 0;
  std::uint64_t last_new_member_ms = 0;
  std::uint64_t last_status_log_ms = 0;
  std::size_t join_pulls_in_flight = 0;
  std::size_t backlog_pulls_in_flight = 0;
  bool merging = false;                // inside merge(): updates come from a push-pull
  std::size_t updates_this_period = 0;  // queued since the last probe period
  std::size_t updates_last_period = 0;
  std::uint64_t backlog_until_ms = 0;   // push-pull every period until then

  std::map<std::uint64_t, Handler> handlers;
  std::uint64_t next_handler = 1;
  std::vector<MembershipEvent> events;
  bool flushing = false;
  MembershipStats stats;
  std::map<std::string, std::uint64_t, std::less<>> log_once;  // rate limit for repeated lines
  bool log_allowed(const std::string& key, std::uint64_t every_ms);
};

}  // namespace alldata::broker
