// This broker's own store as a repair Replica: reads run on the storage thread pool (never
// on an I/O thread), writes go through the store's writer like every other write.
#pragma once

#include "repair/replica.h"

#include <boost/asio/thread_pool.hpp>

#include <chrono>

namespace alldata::broker::repair {

class LocalReplica final : public Replica {
 public:
  // Borrows `store` and `pool`; both must outlive the replica and every call.
  LocalReplica(std::string name, storage::EventStore& store, boost::asio::thread_pool& pool,
               std::chrono::milliseconds write_timeout);

  const std::string& name() const override { return name_; }
  boost::asio::awaitable<Result<std::vector<storage::IntervalDigest>>> interval_digests(
      const std::string& stream, std::uint32_t partition, std::uint64_t from_ms,
      std::uint64_t to_ms) override;
  boost::asio::awaitable<Result<std::vector<storage::RangeDigest>>> range_digests(
      const std::string& stream, std::uint32_t partition, const std::vector<Key>& bounds) override;
  boost::asio::awaitable<Result<storage::KeyPage>> keys(const std::string& stream,
                                                        std::uint32_t partition, Key from, Key to,
                                                        std::size_t max_keys) override;
  boost::asio::awaitable<Result<storage::EventBatch>> events(const std::string& stream,
                                                             std::uint32_t partition,
                                                             const std::vector<Key>& keys,
                                                             std::size_t max_bytes,
                                                             std::optional<Key>* next) override;
  boost::asio::awaitable<Status> store(const storage::EventBatch& batch) override;

 private:
  std::string name_;
  storage::EventStore& store_;
  boost::asio::thread_pool& pool_;
  std::chrono::milliseconds write_timeout_;
};

}  // namespace alldata::broker::repair
