// Membership over datagrams: the probe cycle (ping, ping-req through others, ack, nack),
// Lifeguard's local health, gossip of queued updates, and receiving.
#include "membership/membership_impl.h"

#include <algorithm>

namespace alldata::broker {

using Node = Membership::Impl::Node;

std::uint64_t Membership::Impl::probe_period_ms() const {
  return static_cast<std::uint64_t>(options.probe_interval.count()) * (1 + health);
}

void Membership::Impl::change_health(int delta) {
  const long next = std::clamp<long>(static_cast<long>(health) + delta, 0, static_cast<long>(options.max_local_health));
  health = static_cast<std::uint32_t>(next);
}

std::vector<Node*> Membership::Impl::random_members(std::size_t k, const std::function<bool(const Node&)>& ok) {
  std::vector<Node*> out;
  if (k == 0) return out;
  auto taken = [&](const Node* n) { return std::find(out.begin(), out.end(), n) != out.end(); };
  // Sampling is O(k) while most members qualify; a full pass keeps it exact otherwise.
  for (std::size_t tries = 0; tries < 4 * k + 8 && out.size() < k && list.size() > 64; ++tries) {
    Node* n = list[random.below(list.size())];
    if (ok(*n) && !taken(n)) out.push_back(n);
  }
  if (out.size() >= k) return out;
  std::vector<Node*> pool;
  for (Node* n : list) {
    if (ok(*n) && !taken(n)) pool.push_back(n);
  }
  while (out.size() < k && !pool.empty()) {
    const std::size_t i = random.below(pool.size());
    out.push_back(pool[i]);
    pool[i] = pool.back();
    pool.pop_back();
  }
  return out;
}

void Membership::Impl::send(const std::string& to, std::vector<Message> messages, bool piggyback) {
  Datagram d{options.cluster, options.node_id, address, self().m.incarnation, std::move(messages)};
  std::size_t used = header_bytes(d);
  for (const auto& m : d.messages) used += encoded_bytes(m);
  if (piggyback && used < options.max_datagram_bytes) {
    queue.take(options.max_datagram_bytes - used, retransmit_limit(), d.messages);
  }
  if (d.messages.empty()) return;
  std::string bytes = encode(d);
  while (bytes.size() > options.max_datagram_bytes && d.messages.size() > 1) {
    d.messages.pop_back();  // the size estimate was short (it never is for known layouts)
    bytes = encode(d);
  }
  ++stats.datagrams_sent;
  stats.bytes_sent += bytes.size();
  stats.largest_datagram = std::max<std::uint64_t>(stats.largest_datagram, bytes.size());
  datagrams.send(to, std::move(bytes));
}

void Membership::Impl::tell(Node& n) {
  const std::uint64_t now = clock.now_ms();
  if (n.told_ms != 0 && now - n.told_ms < 1000) return;
  n.told_ms = now;
  if (n.m.liveness == Liveness::kSuspect) {
    send(n.m.address, {SuspectMsg{n.m.node_id, n.m.incarnation, options.node_id}});
  } else if (n.m.liveness == Liveness::kDead) {
    send(n.m.address, {DeadMsg{n.m.node_id, n.m.incarnation, options.node_id}});
  }
}

// ---- probing ---------------------------------------------------------------------------

void Membership::Impl::probe_tick() {
  const std::uint64_t now = clock.now_ms();
  arm(now + probe_period_ms(), [this] { probe_tick(); });
  count_members();
  updates_last_period = updates_this_period;
  updates_this_period = 0;
  if (left || self().m.removed) return;
  backlog_pull();
  for (std::size_t tries = 0; tries < 2 * list.size() + 2; ++tries) {
    if (probe_index >= probe_order.size() || probe_order.size() > 2 * list.size() + 16) {
      // A new pass over every member in a new random order: each is probed once a pass.
      probe_order.clear();
      for (const Node* n : list) {
        if (!n->m.self) probe_order.push_back(n->m.node_id);
      }
      for (std::size_t i = probe_order.size(); i > 1; --i) std::swap(probe_order[i - 1], probe_order[random.below(i)]);
      probe_index = 0;
      if (probe_order.empty()) return;
    }
    Node* n = find(probe_order[probe_index++]);
    if (n == nullptr || n->m.self || n->m.liveness == Liveness::kDead || n->m.gone()) continue;
    probe(*n, /*verify=*/false);
    return;
  }
}

void Membership::Impl::probe(Node& target, bool verify) {
  const std::uint64_t now = clock.now_ms();
  const std::uint64_t seq = next_seq++;
  probes[seq] = Probe{target.m.node_id, now, verify};
  ++stats.probes;
  std::vector<Message> messages{PingMsg{seq, target.m.node_id}};
  if (target.m.liveness == Liveness::kSuspect) {
    // The buddy system: a suspect learns of its suspicion from whoever probes it.
    messages.push_back(SuspectMsg{target.m.node_id, target.m.incarnation, options.node_id});
    target.told_ms = now;
  }
  send(target.m.address, std::move(messages));
  arm(now + static_cast<std::uint64_t>(options.probe_timeout.count()), [this, seq] { probe_indirect(seq); });
  const std::uint64_t period = verify ? static_cast<std::uint64_t>(options.probe_interval.count()) : probe_period_ms();
  arm(now + std::max<std::uint64_t>(period, options.probe_timeout.count() + 1), [this, seq] { probe_done(seq); });
}

void Membership::Impl::probe_indirect(std::uint64_t seq) {
  auto it = probes.find(seq);
  if (it == probes.end() || it->second.acked) return;
  Node* target = find(it->second.target);
  if (target == nullptr) return;
  auto helpers = random_members(options.indirect_checks, [&](const Node& n) {
    return !n.m.self && &n != target && n.m.liveness == Liveness::kAlive && !n.m.gone();
  });
  for (Node* h : helpers) {
    send(h->m.address, {PingReqMsg{seq, target->m.node_id, target->m.address, /*want_nack=*/true}});
  }
  it->second.expected_nacks = helpers.size();
  tcp_ping(seq, *target);
}

void Membership::Impl::tcp_ping(std::uint64_t seq, const Node& target) {
  // TCP retransmits what datagrams lose: a probe that fails only because of loss is rare.
  PushPullMsg ping;
  ping.cluster = options.cluster;
  ping.from = options.node_id;
  ping.from_address = address;
  ping.ping = true;
  ++stats.tcp_pings;
  if (auto it = probes.find(seq); it != probes.end()) it->second.tcp_pending = true;
  // Until the end of the next period: the probe's conclusion waits for it (probe_done).
  const auto deadline = std::chrono::milliseconds(probe_period_ms() + options.probe_interval.count() -
                                                  options.probe_timeout.count());
  streams.request(target.m.address, encode(ping), deadline,
                  [alive = std::weak_ptr<int>(life), this, seq, id = target.m.node_id](Result<std::string> answer) {
                    if (alive.expired()) return;
                    auto it = probes.find(seq);
                    if (it != probes.end()) it->second.tcp_pending = false;
                    if (!answer) return;
                    auto p = decode_push_pull(*answer);
                    if (!p || !p->ping || p->from != id || it == probes.end()) return;
                    const bool only_tcp = !it->second.acked;
                    it->second.acked = true;
                    if (Node* n = find(id)) n->heard_ms = clock.now_ms();
                    if (only_tcp && log_allowed("tcp-only:" + id, 600'000)) {
                      log->warn("membership: {} answered over TCP but not its UDP pings: datagrams are lost "
                                "or blocked between us", id);
                    }
                  });
}

void Membership::Impl::probe_done(std::uint64_t seq) {
  if (auto it = probes.find(seq); it != probes.end() && !it->second.acked && it->second.tcp_pending &&
                                  !it->second.waited) {
    // The TCP ping is still under way (slowed by retransmissions): give it one more period.
    // A crashed broker refuses the connection at once, so this delays no real verdict.
    it->second.waited = true;
    arm(clock.now_ms() + static_cast<std::uint64_t>(options.probe_interval.count()), [this, seq] { probe_done(seq); });
    return;
  }
  auto handle = probes.extract(seq);
  if (handle.empty()) return;
  const Probe p = std::move(handle.mapped());
  if (p.acked) {
    change_health(-1);
    if (p.verify) {
      if (Node* n = find(p.target)) {
        n->verifying = false;
        suspicion_expired(p.target);  // it answered: the timer starts over, it may refute
      }
    }
    return;
  }
  ++stats.probes_failed;
  // Lifeguard: when helpers were asked, only their missing nacks count against us (they
  // tell whether the fault is ours); with nobody to ask, the failure itself does.
  change_health(p.expected_nacks > 0 ? static_cast<int>(p.expected_nacks - std::min(p.nacks, p.expected_nacks)) : 1);
  Node* n = find(p.target);
  if (n == nullptr || n->m.liveness == Liveness::kDead || n->m.gone()) return;
  n->failed_ms = clock.now_ms();
  if (p.verify) {
    if (n->m.liveness == Liveness::kSuspect) declare_dead(*n);
    return;
  }
  on_suspect(n->m.node_id, n->m.incarnation, options.node_id);
}

// ---- gossip ----------------------------------------------------------------------------

void Membership::Impl::gossip_tick() {
  const std::uint64_t now = clock.now_ms();
  arm(now + static_cast<std::uint64_t>(options.gossip_interval.count()), [this] { gossip_tick(); });
  if (queue.empty() || self().m.removed) return;
  const auto dead_window = static_cast<std::uint64_t>(options.gossip_to_dead.count());
  auto targets = random_members(options.gossip_fanout, [&](const Node& n) {
    if (n.m.self || n.m.gone()) return false;
    return n.m.liveness != Liveness::kDead || now - n.m.changed_ms < dead_window;
  });
  for (Node* t : targets) {
    if (queue.empty()) break;
    send(t->m.address, {});
  }
}

// ---- receiving -------------------------------------------------------------------------

void Membership::Impl::receive(std::string_view from, std::string_view bytes) {
  ++stats.datagrams_received;
  auto d = decode_datagram(bytes);
  if (!d) {
    if (d.error().code == ErrorCode::kUnsupportedVersion) {
      ++stats.foreign_dropped;
      if (log_allowed("foreign:" + std::string(from), 600'000)) {
        log->warn("membership: dropping datagrams from {} that are not membership datagrams ({}); a broker of "
                  "another version?", from, d.error().message);
      }
    } else {
      ++stats.malformed_dropped;
      log->debug("membership: malformed datagram from {}: {}", from, d.error().message);
    }
    return;
  }
  if (d->cluster != options.cluster) {
    ++stats.foreign_dropped;
    if (log_allowed("cluster:" + d->cluster, 600'000)) {
      log->warn("membership: dropping datagrams of cluster '{}' from {} (this is '{}')", d->cluster, from,
                options.cluster);
    }
    return;
  }
  if (d->from == options.node_id) {
    ++stats.malformed_dropped;
    if (log_allowed("clash", 600'000)) {
      log->error("membership: a datagram from {} claims this broker's node id {}: node ids must be unique", from,
                 d->from);
    }
    return;
  }
  if (self().m.removed) return;
  if (auto why = refusal_of(d->from)) {
    ++stats.refused_dropped;
    if (log_allowed("refuse:" + d->from, 10'000)) {
      // A removed member still running is told the verdict itself, so it stops.
      const Node* n = find(d->from);
      if (n != nullptr && n->m.removed) {
        send(d->from_address, {RemovedMsg{d->from, n->m.removed_by}}, false);
      } else {
        send(d->from_address, {RefusedMsg{d->from, *why}}, false);
      }
    }
    return;
  }
  if (auto t = tombstones.find(d->from); t != tombstones.end() && d->from_incarnation <= t->second.incarnation) {
    // Forgotten here as dead, yet it runs (it was cut off for long): tell it, so it comes
    // back under a newer incarnation.
    if (log_allowed("forgotten:" + d->from, 1000)) {
      send(d->from_address, {DeadMsg{d->from, t->second.incarnation, options.node_id}}, false);
    }
  }
  if (Node* n = find(d->from)) {
    const std::uint64_t now = clock.now_ms();
    n->heard_ms = now;
    if (n->m.liveness != Liveness::kAlive && !n->m.gone()) {
      tell(*n);  // it runs but we hold it suspect or dead: so it refutes
    } else if (d->from_incarnation > n->record_incarnation && now - n->asked_ms >= 1000) {
      // Its record moved on and the update never reached us: show it what we hold, and it
      // answers with its own (handle(), AliveMsg about this node).
      n->asked_ms = now;
      send(d->from_address, {record_of(*n)}, false);
    }
  }
  for (const auto& m : d->messages) handle(*d, m);
}

void Membership::Impl::handle(const Datagram& d, const Message& message) {
  struct Visitor {
    Membership::Impl& i;
    const Datagram& d;

    void operator()(const PingMsg& m) const {
      if (m.target != i.options.node_id) {
        i.log->debug("membership: ping from {} meant for {}, not this broker", d.from, m.target);
        return;
      }
      i.send(d.from_address, {AckMsg{m.seq}});
    }
    void operator()(const PingReqMsg& m) const {
      if (i.forwards.size() >= 1024) return;  // bounded: a flood of ping-reqs is dropped
      const std::uint64_t seq = i.next_seq++;
      i.forwards[seq] = Forward{d.from_address, m.seq};
      i.send(m.target_address, {PingMsg{seq, m.target}});
      const bool nack = m.want_nack;
      i.arm(i.clock.now_ms() + static_cast<std::uint64_t>(i.options.probe_timeout.count()) * 4 / 5, [&i = i, seq, nack] {
        auto f = i.forwards.extract(seq);
        if (!f.empty() && !f.mapped().acked && nack) {
          i.send(f.mapped().requester_address, {NackMsg{f.mapped().requester_seq}});
        }
      });
    }
    void operator()(const AckMsg& m) const {
      if (auto p = i.probes.find(m.seq); p != i.probes.end()) {
        p->second.acked = true;
        if (Node* n = i.find(p->second.target)) n->heard_ms = i.clock.now_ms();
        return;
      }
      if (auto f = i.forwards.find(m.seq); f != i.forwards.end()) {
        i.send(f->second.requester_address, {AckMsg{f->second.requester_seq}});
        i.forwards.erase(f);
      }
    }
    void operator()(const NackMsg& m) const {
      if (auto p = i.probes.find(m.seq); p != i.probes.end()) ++p->second.nacks;
    }
    void operator()(const AliveMsg& m) const {
      if (m.node_id == i.options.node_id && m.incarnation < i.self().record_incarnation && !i.left) {
        // The sender holds an old record of this broker: it gets the current one.
        Node& me = i.self();
        if (i.clock.now_ms() - me.asked_ms >= 100) {
          me.asked_ms = i.clock.now_ms();
          i.send(d.from_address, {i.self_record()}, false);
        }
        return;
      }
      i.on_alive(m);
    }
    void operator()(const SuspectMsg& m) const {
      i.on_suspect(m.node_id, m.incarnation, m.from);
      answer_accusation(m.node_id, m.incarnation);
    }
    void operator()(const DeadMsg& m) const {
      i.on_dead(m.node_id, m.incarnation, m.from);
      answer_accusation(m.node_id, m.incarnation);
    }
    void operator()(const RemovedMsg& m) const { i.on_removed(m.node_id, m.by); }
    void operator()(const RefusedMsg& m) const {
      if (m.node_id != i.options.node_id || i.left) return;  // a broker that left expects it
      if (i.refused_reason != m.reason) {
        i.log->error("membership: {} refuses this broker: {}", d.from, m.reason);
        i.refused_reason = m.reason;
        i.emit(MembershipEvent::Kind::kSelf, i.options.node_id, i.self().m.incarnation);
      }
    }
    // An accusation of this broker that its incarnation already refutes: the accuser gets
    // the refutation directly, as well as through gossip.
    void answer_accusation(const std::string& id, std::uint64_t inc) const {
      if (id == i.options.node_id && inc < i.self().m.incarnation && !i.left) {
        i.send(d.from_address, {i.self_record()}, false);
      }
    }
  };
  std::visit(Visitor{*this, d}, message);
}

}  // namespace alldata::broker
