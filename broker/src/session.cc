#include "session.h"

#include "on_pool.h"

#include "net_util.h"
#include "store_write.h"
#include "wire_events.h"

#include "alldata/protocol/names.h"
#include "alldata/protocol/partitioner.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <kj/exception.h>

#include <algorithm>

namespace alldata::broker {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

constexpr std::size_t kMaxQueuedOutputBytes = 32u << 20;
constexpr std::uint32_t kDefaultScanEvents = 1000;
constexpr std::uint32_t kMaxScanEvents = 100000;
constexpr std::uint32_t kDefaultScanBytes = 1u << 20;

std::string describe(const asio::ip::tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "(unknown peer)";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

CommitLevel from_wire(wire::CommitLevel l) {
  const auto v = static_cast<std::uint8_t>(l);
  return v <= 3 ? static_cast<CommitLevel>(v) : CommitLevel::kQuorum;
}

}  // namespace

Session::Session(asio::ip::tcp::socket socket, ServerContext& ctx, bool peer_listener)
    : socket_(std::move(socket)),
      ctx_(ctx),
      remote_(describe(socket_)),
      peer_listener_(peer_listener),
      reader_wake_(socket_.get_executor()),
      writer_wake_(socket_.get_executor()),
      watchdog_timer_(socket_.get_executor()),
      last_activity_(Clock::now()) {}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  auto ex = co_await asio::this_coro::executor;
  boost::system::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);

  asio::co_spawn(ex, write_loop(), [self](std::exception_ptr e) {
    if (e) self->ctx_.log.error("session {}: writer failed: {}", self->remote_, describe_exception(e));
  });
  asio::co_spawn(ex, watchdog(), [self](std::exception_ptr e) {
    if (e) self->ctx_.log.error("session {}: watchdog failed: {}", self->remote_, describe_exception(e));
  });

  co_await read_loop();

  // Reading is over: answer what is in flight, flush, then close.
  while (in_flight_ > 0) co_await wait_on(reader_wake_);
  writer_exit_ = true;
  writer_wake_.cancel();
  while (!writer_done_) co_await wait_on(reader_wake_);
  finished_ = true;
  watchdog_timer_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void Session::stop() {
  if (stop_requested_) return;
  stop_requested_ = true;
  boost::system::error_code ignored;
  // A pending read returns end-of-file; writes of responses still go out.
  socket_.shutdown(asio::ip::tcp::socket::shutdown_receive, ignored);
  reader_wake_.cancel();
}

asio::awaitable<void> Session::read_loop() {
  std::uint8_t header[protocol::kFrameHeaderBytes];
  for (;;) {
    while (!stop_requested_ && !close_after_flush_ &&
           (in_flight_ >= ctx_.options.max_in_flight || out_.size() >= kMaxQueuedOutputBytes)) {
      co_await wait_on(reader_wake_);
    }
    if (stop_requested_ || close_after_flush_) co_return;

    auto [ec, n] = co_await asio::async_read(socket_, asio::buffer(header), as_tuple(use_awaitable));
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted &&
          ec != asio::error::connection_reset) {
        ctx_.log.debug("session {}: read failed: {}", remote_, ec.message());
      }
      co_return;
    }
    last_activity_ = Clock::now();
    const std::uint32_t length = protocol::read_frame_length(header);
    if (auto ok = protocol::check_frame_length(length, ctx_.options.max_frame_bytes); !ok) {
      ctx_.log.warn("session {}: closing: {}", remote_, ok.error().message);
      send_error(0, ok.error());
      co_return;
    }
    protocol::FrameBuffer frame(length);
    auto [ec2, n2] = co_await asio::async_read(socket_, asio::buffer(frame.data(), length),
                                               as_tuple(use_awaitable));
    if (ec2) {
      ctx_.log.warn("session {}: closing: connection ended inside a frame ({} of {} bytes)",
                    remote_, n2, length);
      co_return;
    }
    last_activity_ = Clock::now();
    if (!dispatch(std::move(frame))) co_return;
  }
}

bool Session::dispatch(protocol::FrameBuffer frame) {
  std::uint64_t correlation_id = 0;
  wire::Request::Which which;
  bool metadata_streams = false;
  std::string metadata_stream;
  try {
    auto reader = protocol::make_reader(frame, ctx_.options.nesting_limit);
    auto request = reader.getRoot<wire::Request>();
    correlation_id = request.getCorrelationId();
    which = request.which();
    if (which == wire::Request::METADATA) {
      metadata_streams = request.getMetadata().getStreams();
      metadata_stream = protocol::view(request.getMetadata().getStream());
    }
  } catch (const kj::Exception& e) {
    ctx_.log.warn("session {}: closing: malformed message: {}", remote_,
                  e.getDescription().cStr());
    send_error(0, Error(ErrorCode::kBadRequest,
                        std::string("malformed message: ") + e.getDescription().cStr()));
    return false;
  }

  if (which == wire::Request::HELLO) {
    handle_hello(correlation_id, frame);
    return !close_after_flush_;
  }
  if (!hello_done_) {
    ctx_.log.warn("session {}: closing: request before hello", remote_);
    send_error(correlation_id,
               Error(ErrorCode::kHelloRequired, "the first request on a connection must be hello"));
    return false;
  }

  auto self = shared_from_this();
  auto ex = socket_.get_executor();
  // A request coroutine that throws (a bug, or out of memory) still gets an answer and
  // leaves the in-flight count, so the session can end.
  auto on_done = [self, correlation_id](std::exception_ptr e) {
    if (!e) return;
    const std::string what = describe_exception(e);
    self->ctx_.log.error("session {}: request {} failed: {}", self->remote_, correlation_id, what);
    self->send_error(correlation_id, Error(ErrorCode::kInternal, "the broker failed this request: " + what));
    self->request_done();
  };
  switch (which) {
    case wire::Request::PRODUCE:
      ++in_flight_;
      asio::co_spawn(ex, handle_produce(std::move(frame)), on_done);
      return true;
    case wire::Request::SCAN:
      ++in_flight_;
      asio::co_spawn(ex, handle_scan(std::move(frame)), on_done);
      return true;
    case wire::Request::METADATA:
      ++in_flight_;
      asio::co_spawn(ex, handle_metadata(correlation_id, metadata_streams, std::move(metadata_stream)),
                     on_done);
      return true;
    case wire::Request::REPAIR:
      ++in_flight_;
      asio::co_spawn(ex, handle_repair(std::move(frame)), on_done);
      return true;
    case wire::Request::REMOVE_MEMBER:
      ++in_flight_;
      asio::co_spawn(ex, handle_remove_member(std::move(frame)), on_done);
      return true;
    case wire::Request::REPLICATE:
    case wire::Request::DELIVER_HINTS:
      if (!peer_role_) {
        send_error(correlation_id,
                   Error(ErrorCode::kNotAllowed, "peer requests need a session with role peer"));
        return true;
      }
      ++in_flight_;
      asio::co_spawn(ex, handle_replicate(std::move(frame), which == wire::Request::DELIVER_HINTS),
                     on_done);
      return true;
    case wire::Request::DIGEST:
    case wire::Request::FETCH_RANGE:
      if (!peer_role_) {
        send_error(correlation_id,
                   Error(ErrorCode::kNotAllowed, "peer requests need a session with role peer"));
        return true;
      }
      ++in_flight_;
      if (which == wire::Request::DIGEST) {
        asio::co_spawn(ex, handle_digest(std::move(frame)), on_done);
      } else {
        asio::co_spawn(ex, handle_fetch_range(std::move(frame)), on_done);
      }
      return true;
    default:
      send_error(correlation_id,
                 Error(ErrorCode::kUnknownRequest,
                       "unknown request kind " + std::to_string(static_cast<int>(which)) +
                           " (this broker speaks protocol version " +
                           std::to_string(wire::PROTOCOL_VERSION) + ")"));
      return true;
  }
}

void Session::handle_hello(std::uint64_t correlation_id, const protocol::FrameBuffer& frame) {
  if (hello_done_) {
    send_error(correlation_id, Error(ErrorCode::kBadRequest, "hello was already sent"));
    return;
  }
  std::uint32_t version = 0;
  bool peer = false;
  try {
    auto reader = protocol::make_reader(frame, ctx_.options.nesting_limit);
    auto hello = reader.getRoot<wire::Request>().getHello();
    version = hello.getProtocolVersion();
    peer = hello.getRole() == wire::Role::PEER;
  } catch (const kj::Exception& e) {
    send_error(correlation_id, Error(ErrorCode::kBadRequest,
                                     std::string("malformed hello: ") + e.getDescription().cStr()));
    close_after_flush_ = true;
    return;
  }
  if (version < 1) {
    send_error(correlation_id,
               Error(ErrorCode::kUnsupportedVersion,
                     "protocol version " + std::to_string(version) + " is not supported; this broker speaks 1"));
    close_after_flush_ = true;
    return;
  }
  if (peer != peer_listener_) {
    send_error(correlation_id,
               Error(ErrorCode::kNotAllowed,
                     peer ? "peer sessions belong on the peer listener (--peer-listen)"
                          : "this is the peer listener: clients connect to the client listener"));
    close_after_flush_ = true;
    return;
  }
  hello_done_ = true;
  peer_role_ = peer;
  capnp::MallocMessageBuilder mb(256);
  auto resp = mb.initRoot<wire::Response>();
  resp.setCorrelationId(correlation_id);
  resp.setError(wire::ErrorCode::OK);
  auto r = resp.initHello();
  r.setProtocolVersion(std::min<std::uint32_t>(version, wire::PROTOCOL_VERSION));
  r.setNodeId(protocol::text(ctx_.node_id));
  r.setPartitions(ctx_.options.partitions);
  r.setMaxFrameBytes(ctx_.options.max_frame_bytes);
  r.setMaxEventBytes(ctx_.options.max_event_bytes);
  r.setMaxKeySkewMs(static_cast<std::uint32_t>(ctx_.options.max_key_skew.count()));
  r.setOrigin(ctx_.keygen.origin());
  send(mb);
}

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
    // Half a frame at most, so a page plus its last event always fits in one answer.
    query.max_bytes = std::min<std::uint32_t>(
        scan.getMaxBytes() == 0 ? kDefaultScanBytes : scan.getMaxBytes(),
        ctx_.options.max_frame_bytes / 2);
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

void Session::send(capnp::MessageBuilder& message) {
  protocol::append_frame(message, out_);
  writer_wake_.cancel();
}

wire::Response::Builder Session::ok_response(capnp::MessageBuilder& mb,
                                             std::uint64_t correlation_id) {
  auto resp = mb.initRoot<wire::Response>();
  resp.setCorrelationId(correlation_id);
  resp.setError(wire::ErrorCode::OK);
  return resp;
}

void Session::send_ok(std::uint64_t correlation_id) {
  capnp::MallocMessageBuilder mb(64);
  ok_response(mb, correlation_id).setNone();
  send(mb);
}

void Session::send_error(std::uint64_t correlation_id, const Error& error) {
  capnp::MallocMessageBuilder mb(256);
  auto resp = mb.initRoot<wire::Response>();
  resp.setCorrelationId(correlation_id);
  resp.setError(protocol::to_wire(error.code));
  resp.setMessage(protocol::text(error.message));
  resp.setNone();
  send(mb);
}

void Session::request_done() {
  --in_flight_;
  reader_wake_.cancel();
}

asio::awaitable<void> Session::write_loop() {
  std::string buffer;
  for (;;) {
    while (out_.empty() && !writer_exit_) co_await wait_on(writer_wake_);
    if (out_.empty()) break;
    buffer.swap(out_);
    writing_ = true;
    write_started_ = Clock::now();
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(buffer), as_tuple(use_awaitable));
    writing_ = false;
    buffer.clear();
    reader_wake_.cancel();
    if (ec) {
      ctx_.log.debug("session {}: write failed: {}", remote_, ec.message());
      // Nobody can receive answers any more: stop reading too.
      out_.clear();
      close_after_flush_ = true;
      boost::system::error_code ignored;
      socket_.shutdown(asio::ip::tcp::socket::shutdown_receive, ignored);
      // Keep draining (and dropping) until told to exit.
      while (!writer_exit_) {
        out_.clear();
        co_await wait_on(writer_wake_);
      }
      break;
    }
  }
  writer_done_ = true;
  reader_wake_.cancel();
}

asio::awaitable<void> Session::watchdog() {
  auto self = shared_from_this();
  const auto tick = std::min<Clock::duration>(
      std::chrono::seconds(1),
      std::min<Clock::duration>(ctx_.options.idle_timeout, ctx_.options.write_timeout) / 4);
  while (!finished_) {
    watchdog_timer_.expires_after(tick);
    co_await watchdog_timer_.async_wait(as_tuple(use_awaitable));
    if (finished_) break;
    const auto now = Clock::now();
    if (writing_ && now - write_started_ > ctx_.options.write_timeout) {
      ctx_.log.warn("session {}: closing: the client took no response data for {} ms", remote_,
                    ctx_.options.write_timeout.count());
      boost::system::error_code ignored;
      socket_.close(ignored);  // fails the pending write and read
      continue;
    }
    if (in_flight_ == 0 && !writing_ && out_.empty() &&
        now - last_activity_ > ctx_.options.idle_timeout) {
      ctx_.log.info("session {}: closing: idle for {} ms", remote_, ctx_.options.idle_timeout.count());
      stop();
    }
  }
}

}  // namespace alldata::broker
