#include "hand_over.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace alldata::broker {

namespace asio = boost::asio;

namespace {

std::uint64_t wall_now_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace

HandOverRunner::HandOverRunner(asio::any_io_executor executor, Membership& membership, repair::Repairer& repairer,
                               storage::EventStore& store, const ViewSource& views,
                               std::function<std::size_t()> writes_in_flight, HandOverOptions options,
                               std::shared_ptr<spdlog::logger> log)
    : executor_(std::move(executor)), membership_(membership), repairer_(repairer), store_(store), views_(views),
      writes_in_flight_(std::move(writes_in_flight)), options_(options), log_(std::move(log)) {}

asio::awaitable<void> HandOverRunner::sleep(std::chrono::milliseconds d) {
  asio::steady_timer timer(executor_);
  timer.expires_after(d);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

asio::awaitable<bool> HandOverRunner::wait_for_view() {
  for (;;) {
    if (stopped_) co_return false;
    auto v = views_.view();
    if (v && v->ready()) break;
    co_await sleep(options_.period);
  }
  // Let every member's view learn of this broker's lifecycle, so that their coordinators
  // send new writes to the incoming owners before the copy starts.
  co_await sleep(options_.period * 5);
  co_return !stopped_;
}

std::uint64_t HandOverRunner::since_start(std::uint64_t started_ms) const {
  // Writes coordinated before their coordinator knew of the change: copied again.
  const auto margin = static_cast<std::uint64_t>(options_.margin.count());
  return started_ms > margin ? started_ms - margin : 0;
}

asio::awaitable<repair::RepairSummary> HandOverRunner::until_clean(bool pull, std::uint64_t from_ms) {
  const repair::Progress progress = [this](std::uint64_t left, std::uint64_t bytes) {
    progress_.partitions_left = left;
    progress_.bytes_moved = bytes;
  };
  const char* what = pull ? "pulling partitions" : "pushing partitions to their new owners";
  for (;;) {
    repair::RepairSummary s = pull ? co_await repairer_.pull_future_partitions(from_ms, progress)
                                   : co_await repairer_.push_to_future_owners(from_ms, progress);
    if (s.pairs_failed == 0 || stopped_) co_return s;
    log_->warn("{}: {} of {} replica pairs failed (first: {}); retrying", what, s.pairs_failed, s.pairs,
               s.errors.empty() ? std::string() : s.errors.front());
    co_await sleep(options_.retry);
  }
}

asio::awaitable<void> HandOverRunner::join() {
  if (!co_await wait_for_view()) co_return;
  const std::uint64_t started = wall_now_ms();
  const repair::RepairSummary pulled = co_await until_clean(/*pull=*/true, 0);
  if (stopped_) co_return;
  const repair::RepairSummary again = co_await until_clean(/*pull=*/true, since_start(started));
  if (stopped_) co_return;
  MemberState st = membership_.state();
  st.lifecycle = Lifecycle::kNormal;
  st.hand_over_partitions = 0;
  progress_ = {};
  if (Status set = membership_.set_state(st); !set) {
    log_->error("joining: cannot become normal: {}", set.error().to_string());
    co_return;
  }
  log_->info("joined with data: pulled {} events ({} bytes) for {} partitions in {:.1f} s, then {} more; "
             "this broker is normal",
             pulled.stats.events_to_a, pulled.stats.bytes_to_a, pulled.partitions, pulled.seconds,
             again.stats.events_to_a);
}

asio::awaitable<void> HandOverRunner::drain() {
  auto last_log = std::chrono::steady_clock::now();
  for (;;) {
    if (stopped_) co_return;
    std::uint64_t hints = 0;
    for (const auto& [owner, count] : store_.pending_hints()) hints += count;
    const std::size_t writes = writes_in_flight_();
    if (hints == 0 && writes == 0) co_return;
    if (std::chrono::steady_clock::now() - last_log >= std::chrono::seconds(10)) {
      last_log = std::chrono::steady_clock::now();
      log_->info("leaving: waiting to deliver {} hints and settle {} writes before leaving", hints, writes);
    }
    co_await sleep(options_.period);
  }
}

asio::awaitable<void> HandOverRunner::leave(std::function<void()> on_left) {
  if (!co_await wait_for_view()) co_return;
  const std::uint64_t started = wall_now_ms();
  log_->info("leaving: pushing this broker's partitions to the owners that take them over");
  const repair::RepairSummary pushed = co_await until_clean(/*pull=*/false, 0);
  if (stopped_) co_return;
  co_await drain();
  if (stopped_) co_return;
  const repair::RepairSummary again = co_await until_clean(/*pull=*/false, since_start(started));
  if (stopped_) co_return;
  log_->info("leaving: pushed {} events ({} bytes) for {} partitions in {:.1f} s, then {} more; leaving the "
             "cluster",
             pushed.stats.events_to_b, pushed.stats.bytes_to_b, pushed.partitions, pushed.seconds,
             again.stats.events_to_b);
  progress_ = {};
  membership_.leave();
  // The departure spreads by gossip; the members then drop this broker from placement.
  co_await sleep(options_.period * 5);
  if (stopped_) co_return;
  log_->warn("this broker left the cluster for good: stopping");
  if (on_left) on_left();
}

}  // namespace alldata::broker
