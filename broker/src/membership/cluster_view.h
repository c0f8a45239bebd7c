// What the rest of the broker reads of the cluster: an immutable snapshot of the membership
// (ClusterView) with the placement of every stream cached (PlacementTable), published by
// the membership's executor and read from any thread. A produce costs one snapshot load,
// one cache lookup and a glance at the liveness of the nodes it writes to, whatever the
// cluster's size: the preference lists are computed once per stream and membership change.
//
// Placement members are the members whose lifecycle is normal or leaving, live or dead (a
// dead owner keeps its partitions and is written through hints); joining, left and removed
// members own nothing. While a member joins or leaves, the future placement is the one
// that will hold once it is done (normal members and live joining ones). Liveness changes make a new view that shares the placement table.
#pragma once

#include "alldata/broker/placement.h"
#include "membership/types.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace alldata::broker {

// The preference lists of one stream: for each partition, indices into
// PlacementTable::members(), replica set first (see placement.h).
struct StreamPlacement {
  std::vector<std::vector<std::uint32_t>> partitions;
};

// The placement members and policy, with a bounded cache of per-stream placements.
// Immutable but for the cache; thread-safe.
class PlacementTable {
 public:
  // `members` in any order (they are sorted by node id); the coordinator's own zone and
  // region order the failover part of every list.
  PlacementTable(std::vector<MemberInfo> members, PlacementPolicy policy, std::uint32_t partitions,
                 std::string coordinator_zone, std::string coordinator_region);

  const std::vector<MemberInfo>& members() const noexcept { return members_; }
  const PlacementPolicy& policy() const noexcept { return policy_; }
  std::uint32_t partitions() const noexcept { return partitions_; }
  // The index of `node_id` in members(), or nullopt.
  std::optional<std::uint32_t> index_of(std::string_view node_id) const;
  // True when `other` would place every stream the same (same members, zones, regions,
  // policy, partitions and coordinator location): a new view may then share this table.
  bool same_placement(const std::vector<MemberInfo>& members, const PlacementPolicy& policy,
                      std::uint32_t partitions, std::string_view zone, std::string_view region) const;

  // The placement of `stream`, computed on first use and cached (at most kMaxStreams
  // streams; the cache starts over when full).
  std::shared_ptr<const StreamPlacement> stream(std::string_view stream) const;

  // The replica set of (stream, partition): indices into members(), the first
  // min(replication_factor, members) of its preference list; empty for a partition out of
  // range.
  std::vector<std::uint32_t> replicas(std::string_view stream, std::uint32_t partition) const;

  static constexpr std::size_t kMaxStreams = 4096;

 private:
  std::vector<MemberInfo> members_;
  std::unordered_map<std::string, std::uint32_t> index_;
  PlacementPolicy policy_;
  std::uint32_t partitions_;
  std::string zone_;
  std::string region_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, std::shared_ptr<const StreamPlacement>> cache_;
};

// One member as the broker shows it (metadata, `alldata cluster`).
struct ViewMember {
  std::string node_id;
  std::string address;  // gossip
  std::string client_address;
  std::string peer_address;
  std::string zone;
  std::string region;
  Liveness liveness = Liveness::kAlive;
  Lifecycle lifecycle = Lifecycle::kNormal;
  std::uint64_t incarnation = 0;
  std::uint64_t pending_hints = 0;
  std::uint64_t hand_over_partitions = 0;  // MemberState: a join's or departure's progress
  std::uint64_t hand_over_bytes = 0;
  // What it publishes of others that may lack events (hints it holds, repair debts), and,
  // computed by the view from every member's list, the time from which this one may lack
  // events (0 = none known): scans read such a replica last (protocol/README.md).
  std::vector<Owed> owed;
  std::uint64_t incomplete_since_ms = 0;
  bool self = false;
  // Its watermark: held at watermark_ms, or watermark_ms at received_ms (this broker's
  // monotonic clock) and advancing with time since.
  std::uint64_t watermark_ms = 0;
  bool watermark_held = false;
  std::uint64_t received_ms = 0;

  // Alive or suspect, and not gone: worth writing to.
  bool live() const noexcept {
    return liveness != Liveness::kDead && lifecycle != Lifecycle::kLeft && lifecycle != Lifecycle::kRemoved;
  }
};

class ClusterView {
 public:
  struct Inputs {
    std::vector<ViewMember> members;  // this broker first
    PlacementPolicy policy;
    std::uint32_t partitions = 16;
    bool ready = true;                // the membership view is complete
    std::string status = "ready";
    std::shared_ptr<const PlacementTable> previous;  // reused when placement is unchanged
    std::shared_ptr<const PlacementTable> previous_future;  // the same for future_placement()
  };
  explicit ClusterView(Inputs inputs);

  const std::vector<ViewMember>& members() const noexcept { return members_; }
  const ViewMember& self() const noexcept { return members_.front(); }
  const ViewMember* member(std::string_view node_id) const;
  const PlacementTable& placement() const noexcept { return *placement_; }
  const std::shared_ptr<const PlacementTable>& placement_ptr() const noexcept { return placement_; }
  // Liveness of placement member `index` (PlacementTable::members()).
  bool live(std::uint32_t index) const noexcept { return live_[index]; }

  // This broker may coordinate writes: its view is complete and it owns partitions or is
  // allowed to (normal or leaving).
  bool coordinates() const noexcept;
  bool ready() const noexcept { return ready_; }
  const std::string& status() const noexcept { return status_; }

  // Live members that will own (stream, partition) once the members joining and leaving
  // are done and do not own it now: joining members, and owners that take over a leaving
  // member's share. Coordinators also write to them (without counting them), so they
  // receive new writes while the old ones are pulled or pushed to them. Empty (and free)
  // while no member is joining or leaving.
  std::vector<std::string> incoming_replicas(std::string_view stream, std::uint32_t partition) const;
  // That placement (normal owners and live joining members: leaving ones gone), or null
  // while none is joining or leaving.
  const PlacementTable* future_placement() const noexcept { return future_.get(); }
  const std::shared_ptr<const PlacementTable>& future_placement_ptr() const noexcept {
    return future_;
  }

  // The cluster's completeness watermark at this broker's monotonic `now_ms`: the minimum
  // over live placement members (and this broker) of each one's watermark; 0 while one of
  // them has not published any.
  std::uint64_t watermark_ms(std::uint64_t now_ms) const;

 private:
  void mark_incomplete();

  std::vector<ViewMember> members_;
  std::unordered_map<std::string, std::size_t> by_id_;
  std::shared_ptr<const PlacementTable> placement_;
  std::shared_ptr<const PlacementTable> future_;  // owners + live joining members, or null
  std::vector<bool> live_;
  bool ready_;
  std::string status_;
};

// Where the coordinator and sessions get the current view. Implementations are cheap and
// thread-safe.
class ViewSource {
 public:
  virtual ~ViewSource() = default;
  virtual std::shared_ptr<const ClusterView> view() const = 0;
};

// Holds the latest view: the membership's executor sets it, anyone reads it.
class ViewHolder final : public ViewSource {
 public:
  std::shared_ptr<const ClusterView> view() const override;
  void set(std::shared_ptr<const ClusterView> view);

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const ClusterView> view_;
};

// A fixed member list whose liveness can be changed: for tests and for tools. Thread-safe.
// `self_id` must name one of `members`.
class StaticViewSource final : public ViewSource {
 public:
  StaticViewSource(std::vector<MemberInfo> members, std::string self_id, PlacementPolicy policy = {},
                   std::uint32_t partitions = 16);
  std::shared_ptr<const ClusterView> view() const override;
  void set_live(std::string_view node_id, bool live);

 private:
  void rebuild();
  std::mutex mu_;  // guards members_
  std::vector<MemberInfo> members_;
  std::string self_id_;
  PlacementPolicy policy_;
  std::uint32_t partitions_;
  ViewHolder holder_;
};

}  // namespace alldata::broker
