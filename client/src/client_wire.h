// What the Producer, Scanner and Admin share about talking to a broker: addresses, TCP
// connects and frame reads with deadlines (Asio coroutines), the hello exchange, and
// turning broker answers into alldata::Error. Internal to the client library.
#pragma once

#include "alldata.capnp.h"
#include "alldata/client/types.h"
#include "alldata/protocol/address.h"
#include "alldata/protocol/error.h"
#include "alldata/protocol/framing.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <capnp/message.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace alldata::client::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
inline constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// The largest answer frame the client accepts. Answers may be larger than the broker's
// request limit (a scan page of large events), so this is the client's own bound.
inline constexpr std::uint32_t kMaxResponseFrameBytes = 256u << 20;

using alldata::HostPort;          // alldata/protocol/address.h
using alldata::parse_host_port;

wire::CommitLevel to_wire(CommitLevel level) noexcept;

// An error for a failed socket operation on `address`: kConnectionFailed.
Error connection_error(const boost::system::error_code& ec, std::string_view what,
                       std::string_view address);

// The error a broker answered with, its address appended to the message.
Error broker_error(wire::ErrorCode code, std::string_view message, std::string_view address);

// Resolves and connects `socket` (which must be closed) to `address` within `timeout`
// (TCP_NODELAY set). kConnectionFailed on any failure, including the timeout.
asio::awaitable<Status> connect_socket(tcp::socket& socket, const HostPort& address,
                                       std::chrono::milliseconds timeout);

// Reads one whole frame. kConnectionFailed when the connection breaks or closes,
// kProtocolError on a bad frame length.
asio::awaitable<Result<protocol::FrameBuffer>> read_frame(tcp::socket& socket,
                                                          std::string_view address);

// read_frame() with a deadline: kTimeout when no whole frame arrived within `timeout`.
asio::awaitable<Result<protocol::FrameBuffer>> read_frame_within(tcp::socket& socket,
                                                                 std::string_view address,
                                                                 std::chrono::milliseconds timeout);

// Writes `bytes` within `timeout`: kConnectionFailed or kTimeout.
asio::awaitable<Status> write_within(tcp::socket& socket, std::string_view bytes,
                                     std::string_view address, std::chrono::milliseconds timeout);

// Connects to `address`, sends hello and checks the answer, all within `connect_timeout`.
// Errors: kConnectionFailed, kTimeout, the broker's error (e.g. kUnsupportedVersion),
// kProtocolError.
asio::awaitable<Result<BrokerInfo>> open_session(tcp::socket& socket, const HostPort& address,
                                                 std::string_view client_id,
                                                 std::uint64_t correlation_id,
                                                 std::chrono::milliseconds connect_timeout);

// The framed hello request of a client.
std::string hello_frame(std::string_view client_id, std::uint64_t correlation_id);
// The BrokerInfo of a hello answer from `address`, or the broker's refusal, or
// kProtocolError.
Result<BrokerInfo> decode_hello_answer(const protocol::FrameBuffer& answer,
                                       std::uint64_t correlation_id, std::string_view address);

// A framed request: the 4-byte length, the segment table and the segments of `message`,
// as buffers that borrow `message` and `header` (which must outlive the write).
void frame_buffers(capnp::MessageBuilder& message, std::string& header,
                   std::vector<asio::const_buffer>& out);

// Decodes the Response root of `frame`, calling `fn(wire::Response::Reader)` and returning
// what it returns. A malformed message becomes kProtocolError. `fn` must return Result<T>
// or Status.
template <class Fn>
auto with_response(const protocol::FrameBuffer& frame, std::string_view address, Fn&& fn)
    -> decltype(fn(std::declval<wire::Response::Reader>()));

// Result of decoding an undecodable answer.
Error protocol_error(std::string_view what, std::string_view address);

}  // namespace alldata::client::detail

#include "client_wire_inl.h"
