#include "membership/cluster_view.h"

#include <algorithm>
#include <limits>

namespace alldata::broker {

// ---- PlacementTable --------------------------------------------------------------------

PlacementTable::PlacementTable(std::vector<MemberInfo> members, PlacementPolicy policy, std::uint32_t partitions,
                               std::string coordinator_zone, std::string coordinator_region)
    : members_(std::move(members)),
      policy_(policy),
      partitions_(partitions),
      zone_(std::move(coordinator_zone)),
      region_(std::move(coordinator_region)) {
  std::sort(members_.begin(), members_.end(),
            [](const MemberInfo& a, const MemberInfo& b) { return a.node_id < b.node_id; });
  members_.erase(std::unique(members_.begin(), members_.end(),
                             [](const MemberInfo& a, const MemberInfo& b) { return a.node_id == b.node_id; }),
                 members_.end());
  for (std::uint32_t i = 0; i < members_.size(); ++i) index_.emplace(members_[i].node_id, i);
}

std::optional<std::uint32_t> PlacementTable::index_of(std::string_view node_id) const {
  auto it = index_.find(std::string(node_id));
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

bool PlacementTable::same_placement(const std::vector<MemberInfo>& members, const PlacementPolicy& policy,
                                    std::uint32_t partitions, std::string_view zone, std::string_view region) const {
  if (policy.replication_factor != policy_.replication_factor ||
      policy.other_zone_replicas != policy_.other_zone_replicas ||
      policy.other_region_replicas != policy_.other_region_replicas || partitions != partitions_ ||
      zone != zone_ || region != region_ || members.size() != members_.size()) {
    return false;
  }
  for (const auto& m : members) {
    auto i = index_of(m.node_id);
    if (!i || members_[*i].zone != m.zone || members_[*i].region != m.region) return false;
  }
  return true;
}

std::shared_ptr<const StreamPlacement> PlacementTable::stream(std::string_view stream) const {
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(std::string(stream));
    if (it != cache_.end()) return it->second;
  }
  // Computed outside the lock: two threads may both compute a new stream once.
  auto placement = std::make_shared<StreamPlacement>();
  placement->partitions.resize(partitions_);
  for (std::uint32_t p = 0; p < partitions_; ++p) {
    const auto ids = preference_list(stream, p, members_, policy_, zone_, region_);
    auto& list = placement->partitions[p];
    list.reserve(ids.size());
    for (const auto& id : ids) list.push_back(index_.at(id));
  }
  std::lock_guard lock(mu_);
  if (cache_.size() >= kMaxStreams) cache_.clear();
  auto [it, inserted] = cache_.emplace(std::string(stream), std::move(placement));
  return it->second;
}

std::vector<std::uint32_t> PlacementTable::replicas(std::string_view stream,
                                                    std::uint32_t partition) const {
  const auto placement = this->stream(stream);
  if (partition >= placement->partitions.size()) return {};
  const auto& list = placement->partitions[partition];
  const std::size_t rf = std::min<std::size_t>(policy_.replication_factor, list.size());
  return std::vector<std::uint32_t>(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(rf));
}

// ---- ClusterView -----------------------------------------------------------------------

// A member is incomplete from the oldest time any member not gone says it is owed
// (a dead holder's hints are still undelivered; a removed one's are lost, and repair
// restores those copies without holding scans back).
void ClusterView::mark_incomplete() {
  auto lower = [](std::uint64_t& since, std::uint64_t t) {
    t = std::max<std::uint64_t>(t, 1);
    if (since == 0 || t < since) since = t;
  };
  for (const ViewMember& holder : members_) {
    if (holder.lifecycle == Lifecycle::kLeft || holder.lifecycle == Lifecycle::kRemoved) continue;
    for (const Owed& o : holder.owed) {
      if (!o.node_id.empty()) {
        auto it = by_id_.find(o.node_id);
        if (it != by_id_.end()) lower(members_[it->second].incomplete_since_ms, o.since_ms);
        continue;
      }
      for (ViewMember& m : members_) {
        if (m.node_id != holder.node_id) lower(m.incomplete_since_ms, o.since_ms);
      }
    }
  }
}

ClusterView::ClusterView(Inputs in)
    : members_(std::move(in.members)), ready_(in.ready), status_(std::move(in.status)) {
  std::vector<MemberInfo> owners;
  std::vector<MemberInfo> future;  // owners that stay, and live joining members
  bool changing = false;
  for (std::size_t i = 0; i < members_.size(); ++i) {
    const ViewMember& m = members_[i];
    by_id_.emplace(m.node_id, i);
    if (m.lifecycle == Lifecycle::kNormal || m.lifecycle == Lifecycle::kLeaving) {
      owners.push_back(MemberInfo{m.node_id, m.zone, m.region, m.live()});
    }
    if (m.lifecycle == Lifecycle::kNormal) {
      future.push_back(MemberInfo{m.node_id, m.zone, m.region, m.live()});
    } else if (m.lifecycle == Lifecycle::kJoining && m.live()) {
      future.push_back(MemberInfo{m.node_id, m.zone, m.region, true});
      changing = true;
    } else if (m.lifecycle == Lifecycle::kLeaving) {
      changing = true;
    }
  }
  mark_incomplete();
  const std::string zone = members_.empty() ? "" : members_.front().zone;
  const std::string region = members_.empty() ? "" : members_.front().region;
  if (in.previous && in.previous->same_placement(owners, in.policy, in.partitions, zone, region)) {
    placement_ = std::move(in.previous);
  } else {
    placement_ = std::make_shared<PlacementTable>(owners, in.policy, in.partitions, zone, region);
  }
  live_.assign(placement_->members().size(), false);
  for (const auto& o : owners) live_[*placement_->index_of(o.node_id)] = o.live;
  if (changing && !future.empty()) {
    // Reused while unchanged: its per-stream placements are cached on the produce path.
    if (in.previous_future &&
        in.previous_future->same_placement(future, in.policy, in.partitions, zone, region)) {
      future_ = std::move(in.previous_future);
    } else {
      future_ = std::make_shared<PlacementTable>(std::move(future), in.policy, in.partitions,
                                                 zone, region);
    }
  }
}

std::vector<std::string> ClusterView::incoming_replicas(std::string_view stream,
                                                        std::uint32_t partition) const {
  std::vector<std::string> out;
  if (!future_) return out;
  const auto now = placement_->replicas(stream, partition);
  for (const std::uint32_t i : future_->replicas(stream, partition)) {
    const MemberInfo& m = future_->members()[i];
    if (!m.live) continue;
    const bool owns = std::any_of(now.begin(), now.end(), [&](std::uint32_t j) {
      return placement_->members()[j].node_id == m.node_id;
    });
    if (!owns) out.push_back(m.node_id);
  }
  return out;
}

const ViewMember* ClusterView::member(std::string_view node_id) const {
  auto it = by_id_.find(std::string(node_id));
  return it == by_id_.end() ? nullptr : &members_[it->second];
}

bool ClusterView::coordinates() const noexcept {
  if (!ready_ || members_.empty()) return false;
  const Lifecycle l = self().lifecycle;
  return l == Lifecycle::kNormal || l == Lifecycle::kLeaving;
}

std::uint64_t ClusterView::watermark_ms(std::uint64_t now_ms) const {
  std::uint64_t lowest = std::numeric_limits<std::uint64_t>::max();
  for (const auto& m : members_) {
    const bool owner = m.lifecycle == Lifecycle::kNormal || m.lifecycle == Lifecycle::kLeaving;
    if (!m.self && (!owner || !m.live())) continue;
    if (m.watermark_ms == 0) return 0;
    std::uint64_t w = m.watermark_ms;
    if (!m.watermark_held && now_ms > m.received_ms) w += now_ms - m.received_ms;
    lowest = std::min(lowest, w);
  }
  return lowest == std::numeric_limits<std::uint64_t>::max() ? 0 : lowest;
}

// ---- holders ---------------------------------------------------------------------------

std::shared_ptr<const ClusterView> ViewHolder::view() const {
  std::lock_guard lock(mu_);
  return view_;
}

void ViewHolder::set(std::shared_ptr<const ClusterView> view) {
  std::lock_guard lock(mu_);
  view_ = std::move(view);
}

StaticViewSource::StaticViewSource(std::vector<MemberInfo> members, std::string self_id, PlacementPolicy policy,
                                   std::uint32_t partitions)
    : members_(std::move(members)), self_id_(std::move(self_id)), policy_(policy), partitions_(partitions) {
  std::lock_guard lock(mu_);
  rebuild();
}

std::shared_ptr<const ClusterView> StaticViewSource::view() const { return holder_.view(); }

void StaticViewSource::set_live(std::string_view node_id, bool live) {
  std::lock_guard lock(mu_);
  for (auto& m : members_) {
    if (m.node_id == node_id) m.live = live;
  }
  rebuild();
}

void StaticViewSource::rebuild() {
  ClusterView::Inputs in;
  in.policy = policy_;
  in.partitions = partitions_;
  auto previous = holder_.view();
  if (previous) {
    in.previous = previous->placement_ptr();
    in.previous_future = previous->future_placement_ptr();
  }
  for (const auto& m : members_) {
    ViewMember v;
    v.node_id = m.node_id;
    v.zone = m.zone;
    v.region = m.region;
    v.liveness = m.live ? Liveness::kAlive : Liveness::kDead;
    v.self = m.node_id == self_id_;
    v.watermark_ms = 1;
    v.watermark_held = true;
    if (v.self) {
      in.members.insert(in.members.begin(), std::move(v));
    } else {
      in.members.push_back(std::move(v));
    }
  }
  holder_.set(std::make_shared<const ClusterView>(std::move(in)));
}

}  // namespace alldata::broker
