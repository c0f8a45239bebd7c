#include "repair/peer_replica.h"

#include "wire_events.h"

#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <kj/exception.h>

#include <cstring>

namespace alldata::broker::repair {
namespace asio = boost::asio;

namespace {

Error undecodable(const std::string& node, const kj::Exception& e) {
  return Error(ErrorCode::kProtocolError,
               "undecodable repair answer from " + node + ": " + e.getDescription().cStr());
}

}  // namespace

PeerReplica::PeerReplica(PeerClient& peers, std::string node_id, std::string address,
                         std::chrono::milliseconds timeout)
    : peers_(peers), node_id_(std::move(node_id)), address_(std::move(address)),
      timeout_(timeout) {}

asio::awaitable<Result<protocol::FrameBuffer>> PeerReplica::call(const PeerClient::RequestBuilder& build,
                                                                 std::size_t size_hint) {
  auto answer = co_await peers_.request(node_id_, address_, build, size_hint, timeout_,
                                        &sent_);
  if (answer) received_ += answer->size() + protocol::kFrameHeaderBytes;
  co_return answer;
}

asio::awaitable<Result<std::vector<storage::IntervalDigest>>> PeerReplica::interval_digests(
    const std::string& stream, std::uint32_t partition, std::uint64_t from_ms,
    std::uint64_t to_ms) {
  // A named builder: GCC 12 mishandles temporaries with destructors in co_await.
  PeerClient::RequestBuilder build = [&](wire::Request::Builder req) {
      auto d = req.initDigest();
      d.setStream(protocol::text(stream));
      d.setPartition(partition);
      d.setFromMs(from_ms);
      d.setToMs(to_ms);
  };
  auto answer = co_await call(build, 64);
  if (!answer) co_return answer.error();
  try {
    auto reader = protocol::make_reader(*answer);
    std::vector<storage::IntervalDigest> out;
    for (auto d : reader.getRoot<wire::Response>().getDigest().getDigests()) {
      out.push_back({d.getStartMs(), d.getCount(), d.getXorHash()});
    }
    co_return out;
  } catch (const kj::Exception& e) {
    co_return undecodable(node_id_, e);
  }
}

asio::awaitable<Result<std::vector<storage::RangeDigest>>> PeerReplica::range_digests(
    const std::string& stream, std::uint32_t partition, const std::vector<Key>& bounds) {
  // A named builder: GCC 12 mishandles temporaries with destructors in co_await.
  PeerClient::RequestBuilder build = [&](wire::Request::Builder req) {
      auto d = req.initDigest();
      d.setStream(protocol::text(stream));
      d.setPartition(partition);
      auto list = d.initBounds(static_cast<unsigned>(bounds.size()));
      for (unsigned i = 0; i < bounds.size(); ++i) list.set(i, protocol::data(bounds[i].view()));
  };
  auto answer = co_await call(build, bounds.size() * 24 + 64);
  if (!answer) co_return answer.error();
  try {
    auto reader = protocol::make_reader(*answer);
    std::vector<storage::RangeDigest> out;
    for (auto d : reader.getRoot<wire::Response>().getDigest().getDigests()) {
      out.push_back({d.getCount(), d.getXorHash()});
    }
    co_return out;
  } catch (const kj::Exception& e) {
    co_return undecodable(node_id_, e);
  }
}

asio::awaitable<Result<storage::KeyPage>> PeerReplica::keys(const std::string& stream,
                                                            std::uint32_t partition, Key from,
                                                            Key to, std::size_t max_keys) {
  // A named builder: GCC 12 mishandles temporaries with destructors in co_await.
  PeerClient::RequestBuilder build = [&](wire::Request::Builder req) {
      auto f = req.initFetchRange();
      f.setStream(protocol::text(stream));
      f.setPartition(partition);
      f.setFrom(protocol::data(from.view()));
      f.setTo(protocol::data(to.view()));
      f.setMaxKeys(static_cast<std::uint32_t>(max_keys));
  };
  auto answer = co_await call(build, 96);
  if (!answer) co_return answer.error();
  try {
    auto reader = protocol::make_reader(*answer);
    auto r = reader.getRoot<wire::Response>().getFetchRange();
    storage::KeyPage page;
    const auto data = r.getKeys();
    if (data.size() % Key::kSize != 0) {
      co_return Error(ErrorCode::kProtocolError, "key listing from " + node_id_ + " is cut");
    }
    for (std::size_t at = 0; at < data.size(); at += Key::kSize) {
      page.keys.push_back(Key::from_raw(data.begin() + at));
    }
    page.done = r.getDone();
    page.next_from = to;
    if (!page.done) {
      auto next = Key::from_bytes(protocol::view(r.getNextFrom()));
      if (!next || !(from < *next)) {
        co_return Error(ErrorCode::kProtocolError, "key listing from " + node_id_ +
                                                       " does not move forward");
      }
      page.next_from = *next;
    }
    co_return page;
  } catch (const kj::Exception& e) {
    co_return undecodable(node_id_, e);
  }
}

asio::awaitable<Result<storage::EventBatch>> PeerReplica::events(const std::string& stream,
                                                                 std::uint32_t partition,
                                                                 const std::vector<Key>& keys,
                                                                 std::size_t /*max_bytes*/,
                                                                 std::optional<Key>* next) {
  // The peer bounds its answer by its own frame limit.
  // A named builder: GCC 12 mishandles temporaries with destructors in co_await.
  PeerClient::RequestBuilder build = [&](wire::Request::Builder req) {
      auto f = req.initFetchRange();
      f.setStream(protocol::text(stream));
      f.setPartition(partition);
      auto data = f.initKeys(static_cast<unsigned>(keys.size() * Key::kSize));
      for (std::size_t i = 0; i < keys.size(); ++i) {
        std::memcpy(data.begin() + i * Key::kSize, keys[i].data(), Key::kSize);
      }
  };
  auto answer = co_await call(build, keys.size() * Key::kSize + 96);
  if (!answer) co_return answer.error();
  try {
    auto reader = protocol::make_reader(*answer);
    auto r = reader.getRoot<wire::Response>().getFetchRange();
    storage::EventBatch batch(stream, partition);
    batch.set_repair(true);
    std::vector<storage::HeaderView> scratch;
    if (auto added = add_keyed_events(r.getEvents(), batch, scratch); !added) {
      co_return Error(ErrorCode::kProtocolError, node_id_ + ": " + added.error().message);
    }
    *next = std::nullopt;
    if (!r.getDone()) {
      auto k = Key::from_bytes(protocol::view(r.getNextFrom()));
      if (!k) co_return Error(ErrorCode::kProtocolError, "bad nextFrom from " + node_id_);
      *next = *k;
    }
    co_return batch;
  } catch (const kj::Exception& e) {
    co_return undecodable(node_id_, e);
  }
}

asio::awaitable<Status> PeerReplica::store(const storage::EventBatch& batch) {
  // deliverHints: stored like replicate, and into sealed intervals (a repair write). send()
  // cuts a batch that could pass the peer's frame limit; its bytes are counted as the
  // batch's records (key, length, value), which is what the frames carry, give or take.
  std::optional<std::string> no_hint;
  Status s = co_await peers_.send(node_id_, address_, PeerClient::Kind::kDeliverHints, batch,
                                  std::move(no_hint), timeout_);
  if (s) sent_ += batch.bytes();
  co_return s;
}

}  // namespace alldata::broker::repair
