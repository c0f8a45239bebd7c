#include "repair/local_replica.h"

#include "on_pool.h"
#include "store_write.h"


namespace alldata::broker::repair {
namespace asio = boost::asio;


LocalReplica::LocalReplica(std::string name, storage::EventStore& store, asio::thread_pool& pool,
                           std::chrono::milliseconds write_timeout)
    : name_(std::move(name)), store_(store), pool_(pool), write_timeout_(write_timeout) {}

asio::awaitable<Result<std::vector<storage::IntervalDigest>>> LocalReplica::interval_digests(
    const std::string& stream, std::uint32_t partition, std::uint64_t from_ms,
    std::uint64_t to_ms) {
  co_return co_await broker::on_pool(pool_, [&] {
    return store_.interval_digests(stream, partition, from_ms, to_ms);
  });
}

asio::awaitable<Result<std::vector<storage::RangeDigest>>> LocalReplica::range_digests(
    const std::string& stream, std::uint32_t partition, const std::vector<Key>& bounds) {
  co_return co_await broker::on_pool(pool_, [&] {
    return store_.range_digests(stream, partition, bounds);
  });
}

asio::awaitable<Result<storage::KeyPage>> LocalReplica::keys(const std::string& stream,
                                                             std::uint32_t partition, Key from,
                                                             Key to, std::size_t max_keys) {
  co_return co_await broker::on_pool(pool_, [&] {
    return store_.keys(stream, partition, from, to, max_keys);
  });
}

asio::awaitable<Result<storage::EventBatch>> LocalReplica::events(const std::string& stream,
                                                                  std::uint32_t partition,
                                                                  const std::vector<Key>& keys,
                                                                  std::size_t max_bytes,
                                                                  std::optional<Key>* next) {
  co_return co_await broker::on_pool(pool_, [&] {
    return store_.events(stream, partition, keys, max_bytes, next);
  });
}

asio::awaitable<Status> LocalReplica::store(const storage::EventBatch& batch) {
  storage::EventBatch copy = batch;
  copy.set_repair(true);
  std::optional<std::string> no_hint;
  co_return co_await store_and_wait(store_, std::move(copy), std::move(no_hint), write_timeout_);
}

}  // namespace alldata::broker::repair
