// Session: the anti-entropy requests a peer sends (digest, fetchRange). Reads run on the
// storage pool; answers are bounded (bounds, keys and bytes per request) whatever is asked.
#include "session.h"

#include "on_pool.h"
#include "wire_events.h"

#include "alldata/protocol/names.h"
#include "alldata/protocol/wire.h"

#include <kj/exception.h>

#include <vector>

namespace alldata::broker {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxBounds = 65;
constexpr std::size_t kMaxKeys = 65536;

// The stream and partition of a repair request, checked.
template <class R>
Status check_target(const R& r, const BrokerOptions& options, std::string* stream) {
  *stream = protocol::view(r.getStream());
  if (auto ok = validate_stream_name(*stream); !ok) return ok.error();
  if (r.getPartition() >= options.partitions) {
    return Error(ErrorCode::kInvalidPartition,
                 "partition " + std::to_string(r.getPartition()) + " does not exist here");
  }
  return {};
}

Result<std::vector<Key>> keys_of(capnp::Data::Reader data) {
  if (data.size() % Key::kSize != 0) {
    return Error(ErrorCode::kBadRequest, "keys must be 16 bytes each");
  }
  std::vector<Key> keys;
  for (std::size_t at = 0; at < data.size(); at += Key::kSize) {
    keys.push_back(Key::from_raw(data.begin() + at));
    if (keys.size() > 1 && !(keys[keys.size() - 2] < keys.back())) {
      return Error(ErrorCode::kBadRequest, "keys must be strictly ascending");
    }
  }
  return keys;
}

}  // namespace

asio::awaitable<void> Session::handle_digest(protocol::FrameBuffer frame) {
  std::uint64_t correlation_id = 0;
  std::string stream;
  std::uint32_t partition = 0;
  std::uint64_t from_ms = 0;
  std::uint64_t to_ms = 0;
  std::vector<Key> bounds;
  auto parse = [&](wire::Request::Reader request) -> Status {
    auto d = request.getDigest();
    if (auto ok = check_target(d, ctx_.options, &stream); !ok) return ok.error();
    partition = d.getPartition();
    from_ms = d.getFromMs();
    to_ms = d.getToMs();
    if (d.getBounds().size() > kMaxBounds) {
      return Error(ErrorCode::kBadRequest,
                   "at most " + std::to_string(kMaxBounds) + " digest bounds per request");
    }
    for (auto b : d.getBounds()) {
      auto k = Key::from_bytes(protocol::view(b));
      if (!k) return Error(ErrorCode::kBadRequest, "digest bound: " + k.error().message);
      bounds.push_back(*k);
    }
    return {};
  };
  if (!read_request(frame, "digest", &correlation_id, parse)) co_return;

  capnp::MallocMessageBuilder mb;
  auto resp = ok_response(mb, correlation_id);
  if (bounds.empty()) {
    auto digests = co_await on_pool(ctx_.storage_pool, [&] {
      return ctx_.store.interval_digests(stream, partition, from_ms, to_ms);
    });
    if (!digests) co_return fail_request(correlation_id, digests.error());
    auto list = resp.initDigest().initDigests(static_cast<unsigned>(digests->size()));
    for (unsigned i = 0; i < digests->size(); ++i) {
      list[i].setStartMs((*digests)[i].interval_start_ms);
      list[i].setCount((*digests)[i].count);
      list[i].setXorHash((*digests)[i].xor_hash);
    }
  } else {
    auto digests = co_await on_pool(ctx_.storage_pool, [&] {
      return ctx_.store.range_digests(stream, partition, bounds);
    });
    if (!digests) co_return fail_request(correlation_id, digests.error());
    auto list = resp.initDigest().initDigests(static_cast<unsigned>(digests->size()));
    for (unsigned i = 0; i < digests->size(); ++i) {
      list[i].setCount((*digests)[i].count);
      list[i].setXorHash((*digests)[i].xor_hash);
    }
  }
  send(mb);
  request_done();
}

asio::awaitable<void> Session::handle_fetch_range(protocol::FrameBuffer frame) {
  std::uint64_t correlation_id = 0;
  std::string stream;
  std::uint32_t partition = 0;
  Key from;
  Key to = Key::max();
  std::size_t max_keys = 0;
  std::vector<Key> wanted;
  auto parse = [&](wire::Request::Reader request) -> Status {
    auto f = request.getFetchRange();
    if (auto ok = check_target(f, ctx_.options, &stream); !ok) return ok.error();
    partition = f.getPartition();
    auto keys = keys_of(f.getKeys());
    if (!keys) return keys.error();
    if (keys->size() > kMaxKeys) {
      return Error(ErrorCode::kBadRequest,
                   "at most " + std::to_string(kMaxKeys) + " keys per fetchRange");
    }
    wanted = std::move(*keys);
    auto from_key = protocol::key_or(f.getFrom(), Key());
    auto to_key = protocol::key_or(f.getTo(), Key::max());
    if (!from_key || !to_key) return Error(ErrorCode::kBadRequest, "fetchRange bounds");
    from = *from_key;
    to = *to_key;
    max_keys = std::min<std::size_t>(std::max<std::uint32_t>(f.getMaxKeys(), 1), kMaxKeys);
    return {};
  };
  if (!read_request(frame, "fetchRange", &correlation_id, parse)) co_return;

  // A quarter of a frame: the answer's framing never pushes it past the limit.
  const std::size_t max_bytes = ctx_.options.max_frame_bytes / 4;
  co_await reserve_output(max_bytes);
  OutputReservation reservation{*this, max_bytes};
  capnp::MallocMessageBuilder mb;
  auto resp = ok_response(mb, correlation_id);
  auto r = resp.initFetchRange();
  if (wanted.empty()) {
    auto page = co_await on_pool(ctx_.storage_pool, [&] {
      return ctx_.store.keys(stream, partition, from, to, max_keys);
    });
    if (!page) co_return fail_request(correlation_id, page.error());
    auto data = r.initKeys(static_cast<unsigned>(page->keys.size() * Key::kSize));
    for (std::size_t i = 0; i < page->keys.size(); ++i) {
      std::memcpy(data.begin() + i * Key::kSize, page->keys[i].data(), Key::kSize);
    }
    r.setDone(page->done);
    if (!page->done) r.setNextFrom(protocol::data(page->next_from.view()));
  } else {
    std::optional<Key> next;
    auto batch = co_await on_pool(ctx_.storage_pool, [&] {
      return ctx_.store.events(stream, partition, wanted, max_bytes, &next);
    });
    if (!batch) co_return fail_request(correlation_id, batch.error());
    put_events(r.initEvents(static_cast<unsigned>(batch->size())), *batch);
    r.setDone(!next);
    if (next) r.setNextFrom(protocol::data(next->view()));
  }
  send(mb);
  request_done();
}

asio::awaitable<void> Session::handle_repair(protocol::FrameBuffer frame) {
  std::uint64_t correlation_id = 0;
  repair::RepairScope scope;
  auto parse = [&](wire::Request::Reader request) -> Status {
    auto r = request.getRepair();
    scope.stream = protocol::view(r.getStream());
    scope.from_ms = r.getFromMs();
    scope.to_ms = r.getToMs();
    if (r.getPartitions().size() > 65536) return Error(ErrorCode::kBadRequest, "repair: over 65,536 partitions");
    for (auto p : r.getPartitions()) scope.partitions.push_back(p);
    if (scope.stream.empty()) {
      if (!scope.partitions.empty()) return Error(ErrorCode::kBadRequest, "repair: partitions need a stream");
      return {};
    }
    return validate_stream_name(scope.stream);
  };
  if (!read_request(frame, "repair", &correlation_id, parse)) co_return;
  repair::RepairSummary summary;  // a single broker has no other replica: nothing to do
  if (ctx_.cluster != nullptr) {
    ctx_.log.info("session {}: repair of {} requested", remote_,
                  scope.stream.empty() ? std::string("every stream") : "stream " + scope.stream);
    summary = co_await ctx_.cluster->repair(scope);
  }
  capnp::MallocMessageBuilder mb;
  auto r = ok_response(mb, correlation_id).initRepair();
  const auto& st = summary.stats;
  r.setPartitions(summary.partitions);
  r.setPairs(summary.pairs);
  r.setPairsFailed(summary.pairs_failed);
  r.setRangesCompared(st.ranges_compared);
  r.setRangesDiffered(st.ranges_differed);
  r.setKeysListed(st.keys_listed);
  r.setEventsReceived(st.events_to_a);
  r.setEventsSent(st.events_to_b);
  r.setBytesReceived(st.bytes_to_a);
  r.setBytesSent(st.bytes_to_b);
  r.setBytesExchanged(summary.bytes_exchanged);
  r.setSeconds(summary.seconds);
  auto errors = r.initErrors(static_cast<unsigned>(summary.errors.size()));
  for (unsigned i = 0; i < summary.errors.size(); ++i) {
    errors.set(i, protocol::text(summary.errors[i]));
  }
  send(mb);
  request_done();
}

asio::awaitable<void> Session::handle_remove_member(protocol::FrameBuffer frame) {
  std::uint64_t correlation_id = 0;
  std::string node_id;
  auto parse = [&](wire::Request::Reader request) -> Status {
    node_id = protocol::view(request.getRemoveMember().getNodeId());
    return {};
  };
  if (!read_request(frame, "removeMember", &correlation_id, parse)) co_return;
  Status st = Error(ErrorCode::kBadRequest, "a single broker has no members to remove");
  if (ctx_.cluster != nullptr) {
    ctx_.log.info("session {}: removal of member {} requested", remote_, node_id);
    st = co_await ctx_.cluster->remove_member(node_id);
  }
  if (!st) co_return fail_request(correlation_id, st.error());
  send_ok(correlation_id);
  request_done();
}

asio::awaitable<void> Session::handle_decommission(protocol::FrameBuffer frame) {
  std::uint64_t correlation_id = 0;
  std::string node_id;
  auto parse = [&](wire::Request::Reader request) -> Status {
    node_id = protocol::view(request.getDecommission().getNodeId());
    return {};
  };
  if (!read_request(frame, "decommission", &correlation_id, parse)) co_return;
  Status st = Error(ErrorCode::kBadRequest, "a single broker is not a cluster member: stop it instead");
  if (ctx_.cluster != nullptr) {
    ctx_.log.info("session {}: decommission of {} requested", remote_, node_id);
    st = co_await ctx_.cluster->decommission(node_id);
  }
  if (!st) co_return fail_request(correlation_id, st.error());
  send_ok(correlation_id);
  request_done();
}

}  // namespace alldata::broker
