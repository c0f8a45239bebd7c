#include "repair/repairer.h"

#include "on_pool.h"
#include "repair/local_replica.h"
#include "repair/peer_replica.h"

#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>

#include <kj/exception.h>

namespace alldata::broker::repair {
namespace asio = boost::asio;

namespace {

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

Repairer::Repairer(asio::any_io_executor executor, std::string self_id, storage::EventStore& store,
                   asio::thread_pool& storage_pool, PeerClient& peers, const ViewSource& views,
                   RepairerOptions options, std::shared_ptr<spdlog::logger> log)
    : executor_(executor), self_id_(std::move(self_id)), store_(store),
      storage_pool_(storage_pool), peers_(peers), views_(views), options_(options),
      log_(std::move(log)), wake_(executor) {}

asio::awaitable<void> Repairer::throttle(std::uint64_t bytes) {
  if (options_.bytes_per_sec == 0) co_return;
  const auto now = std::chrono::steady_clock::now();
  if (budget_until_ < now) budget_until_ = now;
  budget_until_ += std::chrono::microseconds(bytes * 1'000'000 / options_.bytes_per_sec);
  // Up to a quarter second of sending is allowed ahead of the budget.
  if (budget_until_ - now > std::chrono::milliseconds(250)) {
    asio::steady_timer t(executor_);
    t.expires_at(budget_until_ - std::chrono::milliseconds(250));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

namespace {

// The partners of this broker for (stream, p), by mode (placement indices translated to
// node ids):
//  - kOwned: the other live owners, when this broker owns p;
//  - kPull: the live owners, when this broker will own p (future placement);
//  - kPush: the live incoming owners (ClusterView::incoming_replicas), when this broker
//    owns p now and will not once it has left.
// `*unreachable`: a partner this mode needs is down (kPull: every owner; kPush: any
// incoming owner), so the partition cannot be handed over yet.
std::vector<std::string> partners(const ClusterView& view, const std::string& self,
                                  const std::string& stream, std::uint32_t p, Mode mode,
                                  bool* unreachable) {
  *unreachable = false;
  std::vector<std::string> out;
  const PlacementTable& now = view.placement();
  const PlacementTable* future = view.future_placement();
  auto holds = [&](const PlacementTable& table) {
    const auto set = table.replicas(stream, p);
    return std::any_of(set.begin(), set.end(),
                       [&](std::uint32_t i) { return table.members()[i].node_id == self; });
  };
  if (mode == Mode::kPush) {
    if (future == nullptr || !holds(now) || holds(*future)) return out;
    const auto owners = now.replicas(stream, p);
    for (const std::uint32_t i : future->replicas(stream, p)) {
      const MemberInfo& m = future->members()[i];
      const auto j = now.index_of(m.node_id);
      if (j && std::find(owners.begin(), owners.end(), *j) != owners.end()) continue;
      if (m.live) {
        out.push_back(m.node_id);
      } else {
        *unreachable = true;
      }
    }
    return out;
  }
  const PlacementTable* mine = mode == Mode::kPull ? future : &now;
  if (mine == nullptr || !holds(*mine)) return out;
  std::size_t others = 0;
  for (const std::uint32_t i : now.replicas(stream, p)) {
    const std::string& id = now.members()[i].node_id;
    if (id == self) continue;
    ++others;
    if (view.live(i)) out.push_back(id);
  }
  *unreachable = mode == Mode::kPull && others > 0 && out.empty();
  return out;
}

}  // namespace

asio::awaitable<RepairSummary> Repairer::run(const RepairScope& scope) {
  co_return co_await compare_all(scope, Mode::kOwned, nullptr);
}

asio::awaitable<RepairSummary> Repairer::pull_future_partitions(std::uint64_t from_ms,
                                                                const Progress& progress) {
  RepairScope scope;
  scope.from_ms = from_ms;
  co_return co_await compare_all(scope, Mode::kPull, &progress);
}

asio::awaitable<RepairSummary> Repairer::push_to_future_owners(std::uint64_t from_ms,
                                                               const Progress& progress) {
  RepairScope scope;
  scope.from_ms = from_ms;
  co_return co_await compare_all(scope, Mode::kPush, &progress);
}

asio::awaitable<RepairSummary> Repairer::compare_all(const RepairScope& scope, Mode mode,
                                                     const Progress* progress) {
  RepairSummary summary;
  while (busy_) {
    if (stopping_) co_return summary;
    asio::steady_timer t(executor_);
    t.expires_after(std::chrono::milliseconds(100));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  busy_ = true;
  struct Release {
    bool& busy;
    ~Release() { busy = false; }
  } release{busy_};  // also when something throws
  const auto started = std::chrono::steady_clock::now();
  // Every interval holding a time in [from, to).
  const std::uint64_t from_ms = scope.from_ms - scope.from_ms % options_.interval_ms;
  const std::uint64_t to_ms = scope.to_ms != 0 ? scope.to_ms : wall_ms() + 1;
  std::vector<std::string> streams;
  std::size_t unlisted = 0;  // live members whose streams could not be listed
  if (scope.stream.empty()) {
    streams = co_await known_streams(&unlisted);
  } else {
    streams = {scope.stream};
  }
  // A broker handing partitions over must not miss a stream or a partition: what could not
  // be looked at counts as failed, so that it runs again before it changes its lifecycle.
  if (mode != Mode::kOwned && unlisted > 0) {
    summary.failed(std::to_string(unlisted) + " members did not list their streams");
  }
  // The partitions to look at, as the view stands now: counted first, for progress.
  std::vector<std::pair<const std::string*, std::uint32_t>> work;
  if (auto view = views_.view()) {
    for (const auto& stream : streams) {
      for (std::uint32_t p = 0; p < view->placement().partitions(); ++p) {
        if (!scope.partitions.empty() &&
            std::find(scope.partitions.begin(), scope.partitions.end(), p) == scope.partitions.end()) {
          continue;
        }
        bool unreachable = false;
        const auto others = partners(*view, self_id_, stream, p, mode, &unreachable);
        if (!others.empty() || unreachable) work.emplace_back(&stream, p);
      }
    }
  }
  LocalReplica local(self_id_, store_, storage_pool_, options_.request_timeout);
  std::uint64_t left = work.size();
  if (progress) (*progress)(left, 0);
  for (const auto& [stream, p] : work) {
    if (stopping_) break;
    co_await repair_one(local, *stream, p, mode, from_ms, to_ms, summary);
    --left;
    if (progress) (*progress)(left, summary.stats.bytes_to_a + summary.stats.bytes_to_b);
  }
  summary.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  co_return summary;
}

asio::awaitable<void> Repairer::repair_one(LocalReplica& local, const std::string& stream,
                                           std::uint32_t p, Mode mode, std::uint64_t from_ms,
                                           std::uint64_t to_ms, RepairSummary& summary) {
  auto view = views_.view();
  if (!view || p >= view->placement().partitions()) co_return;
  const std::string where = stream + "/" + std::to_string(p);
  bool unreachable = false;
  const auto others = partners(*view, self_id_, stream, p, mode, &unreachable);
  if (unreachable) {
    summary.failed(where + (mode == Mode::kPull ? ": no live owner to pull from"
                                                : ": an incoming owner is not live"));
    if (mode == Mode::kPull) co_return;
  }
  if (others.empty()) co_return;
  ++summary.partitions;
  const RepairLimits limits;
  const Throttle throttle = [this](std::uint64_t bytes) { return this->throttle(bytes); };
  for (const auto& node : others) {
    if (stopping_) break;
    const ViewMember* m = view->member(node);
    if (m == nullptr || m->peer_address.empty()) {
      if (mode != Mode::kOwned) summary.failed(where + ": no peer address for " + node);
      continue;
    }
    PeerReplica remote(peers_, node, m->peer_address, options_.request_timeout);
    ++summary.pairs;
    auto r = co_await repair_partition(local, remote, stream, p, from_ms, to_ms,
                                       options_.interval_ms, limits, throttle);
    summary.bytes_exchanged += remote.bytes_sent() + remote.bytes_received();
    if (r) {
      summary.stats += *r;
    } else {
      summary.failed(where + " with " + node + ": " + r.error().to_string());
    }
  }
}

asio::awaitable<std::vector<std::string>> Repairer::known_streams(std::size_t* unlisted) {
  *unlisted = 0;
  // This broker's, and every live member's: a broker that lost its disk knows none.
  std::set<std::string> all;
  // Named results, never temporaries inside a co_await expression: GCC 12 destroys those
  // twice.
  auto local_streams = co_await on_pool(storage_pool_, [this] { return store_.streams(); });
  all.insert(local_streams.begin(), local_streams.end());
  auto view = views_.view();
  if (view) {
    for (const auto& m : view->members()) {
      if (m.self || !m.live() || m.peer_address.empty()) continue;
      PeerClient::RequestBuilder build = [](wire::Request::Builder req) {
        req.initMetadata().setStreams(true);
      };
      auto answer = co_await peers_.request(m.node_id, m.peer_address, build, 64,
                                            options_.request_timeout);
      if (!answer) {
        log_->debug("repair: cannot list the streams of {}: {}", m.node_id,
                    answer.error().to_string());
        ++*unlisted;
        continue;
      }
      try {
        auto reader = protocol::make_reader(*answer);
        for (auto s : reader.getRoot<wire::Response>().getMetadata().getStreams()) {
          all.emplace(protocol::view(s));
        }
      } catch (const kj::Exception& e) {
        log_->warn("repair: undecodable stream list from {}", m.node_id);
        ++*unlisted;
      }
    }
  }
  co_return std::vector<std::string>(all.begin(), all.end());
}

void Repairer::start() {
  if (options_.interval.count() <= 0) return;
  asio::co_spawn(executor_, background(), asio::detached);
}

void Repairer::stop() {
  stopping_ = true;
  wake_.cancel();
}

asio::awaitable<void> Repairer::background() {
  // Runs every `interval`, and 3 s after the placement last changed (a member joined, left,
  // was removed, died or came back): new owners then get their data without waiting.
  constexpr auto kSettle = std::chrono::seconds(3);
  auto last_run = std::chrono::steady_clock::now();
  std::shared_ptr<const PlacementTable> seen;
  std::optional<std::chrono::steady_clock::time_point> changed_at;
  while (!stopping_) {
    wake_.expires_after(std::min<std::chrono::milliseconds>(options_.interval,
                                                            std::chrono::seconds(1)));
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopping_) break;
    const auto now = std::chrono::steady_clock::now();
    const auto view = views_.view();
    if (view) {
      if (!seen) {
        seen = view->placement_ptr();
      } else if (seen != view->placement_ptr()) {
        seen = view->placement_ptr();
        changed_at = now;
      }
    }
    const bool due = now - last_run >= options_.interval;
    const bool moved = changed_at && now - *changed_at >= kSettle && view && view->coordinates();
    if (!due && !moved) continue;
    changed_at.reset();
    last_run = now;
    const RepairScope everything;
    const RepairSummary s = co_await run(everything);
    const auto& st = s.stats;
    const auto level = st.events_to_a + st.events_to_b > 0 || s.pairs_failed > 0
                           ? spdlog::level::info
                           : spdlog::level::debug;
    log_->log(level,
              "repair{}: {} partitions, {} replica pairs ({} failed), {} ranges compared, {} "
              "differed, {} events received, {} sent, {:.1f} s{}{}",
              moved ? " after a placement change" : "", s.partitions, s.pairs, s.pairs_failed,
              st.ranges_compared, st.ranges_differed, st.events_to_a, st.events_to_b, s.seconds,
              s.errors.empty() ? "" : "; first error: ",
              s.errors.empty() ? std::string() : s.errors.front());
  }
}

}  // namespace alldata::broker::repair
