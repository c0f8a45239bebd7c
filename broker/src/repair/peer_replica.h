// Another broker's copy of a partition as a repair Replica, over the peer protocol
// (digest, fetchRange, deliverHints for repair writes). Counts the bytes of every request
// and answer, so a repair can say what it cost on the network.
#pragma once

#include "alldata/broker/peer_client.h"
#include "repair/replica.h"

#include <chrono>

namespace alldata::broker::repair {

class PeerReplica final : public Replica {
 public:
  // Borrows `peers`, which must outlive the replica and every call.
  PeerReplica(PeerClient& peers, std::string node_id, std::string address,
              std::chrono::milliseconds timeout);

  const std::string& name() const override { return node_id_; }
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

  // Frame bytes of requests sent and answers received so far.
  std::uint64_t bytes_sent() const noexcept { return sent_; }
  std::uint64_t bytes_received() const noexcept { return received_; }

 private:
  boost::asio::awaitable<Result<protocol::FrameBuffer>> call(const PeerClient::RequestBuilder& build,
                                                             std::size_t size_hint);

  PeerClient& peers_;
  std::string node_id_;
  std::string address_;
  std::chrono::milliseconds timeout_;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
};

}  // namespace alldata::broker::repair
