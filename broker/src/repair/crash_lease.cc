#include "repair/crash_lease.h"

#include "on_pool.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>
#include <string>

namespace alldata::broker::repair {
namespace asio = boost::asio;

CrashLease::CrashLease(storage::EventStore& store, asio::any_io_executor executor, asio::thread_pool& storage_pool,
                       CrashLeaseOptions options, std::function<std::uint64_t()> wall_ms,
                       std::shared_ptr<spdlog::logger> log)
    : store_(store), executor_(executor), storage_pool_(storage_pool), options_(options), wall_ms_(std::move(wall_ms)),
      log_(std::move(log)), wake_(executor) {}

Result<std::optional<TimeWindow>> CrashLease::begin() {
  auto got = store_.get_meta(kMetaKey);
  if (!got) return got.error();
  std::optional<TimeWindow> left;
  if (*got && !(*got)->empty()) {
    std::uint64_t w = 0;
    const std::string& text = **got;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), w);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return Error(ErrorCode::kStorageError, "unreadable " + std::string(kMetaKey) + " in the store: '" + text + "'");
    }
    const auto before = static_cast<std::uint64_t>((options_.max_key_skew + options_.produce_timeout).count());
    const auto after = static_cast<std::uint64_t>((options_.period * 2 + options_.max_key_skew).count());
    left = TimeWindow{w > before ? w - before : 0, w + after};
  }
  if (auto st = store_.put_meta(kMetaKey, std::to_string(wall_ms_())); !st) return st.error();
  return left;
}

void CrashLease::start() { asio::co_spawn(executor_, renew(), asio::detached); }

asio::awaitable<void> CrashLease::renew() {
  const std::shared_ptr<bool> ended = ended_;
  while (!*ended) {
    wake_.expires_after(options_.period);
    co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (*ended) break;
    // Named, and captured by reference: see on_pool's callers (GCC 12).
    const std::string now = std::to_string(wall_ms_());
    auto st = co_await on_pool(storage_pool_, [this, &now] { return store_.put_meta(kMetaKey, now); });
    if (!st) log_->error("cannot renew the coordinator lease: {}", st.error().to_string());
  }
}

void CrashLease::end(bool clean) {
  if (*ended_) return;
  *ended_ = true;
  wake_.cancel();
  if (!clean) {
    log_->warn("stopping with writes in flight: the next start has every owner repair their times");
    return;
  }
  if (auto st = store_.put_meta(kMetaKey, ""); !st) {
    log_->error("cannot clear the coordinator lease: {}", st.error().to_string());
  }
}

}  // namespace alldata::broker::repair
