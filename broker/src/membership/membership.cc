// The member table and the rules that change it: records (alive) by incarnation, the SWIM
// precedence of suspect and dead, refutation, removal, reaping and tombstones; the event
// queue. The public API is in membership_api.cc, datagrams in membership_probe.cc,
// push-pull in membership_sync.cc.
#include "membership/membership_impl.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace alldata::broker {

std::string_view to_string(MembershipEvent::Kind k) noexcept {
  using K = MembershipEvent::Kind;
  switch (k) {
    case K::kJoined: return "joined";
    case K::kUpdated: return "updated";
    case K::kSuspect: return "suspect";
    case K::kDead: return "dead";
    case K::kAlive: return "alive";
    case K::kLeft: return "left";
    case K::kRemoved: return "removed";
    case K::kReaped: return "reaped";
    case K::kSelf: return "self";
  }
  return "?";
}

std::optional<std::string> same_cluster_settings(const MemberState& ours, const MemberState& theirs) {
  if (ours.partitions != theirs.partitions) {
    return "its partitions are " + std::to_string(theirs.partitions) + " but this cluster uses " +
           std::to_string(ours.partitions);
  }
  if (ours.replication_factor != theirs.replication_factor) {
    return "its replication factor is " + std::to_string(theirs.replication_factor) +
           " but this cluster uses " + std::to_string(ours.replication_factor);
  }
  return std::nullopt;
}

// ---- the table -------------------------------------------------------------------------

using Node = Membership::Impl::Node;
using Kind = MembershipEvent::Kind;

Membership::Impl::Impl(MembershipOptions o, DatagramTransport& d, StreamTransport& s, TimerQueue& t,
                       Clock& c, Random& r, std::shared_ptr<spdlog::logger> l)
    : options(std::move(o)), datagrams(d), streams(s), timers(t), clock(c), random(r), log(std::move(l)) {
  if (!options.compatible) options.compatible = same_cluster_settings;
  address = options.advertise_address.empty() ? datagrams.local_address() : options.advertise_address;
  auto self_ptr = std::make_unique<Node>();
  self_ptr->m.node_id = options.node_id;
  self_ptr->m.address = address;
  self_ptr->m.incarnation = std::max<std::uint64_t>(1, options.initial_incarnation);
  self_ptr->record_incarnation = self_ptr->m.incarnation;
  self_ptr->m.state = options.state;
  self_ptr->m.self = true;
  self_node = self_ptr.get();
  list.push_back(self_node);
  nodes.emplace(options.node_id, std::move(self_ptr));
  for (const auto& s : options.seeds) {
    if (s == address) {
      is_seed = true;
    } else if (std::none_of(seeds.begin(), seeds.end(), [&](const Seed& x) { return x.address == s; })) {
      seeds.push_back(Seed{s});
    }
  }
}

Node* Membership::Impl::find(std::string_view id) {
  auto it = nodes.find(id);
  return it == nodes.end() ? nullptr : it->second.get();
}

const Node* Membership::Impl::find(std::string_view id) const {
  auto it = nodes.find(id);
  return it == nodes.end() ? nullptr : it->second.get();
}

std::size_t Membership::Impl::live_count() const { return std::max<std::size_t>(counted_members, 1); }

void Membership::Impl::count_members() {
  std::size_t n = 0;
  for (const Node* x : list) n += x->m.gone() ? 0 : 1;
  counted_members = n;
}

std::size_t Membership::Impl::retransmit_limit() const {
  const double scale = std::ceil(std::log10(static_cast<double>(live_count()) + 1.0));
  return std::max<std::size_t>(1, options.retransmit_mult * static_cast<std::size_t>(scale));
}

std::uint64_t Membership::Impl::suspicion_min_ms() const {
  const double scale = std::max(1.0, std::log10(static_cast<double>(live_count())));
  return static_cast<std::uint64_t>(options.suspicion_mult * scale *
                                    static_cast<double>(options.probe_interval.count()));
}

AliveMsg Membership::Impl::record_of(const Node& n) const {
  const std::uint64_t now = clock.now_ms();
  const std::uint64_t age = now > n.m.watermark_received_ms ? now - n.m.watermark_received_ms : 0;
  return AliveMsg{n.m.node_id, n.m.address, n.record_incarnation, n.m.state, age};
}

AliveMsg Membership::Impl::self_record() const { return record_of(self()); }

void Membership::Impl::gossip(const std::string& id, Message message) {
  const std::size_t limit = retransmit_limit();
  const bool partial = merging && id != options.node_id;  // a refutation always goes out in full
  const auto sends = static_cast<std::uint32_t>(partial && limit > 2 ? limit - 2 : 0);
  queue.push(id, std::move(message), sends);
  ++updates_this_period;
}

void Membership::Impl::emit(Kind kind, const std::string& id, std::uint64_t inc) {
  events.push_back(MembershipEvent{kind, id, inc});
}

void Membership::Impl::flush_events() {
  if (flushing) return;
  flushing = true;
  while (!events.empty()) {
    std::vector<MembershipEvent> batch;
    batch.swap(events);
    // Handlers may subscribe, unsubscribe or change state: iterate over a copy.
    std::vector<Handler> hs;
    for (const auto& [id, h] : handlers) hs.push_back(h);
    for (const auto& e : batch) {
      for (const auto& h : hs) h(e);
    }
  }
  flushing = false;
}

TimerQueue::Id Membership::Impl::arm(std::uint64_t when_ms, std::function<void()> fn) {
  return timers.at(when_ms, [alive = std::weak_ptr<int>(life), this, fn = std::move(fn)] {
    if (alive.expired()) return;
    fn();
    flush_events();
  });
}

bool Membership::Impl::log_allowed(const std::string& key, std::uint64_t every_ms) {
  const std::uint64_t now = clock.now_ms();
  if (log_once.size() > 4096) log_once.clear();
  auto [it, inserted] = log_once.try_emplace(key, now);
  if (!inserted && now - it->second < every_ms) return false;
  it->second = now;
  return true;
}

std::optional<std::string> Membership::Impl::refusal_of(std::string_view id) const {
  auto gone = [&](const std::string& why) {
    return "node id " + std::string(id) + " may not rejoin (" + why + "); give the broker a new node id";
  };
  if (auto it = tombstones.find(id); it != tombstones.end() && it->second.final) return gone(it->second.reason);
  if (const Node* n = find(id); n != nullptr && n->m.gone()) {
    return gone(n->m.removed ? "removed by " + n->m.removed_by : std::string("left"));
  }
  if (auto it = refused.find(id); it != refused.end()) return it->second.first;
  return std::nullopt;
}

Node* Membership::Impl::add(const AliveMsg& a, Liveness liveness) {
  if (nodes.size() >= options.max_members) {
    if (log_allowed("full", 60'000)) {
      log->error("membership: {} members already, the most allowed (max-members); ignoring new member {}",
                 nodes.size(), a.node_id);
    }
    return nullptr;
  }
  const std::uint64_t now = clock.now_ms();
  auto node = std::make_unique<Node>();
  node->m.node_id = a.node_id;
  node->m.address = a.address;
  node->m.incarnation = a.incarnation;
  node->record_incarnation = a.incarnation;
  node->m.state = a.state;
  node->m.liveness = liveness;
  node->m.state_received_ms = now;
  node->m.watermark_received_ms = now - std::min(now, a.watermark_age_ms);
  node->m.changed_ms = now;
  node->index = list.size();
  Node* n = node.get();
  list.push_back(n);
  nodes.emplace(a.node_id, std::move(node));
  // A random place in the probe order, so a newcomer is probed within one pass.
  const std::size_t at = random.below(probe_order.size() + 1);
  probe_order.insert(probe_order.begin() + static_cast<std::ptrdiff_t>(at), a.node_id);
  if (at < probe_index) ++probe_index;
  last_new_member_ms = now;
  if (!n->m.gone()) ++counted_members;
  log->info("membership: {} at {} is a member ({}, {}, incarnation {})", a.node_id, a.address,
            to_string(liveness), to_string(a.state.lifecycle), a.incarnation);
  emit(Kind::kJoined, a.node_id, a.incarnation);
  return n;
}

// ---- the rules -------------------------------------------------------------------------

void Membership::Impl::on_alive(const AliveMsg& a, bool learned_dead) {
  if (a.node_id == options.node_id) {
    Node& me = self();
    if (left || me.m.removed) return;
    // Someone holds a newer (or a different) record of us: a previous life of this node, or
    // a forged or mistaken one. Ours wins under a higher incarnation.
    if (a.incarnation > me.record_incarnation ||
        (a.incarnation == me.record_incarnation && (a.address != me.m.address || !(a.state == me.m.state)))) {
      refute(a.incarnation);
    }
    return;
  }
  Node* n = find(a.node_id);
  // Old news (the common case in a push-pull) costs one lookup.
  if (n != nullptr && (n->m.removed || a.incarnation <= n->record_incarnation)) return;
  if (auto t = tombstones.find(a.node_id); t != tombstones.end() && !t->second.final) {
    if (a.incarnation <= t->second.incarnation) return;  // a record of the member we forgot
    erase_tombstone(a.node_id);                           // it came back: a new incarnation
  }
  if (refusal_of(a.node_id)) return;
  if (auto why = options.compatible(self().m.state, a.state)) {
    const std::uint64_t now = clock.now_ms();
    if (refused.size() >= options.max_members) refused.clear();  // bounded under a flood of ids
    refused[a.node_id] = {"refused by cluster settings: " + *why, now + 60'000};
    if (log_allowed("settings:" + a.node_id + *why, 600'000)) {
      log->error("membership: refusing {} at {}: {}; its datagrams are dropped until its configuration matches",
                 a.node_id, a.address, *why);
    }
    if (n != nullptr) reap(*n, "its cluster settings differ");
    return;
  }
  if (n == nullptr) {
    n = add(a, learned_dead ? Liveness::kDead : Liveness::kAlive);
    if (n == nullptr) return;
    if (a.state.lifecycle == Lifecycle::kLeft) emit(Kind::kLeft, a.node_id, a.incarnation);
    if (!learned_dead) gossip(a.node_id, a);
    return;
  }
  const std::uint64_t now = clock.now_ms();
  const Lifecycle before = n->m.state.lifecycle;
  const bool state_changed = !(a.state == n->m.state) || a.address != n->m.address;
  if (a.address != n->m.address) {
    log->info("membership: {} moved from {} to {}", a.node_id, n->m.address, a.address);
  }
  // When the watermark was first known somewhere: a broker that learns an old record
  // extrapolates from then, not from today (the sender's age of it is a lower bound).
  const std::uint64_t known_since = now - std::min(now, a.watermark_age_ms);
  if (a.state.watermark_ms != n->m.state.watermark_ms || a.state.watermark_held != n->m.state.watermark_held) {
    n->m.watermark_received_ms = known_since;
  } else {
    n->m.watermark_received_ms = std::min(n->m.watermark_received_ms, known_since);
  }
  n->m.address = a.address;
  n->m.state = a.state;
  n->record_incarnation = a.incarnation;
  n->m.state_received_ms = now;
  if (a.incarnation > n->m.incarnation) {
    n->m.incarnation = a.incarnation;
    if (n->m.liveness != Liveness::kAlive) {
      log->info("membership: {} is alive again ({} refuted at incarnation {})", a.node_id,
                to_string(n->m.liveness), a.incarnation);
      n->m.liveness = Liveness::kAlive;
      n->m.changed_ms = now;
      n->suspicion.reset();
      timers.cancel(n->suspicion_timer);
      n->verifying = false;
      emit(Kind::kAlive, a.node_id, a.incarnation);
    }
  }
  if (before != a.state.lifecycle) {
    n->m.changed_ms = now;
    log->info("membership: {} is {} (was {})", a.node_id, to_string(a.state.lifecycle), to_string(before));
    if (a.state.lifecycle == Lifecycle::kLeft) emit(Kind::kLeft, a.node_id, a.incarnation);
  }
  if (state_changed) emit(Kind::kUpdated, a.node_id, a.incarnation);
  gossip(a.node_id, a);
}

Node* Membership::Impl::accused(const std::string& id, std::uint64_t inc) {
  Node* n = find(id);
  if (n == nullptr || n->m.removed) return nullptr;
  if (n->m.self) {
    if (!left && inc >= n->m.incarnation) refute(inc);
    return nullptr;
  }
  if (inc < n->m.incarnation || n->m.liveness == Liveness::kDead || n->m.gone()) return nullptr;
  return n;
}

void Membership::Impl::on_suspect(const std::string& id, std::uint64_t inc, const std::string& from) {
  Node* n = accused(id, inc);
  if (n == nullptr) return;
  if (n->m.liveness == Liveness::kSuspect) {
    if (inc > n->m.incarnation) n->m.incarnation = inc;
    // An independent confirmation shortens the timeout (and is passed on, so that others
    // count it too).
    if (n->suspicion && n->suspicion->confirm(from)) {
      // A shorter timeout, unless we are already waiting for its refutation or probing it.
      if (!n->verifying && n->extended_ms == 0) arm_suspicion_timer(*n);
      gossip(id, SuspectMsg{id, inc, from});
    }
    return;
  }
  const std::uint64_t now = clock.now_ms();
  n->m.incarnation = inc;
  n->m.liveness = Liveness::kSuspect;
  n->m.changed_ms = now;
  const std::size_t members = live_count();
  const std::size_t k = members >= options.suspicion_confirmations + 2 ? options.suspicion_confirmations : 0;
  const std::uint64_t min = suspicion_min_ms();
  n->suspicion.emplace(from, k, min, static_cast<std::uint64_t>(options.suspicion_max_mult * static_cast<double>(min)),
                       now);
  n->verifying = false;
  n->extended_ms = 0;
  arm_suspicion_timer(*n);
  gossip(id, SuspectMsg{id, inc, from});
  log->debug("membership: {} is suspect (incarnation {}, by {})", id, inc, from);
  emit(Kind::kSuspect, id, inc);
  if (from == options.node_id) {
    ++stats.suspicions;
    tell(*n);  // the accused hears it first, so it can refute at once
  }
}

void Membership::Impl::arm_suspicion_timer(Node& n) {
  timers.cancel(n.suspicion_timer);
  const std::string id = n.m.node_id;
  n.suspicion_timer = arm(std::max(n.suspicion->deadline_ms(), clock.now_ms()), [this, id] { suspicion_expired(id); });
}

void Membership::Impl::suspicion_expired(const std::string& id) {
  Node* n = find(id);
  if (n == nullptr || n->m.liveness != Liveness::kSuspect || !n->suspicion) return;
  timers.cancel(n->suspicion_timer);  // called from probe_done too, while one may be armed
  n->suspicion_timer = 0;
  const std::uint64_t now = clock.now_ms();
  const std::uint64_t min = suspicion_min_ms();
  const auto period = static_cast<std::uint64_t>(options.probe_interval.count());
  const auto longest = static_cast<std::uint64_t>(options.suspicion_max_mult * static_cast<double>(min));
  // The suspect spoke to us (or answered a probe of ours) lately, and since we last waited
  // for it: it runs, and its refutation has not reached us yet. Tell it once more and wait
  // another minimum timeout while fresh evidence keeps coming, up to three times the longest
  // timeout (a broker that sends but never hears anything cannot refute at all).
  if (n->heard_ms > n->extended_ms && now - n->heard_ms < min + period &&
      now - n->suspicion->start_ms() < 3 * longest) {
    n->extended_ms = now;
    tell(*n);
    n->suspicion_timer = arm(now + min, [this, id] { suspicion_expired(id); });
    return;
  }
  // Unless this node itself failed to reach it during the suspicion, it probes it once more
  // first: an answer postpones the verdict (above), silence confirms it.
  const bool failed_here = n->failed_ms + period >= n->suspicion->start_ms();
  if (!n->verifying && !failed_here) {
    n->verifying = true;
    probe(*n, /*verify=*/true);
    return;
  }
  declare_dead(*n);
}

void Membership::Impl::declare_dead(Node& n) {
  const std::uint64_t now = clock.now_ms();
  log->info("membership: {} is dead (no refutation of incarnation {} for {} ms, {} confirmations)", n.m.node_id,
            n.m.incarnation, n.suspicion ? now - n.suspicion->start_ms() : 0,
            n.suspicion ? n.suspicion->confirmations() : 0);
  ++stats.deaths_declared;
  on_dead(n.m.node_id, n.m.incarnation, options.node_id);
}

void Membership::Impl::on_dead(const std::string& id, std::uint64_t inc, const std::string& from) {
  Node* n = accused(id, inc);
  if (n == nullptr) return;
  n->m.incarnation = inc;
  n->m.liveness = Liveness::kDead;
  n->m.changed_ms = clock.now_ms();
  n->suspicion.reset();
  timers.cancel(n->suspicion_timer);
  n->verifying = false;
  gossip(id, DeadMsg{id, inc, from});
  if (from != options.node_id) log->info("membership: {} is dead (incarnation {}, declared by {})", id, inc, from);
  emit(Kind::kDead, id, inc);
}

void Membership::Impl::on_removed(const std::string& id, const std::string& by) {
  if (id == options.node_id) {
    Node& me = self();
    if (me.m.removed) return;
    me.m.removed = true;
    me.m.removed_by = by;
    ready = false;
    log->error("membership: this broker ({}) was removed from the cluster by {}; it takes no part any more", id, by);
    emit(Kind::kSelf, id, me.m.incarnation);
    return;
  }
  Node* n = find(id);
  if (n == nullptr) {
    add_tombstone(id, "removed by " + by, static_cast<std::uint64_t>(options.tombstone_ttl.count()), 0, true);
    return;
  }
  if (n->m.removed) return;
  n->m.removed = true;
  n->m.removed_by = by;
  n->m.changed_ms = clock.now_ms();
  n->suspicion.reset();
  timers.cancel(n->suspicion_timer);
  gossip(id, RemovedMsg{id, by});
  log->info("membership: {} was removed by {}", id, by);
  emit(Kind::kRemoved, id, n->m.incarnation);
}

void Membership::Impl::refute(std::uint64_t accused) {
  Node& me = self();
  const std::uint64_t inc = std::max(me.m.incarnation, accused) + 1;
  me.m.incarnation = inc;
  me.record_incarnation = inc;
  ++stats.refutations;
  change_health(+1);
  gossip(options.node_id, self_record());
  log->info("membership: refuting a suspicion of this broker (now incarnation {})", inc);
}

// ---- forgetting ------------------------------------------------------------------------

void Membership::Impl::add_tombstone(const std::string& id, std::string reason, std::uint64_t ttl_ms,
                                     std::uint64_t incarnation, bool final) {
  const std::uint64_t expires = clock.now_ms() + ttl_ms;
  auto [it, inserted] = tombstones.try_emplace(id);
  Tombstone& t = it->second;
  if (!inserted) {
    if (t.final && !final) return;  // a decision outranks a reaped death
    if (t.final == final && t.expires_ms >= expires && t.incarnation >= incarnation) return;
    tombstone_expiry.erase({t.expires_ms, id});
  }
  t = Tombstone{std::move(reason), expires, std::max(t.incarnation, incarnation), final};
  tombstone_expiry.emplace(expires, id);
  while (tombstones.size() > options.max_members) {
    const auto oldest = *tombstone_expiry.begin();
    tombstone_expiry.erase(tombstone_expiry.begin());
    tombstones.erase(oldest.second);
  }
}

void Membership::Impl::erase_tombstone(const std::string& id) {
  auto it = tombstones.find(id);
  if (it == tombstones.end()) return;
  tombstone_expiry.erase({it->second.expires_ms, id});
  tombstones.erase(it);
}

void Membership::Impl::reap(Node& n, const std::string& reason) {
  if (n.m.self) return;
  const std::string id = n.m.node_id;
  timers.cancel(n.suspicion_timer);
  queue.erase(id);
  // Swap-remove from the list; the probe order skips ids it no longer finds.
  Node* last = list.back();
  list[n.index] = last;
  last->index = n.index;
  list.pop_back();
  const std::uint64_t inc = n.m.incarnation;
  nodes.erase(id);
  count_members();
  log->info("membership: {} reaped ({})", id, reason);
  emit(Kind::kReaped, id, inc);
}

void Membership::Impl::reap_tick() {
  const std::uint64_t now = clock.now_ms();
  const auto after = static_cast<std::uint64_t>(options.reap_after.count());
  std::vector<std::pair<Node*, std::string>> due;
  for (Node* n : list) {
    if (n->m.self || now - n->m.changed_ms < after) continue;
    if (n->m.removed) {
      due.emplace_back(n, "removed by " + n->m.removed_by);
    } else if (n->m.state.lifecycle == Lifecycle::kLeft) {
      due.emplace_back(n, "left");
    } else if (n->m.liveness == Liveness::kDead) {
      due.emplace_back(n, "dead");
    }
  }
  for (auto& [n, reason] : due) {
    const bool dead = reason == "dead";
    const auto ttl = dead ? options.dead_tombstone_ttl : options.tombstone_ttl;
    add_tombstone(n->m.node_id, reason, static_cast<std::uint64_t>(ttl.count()), n->m.incarnation, !dead);
    reap(*n, reason + " for longer than reap-after");
  }
  while (!tombstone_expiry.empty() && tombstone_expiry.begin()->first <= now) {
    tombstones.erase(tombstone_expiry.begin()->second);
    tombstone_expiry.erase(tombstone_expiry.begin());
  }
  for (auto it = refused.begin(); it != refused.end();) {
    it = it->second.second <= now ? refused.erase(it) : std::next(it);
  }
  arm(now + std::min<std::uint64_t>(60'000, std::max<std::uint64_t>(1000, after / 10)), [this] { reap_tick(); });
}

}  // namespace alldata::broker
