// Running blocking work (RocksDB reads, storage calls) on a thread pool from a coroutine.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <optional>
#include <utility>

namespace alldata::broker {

// Runs `f` on `pool` and resumes on the caller's executor with its result. (Through an
// optional: co_spawn needs a default-constructible result, which Result<T> often is not.)
template <class F>
auto on_pool(boost::asio::thread_pool& pool, F f) -> boost::asio::awaitable<decltype(f())> {
  using R = decltype(f());
  auto r = co_await boost::asio::co_spawn(
      pool,
      [f = std::move(f)]() mutable -> boost::asio::awaitable<std::optional<R>> { co_return f(); },
      boost::asio::use_awaitable);
  co_return std::move(*r);
}

}  // namespace alldata::broker
