// Session: the requests that move events (produce, replicate and deliverHints from peers,
// scan) and metadata. The connection itself (reading, dispatch, writing, timeouts) is in
// session.cc; anti-entropy and membership requests in session_repair.cc.
#include "session.h"

#include "net_util.h"
#include "on_pool.h"
#include "store_write.h"
#include "wire_events.h"

#include "alldata/protocol/names.h"
#include "alldata/protocol/partitioner.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <kj/exception.h>

#include <algorithm>

namespace alldata::broker {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

constexpr std::uint32_t kDefaultScanEvents = 1000;
constexpr std::uint32_t kMaxScanEvents = 100000;
constexpr std::uint32_t kDefaultScanBytes = 1u << 20;
// Framing and per-event fields of a scan answer beyond its payload bytes, reserved with
// them (the page may also run one event past max_bytes: its last one).
constexpr std::size_t kScanAnswerOverhead = 64u << 10;

CommitLevel from_wire(wire::CommitLevel l) {
  const auto v = static_cast<std::uint8_t>(l);
  return v <= 3 ? static_cast<CommitLevel>(v) : CommitLevel::kQuorum;
}

}  // namespace

asio::awaitable<void> Session::handle_produce(protocol::FrameBuffer frame) {
  std::uint64_t correlation_id = 0;
  auto fail = [&](Error e) {
    send_error(correlation_id, e);
    request_done();
  };
  std::optional<storage::EventBatch> batch;
  std::string keys;
  CommitLevel level = CommitLevel::kQuorum;
  std::chrono::milliseconds timeout = ctx_.options.produce_timeout;
  std::uint32_t partition = 0;
  try {
    auto reader = protocol::make_reader(frame, ctx_.options.nesting_limit);
    auto request = reader.getRoot<wire::Request>();
    correlation_id = request.getCorrelationId();
    auto produce = request.getProduce();
    const auto stream = protocol::view(produce.getStream());
    if (auto ok = validate_stream_name(stream); !ok) co_return fail(ok.error());
    if (produce.getPartitionKey().size() > 0) {
      partition = protocol::partition_for_key(protocol::view(produce.getPartitionKey()),
                                              ctx_.options.partitions);
    } else {
      partition = produce.getPartition();
      if (partition >= ctx_.options.partitions) {
        co_return fail(Error(ErrorCode::kInvalidPartition,
                             "partition " + std::to_string(partition) + " does not exist: stream " +
                                 "partitions are 0.." + std::to_string(ctx_.options.partitions - 1)));
      }
    }
    level = from_wire(produce.getCommitLevel());
    // A client may ask for less than the broker's produce timeout, never more: stop()
    // relies on it to bound how long a request can hold a session open.
    if (produce.getTimeoutMs() > 0) {
      timeout = std::min(timeout, std::chrono::milliseconds(produce.getTimeoutMs()));
    }
    auto events = produce.getEvents();
    if (events.size() == 0) co_return fail(Error(ErrorCode::kBadRequest, "produce without events"));

    // Validate every event before anything is stored: a batch is all or nothing.
    const std::uint64_t now_ms = ctx_.keygen.clock().now_ms();
    const auto skew = static_cast<std::uint64_t>(ctx_.options.max_key_skew.count());
    std::uint32_t need_keys = 0;
    std::size_t payload_bytes = 0;
    for (std::uint32_t i = 0; i < events.size(); ++i) {
      auto ev = events[i];
      std::size_t size = ev.getPayload().size();
      for (auto h : ev.getHeaders()) size += h.getName().size() + h.getValue().size();
      if (size > ctx_.options.max_event_bytes) {
        co_return fail(Error(ErrorCode::kEventTooLarge,
                             "event " + std::to_string(i) + " is " + std::to_string(size) +
                                 " bytes, over the limit of " +
                                 std::to_string(ctx_.options.max_event_bytes)));
      }
      payload_bytes += size;
      const auto key_bytes = ev.getKey().size();
      if (key_bytes == 0) {
        ++need_keys;
      } else if (key_bytes != Key::kSize) {
        co_return fail(Error(ErrorCode::kBadRequest, "event " + std::to_string(i) + " has a key of " +
                                                         std::to_string(key_bytes) +
                                                         " bytes; keys are empty or 16 bytes"));
      } else {
        const auto t = Key::from_raw(ev.getKey().begin()).time_ms();
        const auto diff = t > now_ms ? t - now_ms : now_ms - t;
        if (diff > skew) {
          co_return fail(Error(ErrorCode::kKeySkew,
                               "event " + std::to_string(i) + " has a key " + std::to_string(diff) +
                                   " ms " + (t > now_ms ? "ahead of" : "behind") +
                                   " the broker's clock; the limit is " + std::to_string(skew) +
                                   " ms (check the producer's clock)"));
        }
      }
    }

    std::uint64_t first_hlc = 0;
    if (need_keys > 0) {
      auto first = ctx_.keygen.reserve(need_keys);
      while (!first) {
        const std::uint64_t needed = ctx_.keygen.high_water() + need_keys;
        Status st = co_await on_pool(ctx_.storage_pool,
                                        [&lease = ctx_.lease, needed] { return lease.extend(needed); });
        if (!st) co_return fail(st.error());
        first = ctx_.keygen.reserve(need_keys);
      }
      first_hlc = *first;
    }

    batch.emplace(stream, partition);
    batch->reserve(events.size(), payload_bytes);
    keys.resize(events.size() * Key::kSize);
    std::uint64_t next_hlc = first_hlc;
    const std::uint64_t origin = ctx_.keygen.origin();
    for (std::uint32_t i = 0; i < events.size(); ++i) {
      auto ev = events[i];
      const Key key = ev.getKey().size() == Key::kSize ? Key::from_raw(ev.getKey().begin())
                                                      : Key::from_hlc(next_hlc++, origin);
      std::memcpy(keys.data() + i * Key::kSize, key.data(), Key::kSize);
      headers_scratch_.clear();
      for (auto h : ev.getHeaders()) {
        headers_scratch_.push_back({protocol::view(h.getName()), protocol::view(h.getValue())});
      }
      batch->add(key, protocol::view(ev.getPayload()), headers_scratch_);
    }
  } catch (const kj::Exception& e) {
    ctx_.log.warn("session {}: closing: malformed produce: {}", remote_, e.getDescription().cStr());
    close_after_flush_ = true;
    reader_wake_.cancel();
    co_return fail(Error(ErrorCode::kBadRequest,
                         std::string("malformed produce: ") + e.getDescription().cStr()));
  }
  // The frame is no longer needed while the write is in progress.
  frame = protocol::FrameBuffer();

  auto outcome = co_await ctx_.coordinator->produce(std::move(*batch), level, timeout);
  if (!outcome) co_return fail(outcome.error());

  capnp::MallocMessageBuilder mb(keys.size() / 8 + 64);
  auto resp = mb.initRoot<wire::Response>();
  resp.setCorrelationId(correlation_id);
  resp.setError(wire::ErrorCode::OK);
  auto r = resp.initProduce();
  r.setKeys(protocol::data(keys));
  r.setPartition(partition);
  r.setReplicas(outcome->replicas);
  send(mb);
  request_done();
}

asio::awaitable<void> Session::handle_replicate(protocol::FrameBuffer frame, bool delivered_hints) {
  std::uint64_t correlation_id = 0;
  auto fail = [&](Error e) {
    send_error(correlation_id, e);
    request_done();
  };
  std::optional<storage::EventBatch> batch;
  std::string hint_for;
  try {
    auto reader = protocol::make_reader(frame, ctx_.options.nesting_limit);
    auto request = reader.getRoot<wire::Request>();
    correlation_id = request.getCorrelationId();
    // Both requests carry the same fields: stream, partition, keyed events.
    capnp::Text::Reader stream_text;
    std::uint32_t partition = 0;
    capnp::List<wire::Event>::Reader events;
    if (delivered_hints) {
      auto r = request.getDeliverHints();
      stream_text = r.getStream();
      partition = r.getPartition();
      events = r.getEvents();
    } else {
      auto r = request.getReplicate();
      stream_text = r.getStream();
      partition = r.getPartition();
      events = r.getEvents();
      hint_for = protocol::view(r.getHintFor());
    }
    const auto stream = protocol::view(stream_text);
    if (auto ok = validate_stream_name(stream); !ok) co_return fail(ok.error());
    if (partition >= ctx_.options.partitions) {
      co_return fail(Error(ErrorCode::kInvalidPartition,
                           "partition " + std::to_string(partition) + " does not exist here"));
    }
    if (events.size() == 0) co_return fail(Error(ErrorCode::kBadRequest, "replicate without events"));
    batch.emplace(stream, partition);
    // Hints delivered late may fall into sealed intervals: they are repairs, not new writes.
    batch->set_repair(delivered_hints);
    if (auto added = add_keyed_events(events, *batch, headers_scratch_); !added) {
      co_return fail(Error(ErrorCode::kBadRequest, "replicated " + added.error().message));
    }
  } catch (const kj::Exception& e) {
    ctx_.log.warn("session {}: closing: malformed replicate: {}", remote_, e.getDescription().cStr());
    close_after_flush_ = true;
    reader_wake_.cancel();
    co_return fail(Error(ErrorCode::kBadRequest,
                         std::string("malformed replicate: ") + e.getDescription().cStr()));
  }
  frame = protocol::FrameBuffer();
  // A replica stores what the coordinator sends: no re-coordination, no key-skew check. A
  // hinted write is kept aside for its owner until hinted handoff delivers it.
  // (A named local, not a temporary: GCC 12 mishandles non-trivial temporaries in co_await
  // expressions.)
  std::optional<std::string> hint;
  if (!hint_for.empty()) hint = std::move(hint_for);
  auto stored = co_await store_and_wait(ctx_.store, std::move(*batch), std::move(hint),
                                        ctx_.options.produce_timeout);
  if (!stored) co_return fail(stored.error());
  send_ok(correlation_id);
  request_done();
}

asio::awaitable<void> Session::handle_scan(protocol::FrameBuffer frame) {
  std::uint64_t correlation_id = 0;
  auto fail = [&](Error e) {
    send_error(correlation_id, e);
    request_done();
  };
  storage::ScanQuery query;
  try {
    auto reader = protocol::make_reader(frame, ctx_.options.nesting_limit);
    auto request = reader.getRoot<wire::Request>();
    correlation_id = request.getCorrelationId();
    auto scan = request.getScan();
    query.stream = protocol::view(scan.getStream());
    if (auto ok = validate_stream_name(query.stream); !ok) co_return fail(ok.error());
    query.partition = scan.getPartition();
    if (query.partition >= ctx_.options.partitions) {
      co_return fail(Error(ErrorCode::kInvalidPartition,
                           "partition " + std::to_string(query.partition) + " does not exist: " +
                               "partitions are 0.." + std::to_string(ctx_.options.partitions - 1)));
    }
    auto from = protocol::key_or(scan.getFrom(), Key());
    auto to = protocol::key_or(scan.getTo(), Key::max());
    if (!from) co_return fail(Error(ErrorCode::kBadRequest, "scan from: " + from.error().message));
    if (!to) co_return fail(Error(ErrorCode::kBadRequest, "scan to: " + to.error().message));
    if (*from > *to) {
      co_return fail(Error(ErrorCode::kInvalidRange, "scan from " + from->to_text() +
                                                          " is after to " + to->to_text()));
    }
    query.from = *from;
    query.to = *to;
    query.max_events = scan.getMaxEvents() == 0
                           ? kDefaultScanEvents
                           : std::min<std::uint32_t>(scan.getMaxEvents(), kMaxScanEvents);
    // Half a frame at most, so a page plus its last event always fits in one answer; and a
    // quarter of the connection's buffer, so pages of one connection pipeline.
    query.max_bytes = std::min<std::uint64_t>(
        {scan.getMaxBytes() == 0 ? kDefaultScanBytes : scan.getMaxBytes(),
         ctx_.options.max_frame_bytes / 2, ctx_.options.max_connection_buffer_bytes / 4});
  } catch (const kj::Exception& e) {
    ctx_.log.warn("session {}: closing: malformed scan: {}", remote_, e.getDescription().cStr());
    close_after_flush_ = true;
    reader_wake_.cancel();
    co_return fail(Error(ErrorCode::kBadRequest,
                         std::string("malformed scan: ") + e.getDescription().cStr()));
  }
  frame = protocol::FrameBuffer();
  // A joining broker owns no partition yet, and may hold none of their data (a new broker,
  // or one that lost its disk): readers must use the owners.
  if (ctx_.cluster != nullptr) {
    const auto view = ctx_.cluster->view();
    if (view && view->self().lifecycle == Lifecycle::kJoining) {
      co_return fail(Error(ErrorCode::kNotReady,
                           "broker " + ctx_.node_id +
                               " is joining: it serves no reads until it holds its partitions' "
                               "data; read from another replica"));
    }
  }

  // Room for the answer first: a client that does not read its answers holds up its own
  // scans here, before any page is read, instead of piling pages up in memory.
  const std::size_t answer_bytes = query.max_bytes + kScanAnswerOverhead;
  co_await reserve_output(answer_bytes);
  OutputReservation reservation{*this, answer_bytes};
  auto page = co_await on_pool(ctx_.storage_pool,
                                  [&store = ctx_.store, &query] { return store.scan(query); });
  if (!page) co_return fail(page.error());

  std::size_t bytes = 0;
  for (const auto& e : page->events) bytes += e.payload.size() + 64;
  capnp::MallocMessageBuilder mb(bytes / 8 + 64);
  auto resp = mb.initRoot<wire::Response>();
  resp.setCorrelationId(correlation_id);
  resp.setError(wire::ErrorCode::OK);
  auto r = resp.initScan();
  auto list = r.initEvents(static_cast<unsigned>(page->events.size()));
  for (unsigned i = 0; i < page->events.size(); ++i) {
    const auto& src = page->events[i];
    auto dst = list[i];
    dst.setKey(protocol::data(src.key.view()));
    dst.setPayload(protocol::data(src.payload));
    dst.setPartition(src.partition);
    if (!src.headers.empty()) {
      auto hs = dst.initHeaders(static_cast<unsigned>(src.headers.size()));
      for (unsigned j = 0; j < src.headers.size(); ++j) {
        hs[j].setName(protocol::text(src.headers[j].name));
        hs[j].setValue(protocol::data(src.headers[j].value));
      }
    }
  }
  r.setDone(page->done);
  if (!page->done) r.setNextFrom(protocol::data(page->next_from.view()));
  send(mb);
  request_done();
}

asio::awaitable<void> Session::handle_metadata(std::uint64_t correlation_id, bool with_streams,
                                               std::string stream) {
  std::vector<std::string> streams;
  if (with_streams) {
    streams = co_await on_pool(ctx_.storage_pool, [&store = ctx_.store] { return store.streams(); });
  }
  capnp::MallocMessageBuilder mb(1024);
  auto resp = mb.initRoot<wire::Response>();
  resp.setCorrelationId(correlation_id);
  resp.setError(wire::ErrorCode::OK);
  auto r = resp.initMetadata();
  r.setNodeId(protocol::text(ctx_.node_id));
  r.setPartitions(ctx_.options.partitions);
  r.setReplicationFactor(ctx_.coordinator->replication_factor());
  r.setIntervalMs(static_cast<std::uint64_t>(ctx_.options.partition_interval.count()));
  r.setVersion(protocol::text(ctx_.version));
  r.setSync(ctx_.options.sync);
  r.setWatermarkMs(ctx_.cluster ? ctx_.cluster->watermark_ms() : 0);
  if (ctx_.cluster) {
    const auto view = ctx_.cluster->view();
    const auto& views = view->members();
    r.setMembershipStatus(protocol::text(view->status()));
    auto members = r.initMembers(static_cast<unsigned>(views.size()));
    for (unsigned i = 0; i < views.size(); ++i) {
      const auto& v = views[i];
      auto m = members[i];
      m.setNodeId(protocol::text(v.node_id));
      m.setClientAddress(protocol::text(v.client_address));
      m.setPeerAddress(protocol::text(v.peer_address));
      m.setZone(protocol::text(v.zone));
      m.setRegion(protocol::text(v.region));
      m.setLive(v.live());
      m.setPendingHints(v.pending_hints);
      m.setLiveness(static_cast<wire::Liveness>(static_cast<std::uint16_t>(v.liveness)));
      m.setLifecycle(static_cast<wire::Lifecycle>(static_cast<std::uint16_t>(v.lifecycle)));
      m.setIncarnation(v.incarnation);
      m.setHandOverPartitions(v.hand_over_partitions);
      m.setHandOverBytes(v.hand_over_bytes);
      m.setIncompleteSinceMs(v.incomplete_since_ms);
    }
  } else {
    auto members = r.initMembers(1);
    members[0].setNodeId(protocol::text(ctx_.node_id));
    members[0].setClientAddress(protocol::text(ctx_.client_address));
    members[0].setLive(true);
    members[0].setLifecycle(wire::Lifecycle::NORMAL);
  }
  if (!stream.empty()) {
    std::vector<std::vector<std::string>> sets;
    if (ctx_.cluster) {
      sets = ctx_.cluster->replica_sets(stream);
    } else {
      sets.assign(ctx_.options.partitions, {ctx_.node_id});
    }
    auto list = r.initReplicaSets(static_cast<unsigned>(sets.size()));
    for (unsigned p = 0; p < sets.size(); ++p) {
      list[p].setPartition(p);
      auto ids = list[p].initNodeIds(static_cast<unsigned>(sets[p].size()));
      for (unsigned i = 0; i < sets[p].size(); ++i) ids.set(i, protocol::text(sets[p][i]));
    }
  }
  auto list = r.initStreams(static_cast<unsigned>(streams.size()));
  for (unsigned i = 0; i < streams.size(); ++i) list.set(i, protocol::text(streams[i]));
  send(mb);
  request_done();
}

}  // namespace alldata::broker
