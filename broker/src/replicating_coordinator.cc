// ReplicatingCoordinator: one produce is one shared `Write` record; one coroutine per replica
// of the replica set places that replica's copy (on the owner, or else as a hint on the
// next broker of the preference order), and the produce() coroutine sleeps on a timer until
// the record has an answer or the deadline passes. Everything runs on the caller's
// executor, so the record needs no locks.
#include "alldata/broker/replicating_coordinator.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <set>
#include <utility>

namespace alldata::broker {

namespace asio = boost::asio;

// ---- one produce ---------------------------------------------------------------------------

namespace {

std::string plural(std::size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

// Where a node write's outcome meets the coroutine waiting for it, which may have given up.
struct Attempt {
  explicit Attempt(const asio::any_io_executor& ex) : timer(ex) {}
  std::optional<Status> result;
  bool gave_up = false;
  asio::steady_timer timer;
};

}  // namespace

struct ReplicatingCoordinator::Write {
  Write(const asio::any_io_executor& ex, ReplicaWriter& w, std::shared_ptr<spdlog::logger> log,
        std::shared_ptr<Counters> c)
      : writer(w), logger(std::move(log)), counters(std::move(c)), wake(ex) {}

  // The last reference goes once every placement and attempt of this produce is over: its
  // events are then settled, and no longer hold the watermark back.
  ~Write() {
    if (!registered) return;
    std::lock_guard lock(counters->mu);
    counters->unsettled_min_ms.erase(counters->unsettled_min_ms.find(*registered));
  }
  void register_unsettled() {
    registered = batch.min_time_ms();
    std::lock_guard lock(counters->mu);
    counters->unsettled_min_ms.insert(*registered);
  }
  std::optional<std::uint64_t> registered;

  ReplicaWriter& writer;
  std::shared_ptr<spdlog::logger> logger;
  // ReplicationOptions::on_lost_copy (the coordinator outlives its writes), or null.
  const std::function<void(const std::string&, const storage::EventBatch&)>* on_lost_copy = nullptr;
  std::shared_ptr<Counters> counters;
  std::chrono::milliseconds replica_timeout{0};

  storage::EventBatch batch{"", 0};
  std::string what;  // "stream/partition" for messages
  CommitLevel level = CommitLevel::kQuorum;
  std::uint32_t rf = 0;
  std::uint32_t needed = 0;

  // Where the batch goes: the view it was placed with, and its preference list (indices
  // into view->placement().members(): the replica set, then the failover order).
  std::shared_ptr<const ClusterView> view;
  std::shared_ptr<const StreamPlacement> placement;
  const std::vector<std::uint32_t>* list = nullptr;
  std::size_t owner_count = 0;
  std::size_t next_fallback = 0;
  std::optional<std::uint32_t> self;
  std::vector<std::uint32_t> used;    // nodes that were given a write of this batch
  std::vector<std::uint32_t> failed;  // nodes whose write failed or timed out

  const std::string& node(std::uint32_t i) const { return view->placement().members()[i].node_id; }
  bool live(std::uint32_t i) const { return view->live(i); }
  static bool contains(const std::vector<std::uint32_t>& v, std::uint32_t i) {
    return std::find(v.begin(), v.end(), i) != v.end();
  }

  std::uint32_t acks = 0;            // owners that stored their replica
  std::uint32_t hints = 0;           // copies stored as hints
  std::uint32_t lost = 0;            // copies stored nowhere
  std::uint32_t owners_pending = 0;  // owners not yet known to have acked or failed
  std::uint32_t copies_pending = 0;  // replica-set copies not yet placed or lost
  std::vector<std::string> failures;  // "node: reason", for the error message

  std::optional<Result<ProduceOutcome>> answer;
  asio::steady_timer wake;  // produce() sleeps on it until answer or deadline

  void set_answer(Result<ProduceOutcome> r) {
    if (answer) return;
    answer = std::move(r);
    wake.cancel();
  }

  std::string shortfall_message(std::string_view why) const {
    const std::uint32_t want = level == CommitLevel::kAny ? 1 : needed;
    const std::uint32_t have = level == CommitLevel::kAny ? acks + hints : acks;
    std::string m = std::string(to_string(level)) + " needs " +
                    (level == CommitLevel::kAny ? std::string("1 durable copy")
                                                : plural(want, "replica", "replicas") +
                                                      " (replication factor " +
                                                      std::to_string(rf) + ")") +
                    " of " + what + ": " + std::string(why) + "; " + std::to_string(have) +
                    " created, " + plural(want - std::min(want, have), "replica has", "replicas have") +
                    " NOT been created";
    if (hints > 0 && level != CommitLevel::kAny) {
      m += " (" + plural(hints, "hint", "hints") + " stored for unreachable replicas)";
    }
    if (!failures.empty()) m += "; failures: " + join(failures, "; ");
    return m;
  }

  // Answers once the level is met or cannot be met any more.
  void check() {
    if (answer) return;
    if (level == CommitLevel::kAny) {
      if (acks + hints >= 1) {
        set_answer(ProduceOutcome{acks});
      } else if (copies_pending == 0) {
        set_answer(Error(ErrorCode::kNotEnoughReplicas,
                         shortfall_message("no broker stored the events")));
      }
      return;
    }
    if (acks >= needed) {
      set_answer(ProduceOutcome{acks});
    } else if (acks + owners_pending < needed) {
      set_answer(Error(ErrorCode::kNotEnoughReplicas,
                       shortfall_message("too many replicas failed")));
    }
  }

  // The next live broker of the failover order not given this batch yet; as a last
  // resort the coordinator itself (see placement.h and broker/README.md).
  std::optional<std::uint32_t> take_fallback() {
    while (owner_count + next_fallback < list->size()) {
      const std::uint32_t n = (*list)[owner_count + next_fallback++];
      if (live(n) && !contains(used, n)) {
        used.push_back(n);
        return n;
      }
    }
    if (self && live(*self) && !contains(failed, *self)) {
      // Only once per owner would be pointless to track: a second hint for the same owner
      // cannot happen (this owner's loop ends on success), and a failure marks self failed.
      used.push_back(*self);
      return self;
    }
    return std::nullopt;
  }

  void copy_done() {
    --copies_pending;
    if (copies_pending == 0 && answer && !*answer) {
      logger->info("write of {} finished after its answer: {} replicas, {} hints, {} lost", what,
                   acks, hints, lost);
    }
  }
};

// Runs one node write as its own coroutine and waits for it at most the replica timeout. A
// write given up on keeps running; its late outcome is logged.
asio::awaitable<Status> ReplicatingCoordinator::attempt(std::shared_ptr<Write> w, std::string node,
                                                        std::optional<std::string> hint_for) {
  auto ex = co_await asio::this_coro::executor;
  auto a = std::make_shared<Attempt>(ex);
  a->timer.expires_after(w->replica_timeout);
  ++w->counters->in_flight;
  auto logger = w->logger;
  asio::co_spawn(
      ex,
      [w, a, node, hint_for]() -> asio::awaitable<void> {
        Status s;
        try {
          s = co_await w->writer.write(node, w->batch, hint_for);
        } catch (const std::exception& e) {
          s = Error(ErrorCode::kInternal, std::string("replica writer threw: ") + e.what());
        }
        --w->counters->in_flight;
        if (a->gave_up) {
          if (s) {
            w->logger->info("late write of {} to {}{} stored after its timeout", w->what, node,
                            hint_for ? " (hint for " + *hint_for + ")" : std::string());
          } else {
            w->logger->info("late write of {} to {} failed: {}", w->what, node,
                            s.error().to_string());
          }
        }
        a->result = std::move(s);
        a->timer.cancel();
      },
      [logger](std::exception_ptr e) {
        if (e) logger->error("replica write coroutine ended with an exception");
      });
  // The write's completion runs on this executor, so it cannot slip in before the wait.
  if (!a->result) co_await a->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!a->result) {
    a->gave_up = true;
    co_return Error(ErrorCode::kTimeout, "no answer within " +
                                             std::to_string(w->replica_timeout.count()) + " ms");
  }
  co_return std::move(*a->result);
}

// Places the copy of owner `index`: on the owner if it is live and answers in time, else as
// a hint on the next broker of the failover order, until one stores it or none is left.
asio::awaitable<void> ReplicatingCoordinator::place(std::shared_ptr<Write> w, std::size_t index) {
  const std::uint32_t owner_index = (*w->list)[index];
  const std::string owner = w->node(owner_index);
  if (w->live(owner_index)) {
    // Named, never converted inside co_await: GCC 12 destroys such temporaries twice.
    std::optional<std::string> no_hint;
    Status s = co_await attempt(w, owner, std::move(no_hint));
    --w->owners_pending;
    if (s) {
      ++w->acks;
      w->check();
      w->copy_done();
      co_return;
    }
    if (s.error().code == ErrorCode::kKeyConflict) {
      // The owner holds a key of the batch with other content, which stays: a hint would be
      // refused the same way. The produce fails with the owner's answer.
      w->set_answer(s.error());
      w->copy_done();
      co_return;
    }
    w->failed.push_back(owner_index);
    w->failures.push_back(owner + ": " + s.error().to_string());
    w->logger->warn("replica {} of {} failed: {}; writing a hint elsewhere", owner, w->what,
                    s.error().to_string());
  } else {
    --w->owners_pending;
    w->failures.push_back(owner + ": not live");
  }
  w->check();

  for (;;) {
    std::optional<std::uint32_t> node_index = w->take_fallback();
    if (!node_index) {
      ++w->lost;
      ++w->counters->lost;
      w->logger->warn("no broker left to hold a hint for {} of {}: that copy is not stored "
                      "(anti-entropy repair restores it from the others)",
                      owner, w->what);
      if (w->on_lost_copy) (*w->on_lost_copy)(owner, w->batch);
      break;
    }
    const std::string node = w->node(*node_index);
    std::optional<std::string> hint_for = owner;
    Status s = co_await attempt(w, node, std::move(hint_for));
    if (s) {
      ++w->hints;
      break;
    }
    w->failed.push_back(*node_index);
    w->failures.push_back(node + " (hint for " + owner + "): " + s.error().to_string());
    w->logger->warn("hint for {} of {} on {} failed: {}", owner, w->what, node, s.error().to_string());
  }
  w->copy_done();
  w->check();
}

asio::awaitable<void> ReplicatingCoordinator::mirror(std::shared_ptr<Write> w, std::string node) {
  std::optional<std::string> no_hint;  // named: GCC 12 destroys co_await temporaries twice
  Status s = co_await attempt(w, node, std::move(no_hint));
  if (!s) {
    w->logger->debug("write of {} to incoming replica {} failed (repair copies it later): {}", w->what,
                     node, s.error().to_string());
    if (w->on_lost_copy && s.error().code != ErrorCode::kKeyConflict) (*w->on_lost_copy)(node, w->batch);
  }
}

ReplicatingCoordinator::ReplicatingCoordinator(const ViewSource& views, ReplicaWriter& writer,
                                               ReplicationOptions options)
    : views_(views), writer_(writer), options_(std::move(options)) {
  options_.policy.replication_factor =
      std::max<std::uint32_t>(1, options_.policy.replication_factor);
}

asio::awaitable<Result<ProduceOutcome>> ReplicatingCoordinator::produce(
    storage::EventBatch batch, CommitLevel level, std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto w = std::make_shared<Write>(ex, writer_, options_.logger, counters_);
  if (options_.on_lost_copy) w->on_lost_copy = &options_.on_lost_copy;
  w->replica_timeout = options_.replica_timeout;
  w->what = batch.stream() + "/" + std::to_string(batch.partition());
  w->level = level;
  w->rf = options_.policy.replication_factor;
  w->needed = required_replicas(level, w->rf);

  auto view = views_.view();
  if (!view || !view->coordinates()) {
    co_return Error(ErrorCode::kNotReady,
                    "this broker does not coordinate writes yet (" +
                        (view ? std::string(to_string(view->self().lifecycle)) + ", " + view->status()
                              : std::string("no membership view")) +
                        "): send the produce to another broker");
  }
  w->view = view;
  w->placement = view->placement().stream(batch.stream());
  if (batch.partition() >= w->placement->partitions.size()) {
    co_return Error(ErrorCode::kInvalidPartition, "partition " + std::to_string(batch.partition()) + " of " +
                                                       std::to_string(w->placement->partitions.size()));
  }
  w->list = &w->placement->partitions[batch.partition()];
  w->self = view->placement().index_of(view->self().node_id);
  const std::size_t owner_count = std::min<std::size_t>(w->rf, w->list->size());
  w->owner_count = owner_count;

  // Up-front check, as the original: never start a write that cannot meet the level.
  if (level == CommitLevel::kAny) {
    if (!w->self || !w->live(*w->self)) {
      co_return Error(ErrorCode::kNotEnoughReplicas, w->shortfall_message("no live broker is known"));
    }
  } else {
    if (owner_count < w->needed) {
      co_return Error(ErrorCode::kNotEnoughReplicas,
                      w->shortfall_message("the cluster has only " +
                                           plural(w->list->size(), "member", "members")));
    }
    std::vector<std::string> dead;
    for (std::size_t i = 0; i < owner_count; ++i) {
      if (!w->live((*w->list)[i])) dead.push_back(w->node((*w->list)[i]));
    }
    if (owner_count - dead.size() < w->needed) {
      co_return Error(ErrorCode::kNotEnoughReplicas,
                      w->shortfall_message(plural(owner_count - dead.size(), "replica is", "replicas are") +
                                           " live (not live: " + join(dead, ", ") + ")"));
    }
  }

  w->batch = std::move(batch);
  w->register_unsettled();
  w->owners_pending = static_cast<std::uint32_t>(owner_count);
  w->copies_pending = static_cast<std::uint32_t>(owner_count);
  w->wake.expires_after(timeout);
  for (std::size_t i = 0; i < owner_count; ++i) {
    ++counters_->in_flight;
    auto counters = counters_;
    auto logger = options_.logger;
    asio::co_spawn(ex, place(w, i), [counters, logger](std::exception_ptr e) {
      --counters->in_flight;
      if (e) logger->error("replica placement coroutine ended with an exception");
    });
  }

  // Brokers that will own this partition once a join or a departure is done get the batch
  // too, without counting toward the level and without hints: what they miss is pulled by
  // a joining broker, or pushed by a leaving one, before the placement changes.
  for (const auto& node : view->incoming_replicas(w->batch.stream(), w->batch.partition())) {
    ++counters_->in_flight;
    auto counters = counters_;
    auto logger = options_.logger;
    asio::co_spawn(ex, mirror(w, node), [counters, logger](std::exception_ptr e) {
      --counters->in_flight;
      if (e) logger->error("incoming-replica write coroutine ended with an exception");
    });
  }

  if (!w->answer) co_await w->wake.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!w->answer) {
    w->set_answer(Error(
        ErrorCode::kTimeout,
        std::string(to_string(level)) + " was not met for " + w->what + " within " +
            std::to_string(timeout.count()) + " ms (" + std::to_string(w->acks) + " of " +
            std::to_string(level == CommitLevel::kAny ? 1 : w->needed) +
            " needed replicas acknowledged); copies may still land: retry with the same keys"));
  }
  co_return *w->answer;
}

std::optional<std::uint64_t> ReplicatingCoordinator::oldest_in_flight_ms() const {
  std::lock_guard lock(counters_->mu);
  if (counters_->unsettled_min_ms.empty()) return std::nullopt;
  return *counters_->unsettled_min_ms.begin();
}

}  // namespace alldata::broker
