#include "hinted_handoff.h"

#include "store_write.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace alldata::broker {

namespace asio = boost::asio;

HintedHandoff::HintedHandoff(storage::EventStore& store, asio::thread_pool& storage_pool, PeerClient& peers,
                             const ViewSource& views, Clock& clock, std::chrono::milliseconds interval,
                             std::chrono::milliseconds timeout, std::shared_ptr<spdlog::logger> log)
    : store_(store),
      storage_pool_(storage_pool),
      peers_(peers),
      views_(views),
      clock_(clock),
      interval_(interval),
      timeout_(timeout),
      log_(std::move(log)) {}

void HintedHandoff::start(asio::any_io_executor executor) {
  asio::co_spawn(executor, loop(executor), [log = log_](std::exception_ptr e) {
    if (e) log->error("hinted handoff loop failed: {}", describe_exception(e));
  });
}

asio::awaitable<void> HintedHandoff::loop(asio::any_io_executor executor) {
  asio::steady_timer timer(executor);
  while (!stopping_) {
    timer.expires_after(interval_);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (stopping_) break;
    const auto view = views_.view();
    for (const auto& [target, count] : store_.pending_hints()) {
      if (count == 0 || stopping_) continue;
      const HintDecision d = schedule_.decide(target, view.get(), clock_.now_ms());
      if (d.action == HintAction::kWait) continue;
      bool done = false;  // an if, not ?: around co_await (GCC 12)
      if (d.action == HintAction::kRetarget) {
        done = co_await retarget(target);
      } else {
        done = co_await deliver(target, d.address, d.first_failure);
      }
      schedule_.finished(target, done, clock_.now_ms());
    }
  }
}

asio::awaitable<bool> HintedHandoff::deliver(const std::string& target, const std::string& address,
                                             bool first_failure) {
  std::uint64_t delivered = 0;
  // Each page starts after the last: the hints delivered before are deleted, and walking
  // over their tombstones again would make every page slower than the one before.
  std::string resume_after;
  for (int pages = 0; pages < 100 && !stopping_; ++pages) {
    // Named lambdas and optionals, never temporaries with destructors inside a co_await
    // expression: GCC 12 destroys those twice.
    auto read = [this, &target, &resume_after]() -> asio::awaitable<Result<storage::HintPage>> {
      co_return store_.read_hints(target, 1000, resume_after);
    };
    auto page = co_await asio::co_spawn(storage_pool_, read, asio::use_awaitable);
    if (!page) {
      log_->error("cannot read hints for {}: {}", target, page.error().to_string());
      co_return false;
    }
    for (const auto& batch : page->batches) {
      std::optional<std::string> no_hint;
      Status sent = co_await peers_.send(target, address, PeerClient::Kind::kDeliverHints, batch,
                                         std::move(no_hint), timeout_);
      if (!sent) {
        log_->log(first_failure ? spdlog::level::warn : spdlog::level::debug,
                  "hinted handoff to {} paused (retrying with back-off): {}", target, sent.error().to_string());
        co_return false;
      }
      auto remove = [this, &target, &batch]() -> asio::awaitable<Status> { co_return store_.delete_hints(target, batch); };
      Status deleted = co_await asio::co_spawn(storage_pool_, remove, asio::use_awaitable);
      if (!deleted) {
        log_->error("cannot delete delivered hints for {}: {}", target, deleted.error().to_string());
        co_return false;
      }
      delivered += batch.size();
    }
    if (page->done || page->batches.empty()) break;
    resume_after = std::move(page->resume_after);
  }
  if (delivered > 0) log_->info("delivered {} hinted events to {}", delivered, target);
  co_return true;
}

asio::awaitable<bool> HintedHandoff::retarget(const std::string& target) {
  std::uint64_t moved = 0;
  std::string resume_after;
  for (int pages = 0; pages < 100 && !stopping_; ++pages) {
    auto read = [this, &target, &resume_after]() -> asio::awaitable<Result<storage::HintPage>> {
      co_return store_.read_hints(target, 1000, resume_after);
    };
    auto page = co_await asio::co_spawn(storage_pool_, read, asio::use_awaitable);
    if (!page) co_return false;
    const auto view = views_.view();
    if (!view) co_return false;
    for (const auto& batch : page->batches) {
      if (batch.partition() >= view->placement().partitions()) continue;
      std::size_t stored = 0;
      const auto owners = view->placement().replicas(batch.stream(), batch.partition());
      for (const std::uint32_t owner : owners) {
        const std::string& node = view->placement().members()[owner].node_id;
        const ViewMember* m = view->member(node);
        if (!view->live(owner) || m == nullptr || m->peer_address.empty()) continue;
        Status sent;
        if (m->self) {
          storage::EventBatch copy = batch;
          std::optional<std::string> no_hint;
          sent = co_await store_and_wait(store_, std::move(copy), std::move(no_hint), timeout_);
        } else {
          std::optional<std::string> no_hint;
          sent = co_await peers_.send(node, m->peer_address, PeerClient::Kind::kDeliverHints,
                                      batch, std::move(no_hint), timeout_);
        }
        if (!sent) co_return false;
        ++stored;
      }
      if (stored == 0) co_return false;  // no live owner: keep the hints
      auto remove = [this, &target, &batch]() -> asio::awaitable<Status> {
        co_return store_.delete_hints(target, batch);
      };
      if (Status deleted = co_await asio::co_spawn(storage_pool_, remove, asio::use_awaitable);
          !deleted) {
        co_return false;
      }
      moved += batch.size();
    }
    if (page->done || page->batches.empty()) break;
    resume_after = std::move(page->resume_after);
  }
  if (moved > 0) {
    log_->info("{} hints held for {}, which is gone, went to their partitions' owners", moved,
               target);
  }
  co_return true;
}

}  // namespace alldata::broker
