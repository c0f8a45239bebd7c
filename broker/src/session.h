// One client or peer connection. A Session lives on one single-threaded io_context (its
// executor), so its state needs no locks. One coroutine reads frames; each request runs in
// its own coroutine so that requests pipeline and answer out of order; one coroutine
// writes responses, batching whatever is ready into one write; a watchdog enforces the
// hello, idle and write timeouts.
//
// Memory: the bytes a connection holds (requests read and not answered, answers not yet
// written, room reserved for scan pages being read) are bounded by
// options.max_connection_buffer_bytes: past it no request is read and no scan page is
// started until the client takes its answers (or the write timeout drops it).
//
// Lifecycle: run() until the peer closes, a protocol violation, a timeout, stop(), or the
// connection table evicts it. stop() stops reading; requests already read are still
// answered before the socket closes.
#pragma once

#include "server_context.h"

#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <capnp/message.h>
#include <kj/exception.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace alldata::broker {

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `peer_listener`: the socket came in on the peer listener, so only peer sessions (hello
  // with role peer) are allowed on it; on the client listener only client sessions are.
  Session(boost::asio::ip::tcp::socket socket, ServerContext& ctx, bool peer_listener);

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs the connection to its end. Call once, on the socket's executor.
  boost::asio::awaitable<void> run();

  // Stop reading requests; answer those in flight; then close. On the session's executor.
  void stop();

  const std::string& remote() const noexcept { return remote_; }

 private:
  using Clock = std::chrono::steady_clock;

  boost::asio::awaitable<void> read_loop();
  boost::asio::awaitable<void> write_loop();
  boost::asio::awaitable<void> watchdog();

  // Runs `request` while its `bytes` of frame count as held by the connection.
  boost::asio::awaitable<void> holding(std::size_t bytes, boost::asio::awaitable<void> request);
  // Waits until `bytes` more of answers fit in the connection's bound (or nothing is
  // buffered, so one large answer always goes), then reserves them. Release with
  // release_output() once the answer is queued (or not sent).
  boost::asio::awaitable<void> reserve_output(std::size_t bytes);
  void release_output(std::size_t bytes);
  // Releases a reservation when the request coroutine leaves its scope, answered or not.
  struct OutputReservation {
    Session& session;
    std::size_t bytes;
    ~OutputReservation() { session.release_output(bytes); }
  };
  // Answers queued or being written.
  std::size_t unsent() const noexcept { return out_bytes_ + writing_bytes_; }
  // The client cannot take answers any more: forget them.
  void drop_output();
  // Everything the connection holds against max_connection_buffer_bytes.
  std::size_t buffered() const noexcept { return held_request_bytes_ + unsent() + reserved_output_; }
  // Tells the connection table what this connection did just now.
  void note_activity();
  // The connection table gave this connection's slot to a newer one.
  void evict();

  // Looks at one frame and starts its handler. False: close the connection.
  bool dispatch(protocol::FrameBuffer frame);

  boost::asio::awaitable<void> handle_produce(protocol::FrameBuffer frame);
  boost::asio::awaitable<void> handle_scan(protocol::FrameBuffer frame);
  // replicate / deliverHints from a peer: store events under the keys they carry.
  boost::asio::awaitable<void> handle_replicate(protocol::FrameBuffer frame, bool delivered_hints);
  // `stream` non-empty: include its partitions' replica sets.
  boost::asio::awaitable<void> handle_metadata(std::uint64_t correlation_id, bool streams,
                                               std::string stream);
  void handle_hello(std::uint64_t correlation_id, const protocol::FrameBuffer& frame);
  // Anti-entropy from a peer (session_repair.cc): digests, key listings, events by key.
  boost::asio::awaitable<void> handle_digest(protocol::FrameBuffer frame);
  boost::asio::awaitable<void> handle_fetch_range(protocol::FrameBuffer frame);
  // A client asks for one anti-entropy run on this broker; answered when it ends.
  boost::asio::awaitable<void> handle_repair(protocol::FrameBuffer frame);
  // An operator removes a member for good.
  boost::asio::awaitable<void> handle_remove_member(protocol::FrameBuffer frame);
  boost::asio::awaitable<void> handle_decommission(protocol::FrameBuffer frame);

  // Decodes `frame` and calls `read(request)` (a wire::Request::Reader returning Status)
  // inside the Cap'n Proto exception guard, keeping the correlation id. A malformed message
  // (badRequest "malformed <what>: ...") or an error `read` returns is answered and ends
  // the request: false. The frame is released either way.
  template <class Read>
  bool read_request(protocol::FrameBuffer& frame, const char* what,
                    std::uint64_t* correlation_id, Read&& read) {
    Status st;
    try {
      auto reader = protocol::make_reader(frame, ctx_.options.nesting_limit);
      auto request = reader.getRoot<wire::Request>();
      *correlation_id = request.getCorrelationId();
      st = read(request);
    } catch (const kj::Exception& e) {
      st = Error(ErrorCode::kBadRequest,
                 std::string("malformed ") + what + ": " + e.getDescription().cStr());
    }
    frame = protocol::FrameBuffer();
    if (!st) fail_request(*correlation_id, st.error());
    return static_cast<bool>(st);
  }
  // Answers `error` and ends the request.
  void fail_request(std::uint64_t correlation_id, const Error& error) {
    send_error(correlation_id, error);
    request_done();
  }
  // The root of an `ok` answer to request `correlation_id`, in `mb`.
  static wire::Response::Builder ok_response(capnp::MessageBuilder& mb,
                                             std::uint64_t correlation_id);

  // Queues a response for the writer.
  void send(capnp::MessageBuilder& message);
  void send_error(std::uint64_t correlation_id, const Error& error);
  // An `ok` answer without a result.
  void send_ok(std::uint64_t correlation_id);
  // A request coroutine finished (one fewer in flight).
  void request_done();

  boost::asio::ip::tcp::socket socket_;
  ServerContext& ctx_;
  std::string remote_;

  boost::asio::steady_timer reader_wake_;  // in-flight or output space freed, or stop
  boost::asio::steady_timer writer_wake_;  // output queued, or the writer should finish
  boost::asio::steady_timer watchdog_timer_;
  boost::asio::steady_timer space_wake_;   // output space freed (any number of waiters)
  std::shared_ptr<ConnectionTable::Entry> slot_;

  std::vector<std::string> out_;      // framed responses waiting for the writer
  std::size_t out_bytes_ = 0;         // their bytes
  std::uint32_t in_flight_ = 0;       // requests read but not yet answered
  std::size_t held_request_bytes_ = 0;  // frames of requests in progress
  std::size_t reserved_output_ = 0;     // room for answers being prepared
  std::size_t writing_bytes_ = 0;       // the write in progress
  const bool peer_listener_;
  bool hello_done_ = false;
  bool peer_role_ = false;
  bool stop_requested_ = false;       // stop(): read no more
  bool close_after_flush_ = false;    // protocol violation: answer, then close
  bool writer_exit_ = false;
  bool writer_done_ = false;
  bool writing_ = false;
  bool finished_ = false;
  const Clock::time_point accepted_;
  Clock::time_point last_activity_;
  Clock::time_point write_started_;
  std::vector<storage::HeaderView> headers_scratch_;
};

}  // namespace alldata::broker
