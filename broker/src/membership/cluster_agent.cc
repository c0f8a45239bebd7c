#include "membership/cluster_agent.h"

#include <algorithm>

namespace alldata::broker {

std::vector<Owed> fold_owed(const std::map<std::string, std::uint64_t>& owed) {
  std::vector<Owed> all;
  all.reserve(owed.size());
  for (const auto& [id, since] : owed) all.push_back(Owed{id, since});
  std::sort(all.begin(), all.end(), [](const Owed& a, const Owed& b) {
    return a.since_ms != b.since_ms ? a.since_ms < b.since_ms : a.node_id < b.node_id;
  });
  std::vector<Owed> out;
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::size_t cost = all[i].node_id.size() + 24;
    if (out.size() + 1 < kMaxOwed && bytes + cost <= kOwedBudgetBytes) {
      bytes += cost;
      out.push_back(std::move(all[i]));
      continue;
    }
    out.push_back(Owed{"", all[i].since_ms});  // the oldest of the rest (sorted)
    break;
  }
  return out;
}

bool owes_more(const std::vector<Owed>& before, const std::vector<Owed>& now) {
  std::optional<std::uint64_t> everyone;
  for (const Owed& b : before) {
    if (b.node_id.empty()) everyone = b.since_ms;
  }
  for (const Owed& n : now) {
    if (everyone && *everyone <= n.since_ms) continue;
    const auto it = std::find_if(before.begin(), before.end(), [&](const Owed& b) { return b.node_id == n.node_id; });
    if (it == before.end() || n.since_ms < it->since_ms) return true;
  }
  return false;
}

ClusterAgent::ClusterAgent(Membership& membership, TimerQueue& timers, Clock& clock, LocalState& local,
                           ViewHolder& views, AgentOptions options, std::shared_ptr<spdlog::logger> logger)
    : membership_(membership),
      timers_(timers),
      clock_(clock),
      local_(local),
      views_(views),
      options_(options),
      log_(std::move(logger)),
      lifecycle_(membership.state().lifecycle) {
  subscription_ = membership_.subscribe([this](const MembershipEvent& e) {
    if (e.kind == MembershipEvent::Kind::kSelf && membership_.state().lifecycle != lifecycle_) {
      lifecycle_ = membership_.state().lifecycle;
      if (on_lifecycle_) on_lifecycle_(lifecycle_);
    }
    changed();
  });
}

ClusterAgent::~ClusterAgent() { membership_.unsubscribe(subscription_); }

void ClusterAgent::start() {
  check_state();
  rebuild();
}

void ClusterAgent::changed() {
  if (rebuild_armed_) return;
  rebuild_armed_ = true;
  timers_.at(clock_.now_ms() + static_cast<std::uint64_t>(options_.view_delay.count()),
             [alive = std::weak_ptr<int>(life_), this] {
               if (alive.expired()) return;
               rebuild_armed_ = false;
               rebuild();
             });
}

void ClusterAgent::rebuild() {
  ClusterView::Inputs in;
  in.policy = options_.policy;
  in.partitions = options_.partitions;
  in.ready = membership_.ready();
  in.status = membership_.status();
  if (auto previous = views_.view()) {
    in.previous = previous->placement_ptr();
    in.previous_future = previous->future_placement_ptr();
  }
  const std::vector<Member> members = membership_.members();
  in.members.reserve(members.size());
  for (const Member& m : members) {
    ViewMember v;
    v.node_id = m.node_id;
    v.address = m.address;
    v.client_address = m.state.client_address;
    v.peer_address = m.state.peer_address;
    v.zone = m.state.zone;
    v.region = m.state.region;
    v.liveness = m.liveness;
    v.lifecycle = m.lifecycle();
    v.incarnation = m.incarnation;
    v.pending_hints = m.state.pending_hints;
    v.hand_over_partitions = m.state.hand_over_partitions;
    v.hand_over_bytes = m.state.hand_over_bytes;
    v.owed = m.state.owed;
    v.self = m.self;
    v.watermark_ms = m.state.watermark_ms;
    v.watermark_held = m.state.watermark_held;
    v.received_ms = m.watermark_received_ms;
    in.members.push_back(std::move(v));
  }
  views_.set(std::make_shared<const ClusterView>(std::move(in)));
  ++views_built_;
}

MemberState ClusterAgent::wanted_state(std::uint64_t) {
  const MemberState& have = membership_.state();
  MemberState s = have;
  const std::uint64_t wall = local_.wall_ms();
  const auto margin = static_cast<std::uint64_t>(options_.watermark_margin.count());
  const auto lead = static_cast<std::uint64_t>(options_.watermark_lead.count());
  const std::uint64_t base = wall > margin ? wall - margin : 1;
  std::optional<std::uint64_t> hold = local_.oldest_hint_ms();
  if (auto in_flight = local_.oldest_in_flight_ms(); in_flight && (!hold || *in_flight < *hold)) hold = in_flight;
  if (auto debt = local_.oldest_debt_ms(); debt && (!hold || *debt < *hold)) hold = debt;
  if (hold && *hold < base + lead) {
    // Held: complete below min(hold, base) until further notice.
    s.watermark_held = true;
    s.watermark_ms = std::max<std::uint64_t>(1, std::min(*hold, base));
  } else if (have.watermark_held || have.watermark_ms == 0) {
    s.watermark_held = false;
    s.watermark_ms = base;  // and it advances with time from here
  }
  s.pending_hints = local_.pending_hints();
  s.owed = fold_owed(local_.owed());
  const HandOver h = local_.hand_over();
  s.hand_over_partitions = h.partitions_left;
  s.hand_over_bytes = h.bytes_moved;
  return s;
}

void ClusterAgent::check_state() {
  const std::uint64_t now = clock_.now_ms();
  timers_.at(now + static_cast<std::uint64_t>(options_.check_interval.count()), [alive = std::weak_ptr<int>(life_), this] {
    if (!alive.expired()) check_state();
  });
  const MemberState& have = membership_.state();
  if (have.lifecycle == Lifecycle::kLeft || have.lifecycle == Lifecycle::kRemoved) return;
  MemberState want = wanted_state(now);
  // Urgent: a first watermark, a hold that starts, ends or moves back. Otherwise at most
  // once per min_republish.
  const bool urgent = have.watermark_ms == 0 || want.watermark_held != have.watermark_held ||
                      (want.watermark_held && want.watermark_ms < have.watermark_ms) ||
                      owes_more(have.owed, want.owed);
  const bool minor = want.watermark_ms != have.watermark_ms || want.pending_hints != have.pending_hints ||
                     want.hand_over_partitions != have.hand_over_partitions ||
                     want.hand_over_bytes != have.hand_over_bytes || want.owed != have.owed;
  if (!urgent && !(minor && now - last_publish_ms_ >= static_cast<std::uint64_t>(options_.min_republish.count()))) {
    return;
  }
  want.load = local_.load();
  if (auto st = membership_.set_state(want); !st) {
    log_->debug("cluster: cannot publish this broker's state: {}", st.error().to_string());
    return;
  }
  last_publish_ms_ = now;
  ++states_published_;
  changed();  // this broker's own entry in the view
}

}  // namespace alldata::broker
