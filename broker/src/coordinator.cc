#include "alldata/broker/coordinator.h"

#include "store_write.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <optional>

namespace alldata::broker {

namespace asio = boost::asio;

namespace {

// Shared between the waiting coroutine and the store's completion, which may come after the
// coroutine gave up (timeout): whoever is last frees it.
struct PendingWrite {
  explicit PendingWrite(const asio::any_io_executor& ex) : timer(ex) {}
  std::optional<Status> result;
  asio::steady_timer timer;
};

}  // namespace

asio::awaitable<Status> store_and_wait(storage::EventStore& store, storage::EventBatch batch,
                                       std::optional<std::string> hint_for,
                                       std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  auto pending = std::make_shared<PendingWrite>(ex);
  pending->timer.expires_after(timeout);
  auto done = [pending, ex](Status s) {
    asio::post(ex, [pending, s = std::move(s)]() mutable {
      pending->result = std::move(s);
      pending->timer.cancel();
    });
  };
  if (hint_for) {
    store.write_hint(*hint_for, std::move(batch), std::move(done));
  } else {
    store.write(std::move(batch), std::move(done));
  }
  // The completion is posted to this executor, so it cannot run before we wait here.
  if (!pending->result) {
    co_await pending->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (!pending->result) {
    co_return Error(ErrorCode::kTimeout,
                    "the local write did not finish within " + std::to_string(timeout.count()) +
                        " ms; it may still be stored: retry with the same keys");
  }
  co_return std::move(*pending->result);
}

asio::awaitable<Result<ProduceOutcome>> LocalCoordinator::produce(
    storage::EventBatch batch, CommitLevel /*level*/, std::chrono::milliseconds timeout) {
  auto st = co_await store_and_wait(store_, std::move(batch), std::nullopt, timeout);
  if (!st) co_return st.error();
  co_return ProduceOutcome{1};
}

}  // namespace alldata::broker
