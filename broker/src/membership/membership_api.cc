// Membership's public API: construction and start (the timers every node runs), this
// node's own state, leaving and removing, and the read side. The rules are in
// membership.cc, datagrams in membership_probe.cc, push-pull in membership_sync.cc.
#include "membership/membership_impl.h"

#include <algorithm>
#include <stdexcept>

namespace alldata::broker {

using Node = Membership::Impl::Node;
using Kind = MembershipEvent::Kind;

// ---- the public API --------------------------------------------------------------------

Membership::Membership(MembershipOptions options, DatagramTransport& datagrams, StreamTransport& streams,
                       TimerQueue& timers, Clock& clock, Random& random, std::shared_ptr<spdlog::logger> logger) {
  if (options.node_id.empty() || options.node_id.size() > kMaxIdBytes) {
    throw std::invalid_argument("membership: node id must be 1 to 255 bytes");
  }
  impl_ = std::make_unique<Impl>(std::move(options), datagrams, streams, timers, clock, random, std::move(logger));
  Impl* impl = impl_.get();
  datagrams.set_receiver([impl](std::string_view from, std::string_view bytes) {
    impl->receive(from, bytes);
    impl->flush_events();
  });
  streams.set_handler([impl](std::string_view from, std::string_view bytes) {
    std::string answer = impl->answer_push_pull(from, bytes);
    impl->flush_events();
    return answer;
  });
}

Membership::~Membership() {
  impl_->datagrams.set_receiver({});
  impl_->streams.set_handler({});
}

void Membership::start() {
  Impl& i = *impl_;
  const std::uint64_t now = i.clock.now_ms();
  i.started_ms = now;
  i.self().m.changed_ms = now;
  i.self().m.state_received_ms = now;
  i.gossip(i.options.node_id, i.self_record());
  if (i.seeds.empty()) {
    i.log->info("membership: {} starts a cluster on {} (no other seeds)", i.options.node_id, i.address);
    i.set_ready();
  }
  i.arm(now + i.random.below(static_cast<std::uint64_t>(i.options.probe_interval.count()) + 1), [&i] { i.probe_tick(); });
  i.arm(now + static_cast<std::uint64_t>(i.options.gossip_interval.count()), [&i] { i.gossip_tick(); });
  i.arm(now, [&i] { i.seed_tick(); });
  i.arm(now + i.push_pull_interval_ms(), [&i] { i.sync_tick(); });
  i.arm(now + static_cast<std::uint64_t>(i.options.reconnect_interval.count()), [&i] { i.reconnect_tick(); });
  i.arm(now + 1000, [&i] { i.reap_tick(); });
  if (!i.ready) i.arm(now + static_cast<std::uint64_t>(i.options.probe_interval.count()), [&i] { i.ready_tick(); });
  i.flush_events();
}

Status Membership::set_state(const MemberState& state) {
  Impl& i = *impl_;
  Node& me = i.self();
  if (i.left || me.m.removed) return Error(ErrorCode::kNotAllowed, "this broker left the cluster");
  if (state.lifecycle == Lifecycle::kRemoved) {
    return Error(ErrorCode::kBadRequest, "a broker cannot declare itself removed");
  }
  for (const std::string* s : {&state.client_address, &state.peer_address, &state.zone, &state.region}) {
    if (s->size() > kMaxIdBytes) return Error(ErrorCode::kBadRequest, "a member's address, zone or region is over 255 bytes");
  }
  if (state == me.m.state) return {};
  const Lifecycle before = me.m.state.lifecycle;
  const std::uint64_t now = i.clock.now_ms();
  if (state.watermark_ms != me.m.state.watermark_ms || state.watermark_held != me.m.state.watermark_held) {
    me.m.watermark_received_ms = now;
  }
  me.m.state = state;
  me.m.incarnation = me.record_incarnation = me.m.incarnation + 1;
  me.m.state_received_ms = now;
  if (before != state.lifecycle) {
    me.m.changed_ms = me.m.state_received_ms;
    i.log->info("membership: this broker is {} (was {})", to_string(state.lifecycle), to_string(before));
    i.emit(Kind::kSelf, i.options.node_id, me.m.incarnation);
  }
  if (state.lifecycle == Lifecycle::kLeft) i.left = true;
  i.gossip(i.options.node_id, i.self_record());
  i.flush_events();
  return {};
}

const MemberState& Membership::state() const { return impl_->self().m.state; }
std::uint64_t Membership::incarnation() const { return impl_->self().m.incarnation; }

void Membership::leave() {
  MemberState s = state();
  s.lifecycle = Lifecycle::kLeft;
  (void)set_state(s);  // fails only when already gone
}

Status Membership::remove(const std::string& node_id) {
  Impl& i = *impl_;
  if (node_id == i.options.node_id) return Error(ErrorCode::kBadRequest, "a broker cannot remove itself; stop it and remove it from another broker");
  if (i.find(node_id) == nullptr) return Error(ErrorCode::kBadRequest, "no member " + node_id);
  i.on_removed(node_id, i.options.node_id);
  i.flush_events();
  return {};
}

bool Membership::ready() const { return impl_->ready; }

std::string Membership::Impl::status_line() const {
  const Impl& i = *this;
  const Node& me = i.self();
  if (me.m.removed) return "removed by " + me.m.removed_by;
  if (i.left) return "left";
  if (!i.refused_reason.empty()) return "refused: " + i.refused_reason;
  if (i.ready) return "ready";
  std::string out = "joining: ";
  std::vector<std::string> waiting;
  for (const auto& s : i.seeds) {
    if (!s.reached) waiting.push_back(s.address + (s.last_error.empty() ? "" : " (" + s.last_error + ")"));
  }
  if (!i.synced_once) {
    out += waiting.empty() ? "no seed reachable" : "no seed reachable yet: ";
  } else if (!waiting.empty()) {
    out += "waiting for seeds ";
  } else {
    out += "settling the membership view";
  }
  for (std::size_t k = 0; k < waiting.size(); ++k) out += (k ? ", " : "") + waiting[k];
  return out;
}

std::string Membership::status() const { return impl_->status_line(); }

const Member* Membership::member(std::string_view node_id) const {
  const Impl::Node* n = impl_->find(node_id);
  return n ? &n->m : nullptr;
}

std::vector<Member> Membership::members() const {
  std::vector<Member> out;
  out.reserve(impl_->list.size());
  for (const Impl::Node* n : impl_->list) out.push_back(n->m);
  std::sort(out.begin(), out.end(), [](const Member& a, const Member& b) {
    if (a.self != b.self) return a.self;
    return a.node_id < b.node_id;
  });
  return out;
}

std::size_t Membership::size() const { return impl_->list.size(); }

bool Membership::tombstoned(std::string_view node_id) const { return impl_->tombstones.count(node_id) > 0; }

std::uint64_t Membership::subscribe(Handler handler) {
  const std::uint64_t id = impl_->next_handler++;
  impl_->handlers.emplace(id, std::move(handler));
  return id;
}

void Membership::unsubscribe(std::uint64_t id) { impl_->handlers.erase(id); }

MembershipStats Membership::stats() const {
  MembershipStats s = impl_->stats;
  s.local_health = impl_->health;
  s.pauses = impl_->timers.pauses();
  return s;
}

const std::string& Membership::node_id() const noexcept { return impl_->options.node_id; }
const std::string& Membership::address() const noexcept { return impl_->address; }
const MembershipOptions& Membership::options() const noexcept { return impl_->options; }

}  // namespace alldata::broker
