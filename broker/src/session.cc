#include "session.h"

#include "membership/env.h"
#include "net_util.h"

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

constexpr std::uint32_t kMaxFrameBeforeHello = 64u << 10;

// Answers are appended to the last queued frame string while it is smaller than this.
constexpr std::size_t kCoalesceBytes = 64u << 10;

std::string describe(const asio::ip::tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "(unknown peer)";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

Session::Session(asio::ip::tcp::socket socket, ServerContext& ctx, bool peer_listener)
    : socket_(std::move(socket)),
      ctx_(ctx),
      remote_(describe(socket_)),
      reader_wake_(socket_.get_executor()),
      writer_wake_(socket_.get_executor()),
      watchdog_timer_(socket_.get_executor()),
      space_wake_(socket_.get_executor(), asio::steady_timer::time_point::max()),
      peer_listener_(peer_listener),
      accepted_(Clock::now()),
      last_activity_(accepted_) {}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  auto ex = co_await asio::this_coro::executor;
  boost::system::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  std::weak_ptr<Session> weak = self;
  slot_ = ctx_.connection_table.admit(
      [weak, ex] {
        asio::post(ex, [weak] {
          if (auto s = weak.lock()) s->evict();
        });
      },
      SteadyClock().now_ms());

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
  ctx_.connection_table.release(slot_);
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void Session::evict() {
  if (finished_) return;
  ctx_.log.info("session {}: closing: its slot went to a newer connection ({})", remote_,
                hello_done_ ? "idle session" : "no hello yet");
  stop();
}

void Session::note_activity() {
  slot_->active(SteadyClock().now_ms(), in_flight_ > 0 || unsent() > 0);
}

asio::awaitable<void> Session::holding(std::size_t bytes, asio::awaitable<void> request) {
  struct Release {
    Session& s;
    std::size_t n;
    ~Release() {
      s.held_request_bytes_ -= n;
      s.reader_wake_.cancel();
    }
  };
  held_request_bytes_ += bytes;
  Release release{*this, bytes};
  co_await std::move(request);
}

asio::awaitable<void> Session::reserve_output(std::size_t bytes) {
  const std::size_t bound = ctx_.options.max_connection_buffer_bytes;
  while (unsent() + reserved_output_ + bytes > bound && (unsent() > 0 || reserved_output_ > 0)) {
    co_await space_wake_.async_wait(as_tuple(use_awaitable));
  }
  reserved_output_ += bytes;
}

void Session::release_output(std::size_t bytes) {
  reserved_output_ -= bytes;
  space_wake_.cancel();
  reader_wake_.cancel();
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
           (in_flight_ >= ctx_.options.max_in_flight ||
            buffered() >= ctx_.options.max_connection_buffer_bytes)) {
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
    // Before hello only a small frame (a hello) is read: a stranger cannot make the broker
    // allocate a large buffer.
    const std::uint32_t limit = hello_done_ ? ctx_.options.max_frame_bytes
                                            : std::min(ctx_.options.max_frame_bytes, kMaxFrameBeforeHello);
    if (auto ok = protocol::check_frame_length(length, limit); !ok) {
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
    note_activity();
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
  // Every request coroutine runs inside holding(): its frame counts against the bound.
  const std::size_t bytes = frame.size();
  switch (which) {
    case wire::Request::PRODUCE:
      ++in_flight_;
      asio::co_spawn(ex, holding(bytes, handle_produce(std::move(frame))), on_done);
      return true;
    case wire::Request::SCAN:
      ++in_flight_;
      asio::co_spawn(ex, holding(bytes, handle_scan(std::move(frame))), on_done);
      return true;
    case wire::Request::METADATA:
      ++in_flight_;
      asio::co_spawn(ex, holding(bytes, handle_metadata(correlation_id, metadata_streams, std::move(metadata_stream))),
                     on_done);
      return true;
    case wire::Request::REPAIR:
      ++in_flight_;
      asio::co_spawn(ex, holding(bytes, handle_repair(std::move(frame))), on_done);
      return true;
    case wire::Request::REMOVE_MEMBER:
      ++in_flight_;
      asio::co_spawn(ex, holding(bytes, handle_remove_member(std::move(frame))), on_done);
      return true;
    case wire::Request::DECOMMISSION:
      ++in_flight_;
      asio::co_spawn(ex, holding(bytes, handle_decommission(std::move(frame))), on_done);
      return true;
    case wire::Request::REPLICATE:
    case wire::Request::DELIVER_HINTS:
      if (!peer_role_) {
        send_error(correlation_id,
                   Error(ErrorCode::kNotAllowed, "peer requests need a session with role peer"));
        return true;
      }
      ++in_flight_;
      asio::co_spawn(ex, holding(bytes, handle_replicate(std::move(frame), which == wire::Request::DELIVER_HINTS)),
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
        asio::co_spawn(ex, holding(bytes, handle_digest(std::move(frame))), on_done);
      } else {
        asio::co_spawn(ex, holding(bytes, handle_fetch_range(std::move(frame))), on_done);
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
  if (auto admitted = ctx_.connection_table.promote(slot_, peer, SteadyClock().now_ms()); !admitted) {
    ctx_.log.warn("session {}: refusing hello: {}", remote_, admitted.error().message);
    send_error(correlation_id, admitted.error());
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

void Session::send(capnp::MessageBuilder& message) {
  // Small answers share a frame string (one allocation for many acks); a large one gets
  // its own, allocated at its size, so no buffer ever grows by copying.
  if (out_.empty() || out_.back().size() >= kCoalesceBytes) out_.emplace_back();
  out_bytes_ += protocol::append_frame(message, out_.back());
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
  note_activity();
}

asio::awaitable<void> Session::write_loop() {
  std::vector<std::string> writing;
  std::vector<asio::const_buffer> buffers;
  for (;;) {
    while (out_.empty() && !writer_exit_) co_await wait_on(writer_wake_);
    if (out_.empty()) break;
    // Everything queued goes in one gathered write; each frame was allocated once.
    for (auto& f : out_) writing.push_back(std::move(f));
    out_.clear();
    writing_bytes_ = out_bytes_;
    out_bytes_ = 0;
    buffers.clear();
    for (const auto& f : writing) buffers.emplace_back(f.data(), f.size());
    writing_ = true;
    write_started_ = Clock::now();
    auto [ec, n] = co_await asio::async_write(socket_, buffers, as_tuple(use_awaitable));
    writing_ = false;
    writing_bytes_ = 0;
    writing.clear();
    reader_wake_.cancel();
    space_wake_.cancel();
    note_activity();
    if (ec) {
      ctx_.log.debug("session {}: write failed: {}", remote_, ec.message());
      // Nobody can receive answers any more: stop reading too.
      drop_output();
      close_after_flush_ = true;
      boost::system::error_code ignored;
      socket_.shutdown(asio::ip::tcp::socket::shutdown_receive, ignored);
      // Keep draining (and dropping) until told to exit.
      while (!writer_exit_) {
        drop_output();
        co_await wait_on(writer_wake_);
      }
      break;
    }
  }
  writer_done_ = true;
  reader_wake_.cancel();
}

void Session::drop_output() {
  out_.clear();
  out_bytes_ = 0;
  space_wake_.cancel();
}

asio::awaitable<void> Session::watchdog() {
  auto self = shared_from_this();
  const auto tick = std::min<Clock::duration>(
      std::chrono::seconds(1),
      std::min<Clock::duration>({ctx_.options.idle_timeout, ctx_.options.write_timeout,
                                 ctx_.options.hello_timeout}) / 4);
  while (!finished_) {
    watchdog_timer_.expires_after(tick);
    co_await watchdog_timer_.async_wait(as_tuple(use_awaitable));
    if (finished_) break;
    const auto now = Clock::now();
    if (!hello_done_ && !stop_requested_ && now - accepted_ > ctx_.options.hello_timeout) {
      ctx_.log.info("session {}: closing: no hello within {} ms", remote_,
                    ctx_.options.hello_timeout.count());
      stop();
      continue;
    }
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
