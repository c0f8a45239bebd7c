// Membership over the stream transport: full-state push-pull for joining (seeds, then a
// random member every period until the view is complete), for anti-entropy (a random
// member every push_pull_interval, scaled with log N), for merging groups that formed apart
// (unreached seeds are retried with back-off) and for finding dead members that came back.
#include "membership/membership_impl.h"

#include <algorithm>
#include <cmath>

namespace alldata::broker {

using Node = Membership::Impl::Node;

std::uint64_t Membership::Impl::push_pull_interval_ms() const {
  const double n = static_cast<double>(live_count());
  const double scale = n <= 32 ? 1.0 : std::ceil(std::log2(n) - std::log2(32.0)) + 1.0;
  return static_cast<std::uint64_t>(static_cast<double>(options.push_pull_interval.count()) * scale);
}

PushPullMsg Membership::Impl::snapshot_message(bool join) const {
  PushPullMsg p;
  p.cluster = options.cluster;
  p.from = options.node_id;
  p.from_address = address;
  p.join = join;
  p.members.reserve(list.size());
  for (const Node* n : list) {
    p.members.push_back(MemberEntry{record_of(*n), n->m.liveness, n->m.removed ? n->m.removed_by : std::string()});
  }
  const std::uint64_t now = clock.now_ms();
  for (const auto& [id, t] : tombstones) {
    p.tombstones.push_back(
        TombstoneEntry{id, t.reason, t.expires_ms > now ? t.expires_ms - now : 0, t.incarnation, t.final});
  }
  return p;
}

void Membership::Impl::push_pull(const std::string& to, bool join, Seed* seed, bool backlog, bool joining) {
  ++stats.push_pulls;
  std::string bytes = encode(snapshot_message(join));
  stats.push_pull_bytes_sent += bytes.size();
  if (seed != nullptr) seed->in_flight = true;
  const bool from_seed = seed != nullptr;
  streams.request(to, std::move(bytes), options.push_pull_timeout,
                  [alive = std::weak_ptr<int>(life), this, to, from_seed, backlog, joining](Result<std::string> answer) {
                    if (alive.expired()) return;
                    if (backlog && backlog_pulls_in_flight > 0) --backlog_pulls_in_flight;
                    if (joining && join_pulls_in_flight > 0) --join_pulls_in_flight;
                    push_pull_answered(to, from_seed, std::move(answer));
                    flush_events();
                  });
}

void Membership::Impl::push_pull_answered(const std::string& to, bool from_seed, Result<std::string> answer) {
  Seed* seed = nullptr;
  if (from_seed) {
    for (auto& s : seeds) {
      if (s.address == to) seed = &s;
    }
    if (seed) seed->in_flight = false;
  }
  auto fail = [&](std::string why) {
    ++stats.push_pulls_failed;
    log->debug("membership: push-pull with {} failed: {}", to, why);
    if (seed) seed->last_error = std::move(why);
  };
  if (!answer) return fail(answer.error().message);
  auto p = decode_push_pull(*answer);
  if (!p) return fail("malformed answer: " + p.error().message);
  if (p->from == options.node_id && p->cluster == options.cluster) {
    // This broker under another name (a host name, localhost): it is a seed itself.
    if (seed) {
      seed->reached = true;
      seed->node_id = options.node_id;
      is_seed = true;
      log->info("membership: seed {} is this broker", to);
    }
    return;
  }
  if (!p->refused.empty()) {
    if (refused_reason != p->refused) {
      log->error("membership: {} refuses this broker: {}", to, p->refused);
      refused_reason = p->refused;
      emit(MembershipEvent::Kind::kSelf, options.node_id, self().m.incarnation);
    }
    return fail("refused: " + p->refused);
  }
  if (p->cluster != options.cluster) return fail("it belongs to cluster '" + p->cluster + "'");
  refused_reason.clear();
  merge(*p);
  synced_once = true;
  if (seed) {
    seed->reached = true;
    seed->backoff_ms = 1000;
    seed->last_error.clear();
    seed->node_id = p->from;
  }
}

std::string Membership::Impl::answer_push_pull(std::string_view from, std::string_view bytes) {
  PushPullMsg answer;
  answer.cluster = options.cluster;
  answer.from = options.node_id;
  answer.from_address = address;
  auto refuse = [&](std::string why) {
    answer.refused = std::move(why);
    return encode(answer);
  };
  auto p = decode_push_pull(bytes);
  if (!p) {
    ++stats.malformed_dropped;
    return refuse("malformed push-pull: " + p.error().message);
  }
  if (p->cluster != options.cluster) {
    ++stats.foreign_dropped;
    return refuse("this broker belongs to cluster '" + options.cluster + "', not '" + p->cluster + "'");
  }
  if (p->from == options.node_id) {
    return refuse("node id " + p->from + " is this broker's own: node ids must be unique");
  }
  if (self().m.removed) return refuse("this broker was removed from the cluster");
  if (auto why = refusal_of(p->from)) {
    ++stats.refused_dropped;
    return refuse(*why);
  }
  if (p->query) return encode(snapshot_message(false));
  if (find(p->from) == nullptr && nodes.size() >= options.max_members) {
    return refuse("the cluster has " + std::to_string(nodes.size()) + " members, the most allowed (max-members)");
  }
  if (p->ping) {
    answer.ping = true;
    return encode(answer);
  }
  for (const auto& e : p->members) {
    if (e.record.node_id != p->from) continue;
    if (auto why = options.compatible(self().m.state, e.record.state)) {
      if (log_allowed("pp-settings:" + p->from, 600'000)) {
        log->error("membership: refusing {} at {}: {}", p->from, from, *why);
      }
      return refuse("refused by " + options.node_id + ": " + *why);
    }
  }
  merge(*p);
  std::string out = encode(snapshot_message(false));
  stats.push_pull_bytes_sent += out.size();
  return out;
}

void Membership::Impl::merge(const PushPullMsg& p) {
  merging = true;
  const auto ttl = static_cast<std::uint64_t>(options.tombstone_ttl.count());
  for (const auto& t : p.tombstones) {
    if (t.node_id == options.node_id) {
      if (!t.final) {
        // Forgotten as dead elsewhere while we ran (a long partition): we are back.
        if (!left && t.incarnation >= self().m.incarnation) refute(t.incarnation);
        continue;
      }
      const std::string why = "node id " + t.node_id + " may not rejoin (" + t.reason + "); give the broker a new node id";
      if (refused_reason != why) {
        log->error("membership: {}", why);
        refused_reason = why;
        emit(MembershipEvent::Kind::kSelf, options.node_id, self().m.incarnation);
      }
      continue;
    }
    Node* n = find(t.node_id);
    // A death forgotten elsewhere is no reason to forget a member that is alive here (nor
    // a newer incarnation of it): the two sides were apart, and it will refute.
    if (!t.final && n != nullptr && !(n->m.liveness == Liveness::kDead && n->m.incarnation <= t.incarnation)) {
      continue;
    }
    add_tombstone(t.node_id, t.reason, std::min(t.remaining_ms, t.final ? ttl : static_cast<std::uint64_t>(options.dead_tombstone_ttl.count())),
                  t.incarnation, t.final);
    if (n != nullptr) reap(*n, "reaped elsewhere: " + t.reason);
  }
  for (const auto& e : p.members) {
    const std::string& id = e.record.node_id;
    if (!e.removed_by.empty()) {
      on_removed(id, e.removed_by);
      continue;
    }
    const bool known = id == options.node_id || find(id) != nullptr;
    // A member the sender holds dead is learned as dead (it keeps its partitions); a known
    // member the sender holds dead or suspect is only suspected here (SWIM: trust no
    // second-hand verdict outright).
    if (!known && e.liveness == Liveness::kDead) {
      on_alive(e.record, /*learned_dead=*/true);
      continue;
    }
    on_alive(e.record);
    if (e.liveness != Liveness::kAlive) on_suspect(id, e.record.incarnation, p.from);
  }
  merging = false;
}

void Membership::Impl::set_ready() {
  ready = true;
  emit(MembershipEvent::Kind::kSelf, options.node_id, self().m.incarnation);
  if (options.promote_when_ready && self().m.state.lifecycle == Lifecycle::kJoining) {
    Node& me = self();
    me.m.state.lifecycle = Lifecycle::kNormal;
    me.m.incarnation = me.record_incarnation = me.m.incarnation + 1;
    me.m.changed_ms = clock.now_ms();
    gossip(options.node_id, self_record());
    log->info("membership: this broker is normal (was joining)");
  }
}

bool Membership::Impl::seed_known(const Seed& s) const {
  if (s.node_id == options.node_id) return true;
  if (!s.node_id.empty()) {
    const Node* n = find(s.node_id);
    return n != nullptr && n->m.reachable() && n->m.address == s.address;
  }
  return false;
}

void Membership::Impl::seed_tick() {
  const std::uint64_t now = clock.now_ms();
  if (seeds.empty()) return;
  arm(now + 1000, [this] { seed_tick(); });
  if (left || self().m.removed) return;
  for (auto& s : seeds) {
    if (s.in_flight) continue;
    if (seed_known(s)) {
      s.backoff_ms = 1000;
      continue;
    }
    if (now < s.next_ms) continue;
    s.next_ms = now + s.backoff_ms;
    // A joining broker has nothing better to do: it keeps asking every 2 s at most.
    const auto cap = ready ? static_cast<std::uint64_t>(options.seed_retry_max.count()) : 2000;
    s.backoff_ms = std::min<std::uint64_t>(s.backoff_ms * 2, cap);
    push_pull(s.address, !ready, &s);
  }
}

void Membership::Impl::backlog_pull() {
  // Many updates at once (a cold start, a partition healing, a mass restart): gossip would
  // need O(updates * log N) datagrams per broker, a whole view fits a few TCP segments.
  const std::uint64_t now = clock.now_ms();
  if (updates_last_period >= options.backlog_pull_threshold) {
    // A burst, and the stragglers after it: keep pulling for a while.
    backlog_until_ms = now + 10 * static_cast<std::uint64_t>(options.probe_interval.count());
  }
  if (!ready || backlog_pulls_in_flight > 0 || now >= backlog_until_ms) return;
  auto pick = random_members(1, [](const Node& n) { return !n.m.self && n.m.reachable(); });
  if (pick.empty()) return;
  ++backlog_pulls_in_flight;
  push_pull(pick[0]->m.address, false, nullptr, /*backlog=*/true);
}

void Membership::Impl::sync_tick() {
  const std::uint64_t now = clock.now_ms();
  arm(now + push_pull_interval_ms(), [this] { sync_tick(); });
  if (!ready || left || self().m.removed) return;
  auto pick = random_members(1, [](const Node& n) { return !n.m.self && n.m.reachable(); });
  if (!pick.empty()) push_pull(pick[0]->m.address, false, nullptr);
}

void Membership::Impl::reconnect_tick() {
  const std::uint64_t now = clock.now_ms();
  arm(now + static_cast<std::uint64_t>(options.reconnect_interval.count()), [this] { reconnect_tick(); });
  if (left || self().m.removed) return;
  auto pick = random_members(1, [](const Node& n) { return n.m.liveness == Liveness::kDead && !n.m.gone(); });
  if (!pick.empty()) push_pull(pick[0]->m.address, false, nullptr);
}

void Membership::Impl::ready_tick() {
  if (ready || left || self().m.removed) return;
  const std::uint64_t now = clock.now_ms();
  const auto period = static_cast<std::uint64_t>(options.probe_interval.count());
  // Joining converges by pulling whole views: one random member each period.
  if (join_pulls_in_flight == 0) {
    auto pick = random_members(1, [](const Node& n) { return !n.m.self && n.m.reachable(); });
    if (!pick.empty()) {
      ++join_pulls_in_flight;
      push_pull(pick[0]->m.address, true, nullptr, /*backlog=*/false, /*joining=*/true);
    }
  }
  const bool seeds_done = std::all_of(seeds.begin(), seeds.end(), [&](const Seed& s) { return s.reached || seed_known(s); }) ||
                          now - started_ms >= static_cast<std::uint64_t>(options.seed_wait.count());
  const bool settled = now - last_new_member_ms >= options.settle_periods * period;
  bool become_ready = synced_once && seeds_done && settled && refused_reason.empty();
  if (!synced_once && is_seed && now - started_ms >= static_cast<std::uint64_t>(options.seed_wait.count()) &&
      refused_reason.empty()) {
    log->warn("membership: no other seed answered within {} ms: {} starts the cluster; groups that formed apart merge "
              "once a seed answers", options.seed_wait.count(), options.node_id);
    become_ready = true;
  }
  if (become_ready) {
    log->info("membership: ready with {} members after {} ms", list.size(), now - started_ms);
    set_ready();
    return;
  }
  if (now - last_status_log_ms >= 10'000 && now - started_ms >= 5'000) {
    last_status_log_ms = now;
    log->warn("membership: still joining after {} ms: {}", now - started_ms, status_line());
  }
  arm(now + period, [this] { ready_tick(); });
}

}  // namespace alldata::broker
