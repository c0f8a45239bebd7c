#include "client_wire.h"

#include "alldata/protocol/wire.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>

#include <charconv>
#include <cstring>

namespace alldata::client::detail {

using namespace asio::experimental::awaitable_operators;

namespace {

std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

wire::CommitLevel to_wire(CommitLevel level) noexcept {
  switch (level) {
    case CommitLevel::kAny: return wire::CommitLevel::ANY;
    case CommitLevel::kOne: return wire::CommitLevel::ONE;
    case CommitLevel::kQuorum: return wire::CommitLevel::QUORUM;
    case CommitLevel::kAll: return wire::CommitLevel::ALL;
  }
  return wire::CommitLevel::QUORUM;
}

Error connection_error(const boost::system::error_code& ec, std::string_view what,
                       std::string_view address) {
  std::string m(what);
  m += " ";
  m += address;
  m += ": ";
  m += ec == asio::error::eof ? std::string("connection closed by the broker") : ec.message();
  return Error(ErrorCode::kConnectionFailed, std::move(m));
}

Error broker_error(wire::ErrorCode code, std::string_view message, std::string_view address) {
  std::string m(message);
  if (m.empty()) m = "(no message)";
  m += " [broker ";
  m += address;
  m += "]";
  return Error(protocol::from_wire(code), std::move(m));
}

Error protocol_error(std::string_view what, std::string_view address) {
  return Error(ErrorCode::kProtocolError,
               "cannot decode the answer of broker " + std::string(address) + ": " +
                   std::string(what));
}

namespace {

asio::awaitable<Status> resolve_and_connect(tcp::socket& socket, const HostPort& address,
                                            const std::string& text) {
  auto ex = co_await asio::this_coro::executor;
  tcp::resolver resolver(ex);
  const std::string port = std::to_string(address.port);
  auto [ec, endpoints] = co_await resolver.async_resolve(address.host, port, kAsTuple);
  if (ec) co_return connection_error(ec, "cannot resolve", text);
  auto [ec2, endpoint] = co_await asio::async_connect(socket, endpoints, kAsTuple);
  if (ec2) co_return connection_error(ec2, "cannot connect to", text);
  boost::system::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  co_return Status{};
}

}  // namespace

asio::awaitable<Status> connect_socket(tcp::socket& socket, const HostPort& address,
                                       std::chrono::milliseconds timeout) {
  const std::string text = to_string(address);
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto r = co_await (resolve_and_connect(socket, address, text) || timer.async_wait(kAsTuple));
  if (r.index() == 0) co_return std::get<0>(std::move(r));
  boost::system::error_code ignored;
  socket.close(ignored);
  co_return Error(ErrorCode::kConnectionFailed,
                  "cannot connect to " + text + ": no answer within " + ms_text(timeout));
}

asio::awaitable<Result<protocol::FrameBuffer>> read_frame(tcp::socket& socket,
                                                          std::string_view address) {
  std::uint8_t header[protocol::kFrameHeaderBytes];
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(header), kAsTuple);
  if (ec) co_return connection_error(ec, "lost connection to", address);
  const std::uint32_t length = protocol::read_frame_length(header);
  if (auto ok = protocol::check_frame_length(length, kMaxResponseFrameBytes); !ok) {
    co_return protocol_error(ok.error().message, address);
  }
  protocol::FrameBuffer frame(length);
  auto [ec2, n2] = co_await asio::async_read(socket, asio::buffer(frame.data(), length), kAsTuple);
  if (ec2) co_return connection_error(ec2, "lost connection to", address);
  co_return frame;
}

asio::awaitable<Result<protocol::FrameBuffer>> read_frame_within(
    tcp::socket& socket, std::string_view address, std::chrono::milliseconds timeout) {
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto r = co_await (read_frame(socket, address) || timer.async_wait(kAsTuple));
  if (r.index() == 0) co_return std::get<0>(std::move(r));
  co_return Error(ErrorCode::kTimeout, "broker " + std::string(address) +
                                           " did not answer within " + ms_text(timeout));
}

namespace {

asio::awaitable<Status> write_all(tcp::socket& socket, std::string_view bytes,
                                  std::string_view address) {
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes), kAsTuple);
  if (ec) co_return connection_error(ec, "lost connection to", address);
  co_return Status{};
}

}  // namespace

asio::awaitable<Status> write_within(tcp::socket& socket, std::string_view bytes,
                                     std::string_view address, std::chrono::milliseconds timeout) {
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto r = co_await (write_all(socket, bytes, address) || timer.async_wait(kAsTuple));
  if (r.index() == 0) co_return std::get<0>(std::move(r));
  co_return Error(ErrorCode::kTimeout, "broker " + std::string(address) +
                                           " did not take a request within " + ms_text(timeout));
}

std::string hello_frame(std::string_view client_id, std::uint64_t correlation_id) {
  std::string frame;
  capnp::MallocMessageBuilder message(64);
  auto request = message.initRoot<wire::Request>();
  request.setCorrelationId(correlation_id);
  auto hello = request.initHello();
  hello.setProtocolVersion(wire::PROTOCOL_VERSION);
  hello.setClientId(protocol::text(client_id));
  hello.setRole(wire::Role::CLIENT);
  protocol::append_frame(message, frame);
  return frame;
}

Result<BrokerInfo> decode_hello_answer(const protocol::FrameBuffer& answer,
                                       std::uint64_t correlation_id, std::string_view address) {
  const std::string text(address);
  return with_response(answer, text, [&](wire::Response::Reader r) -> Result<BrokerInfo> {
    if (r.getError() != wire::ErrorCode::OK) {
      return broker_error(r.getError(), protocol::view(r.getMessage()), text);
    }
    if (r.getCorrelationId() != correlation_id || !r.isHello()) {
      return protocol_error("expected the answer to hello", text);
    }
    auto h = r.getHello();
    BrokerInfo info;
    info.address = text;
    info.node_id = std::string(protocol::view(h.getNodeId()));
    info.protocol_version = h.getProtocolVersion();
    info.partitions = h.getPartitions();
    info.max_frame_bytes = h.getMaxFrameBytes();
    info.max_event_bytes = h.getMaxEventBytes();
    info.max_key_skew_ms = h.getMaxKeySkewMs();
    info.origin = h.getOrigin();
    if (info.partitions == 0) return protocol_error("hello answer says 0 partitions", text);
    return info;
  });
}

asio::awaitable<Result<BrokerInfo>> open_session(tcp::socket& socket, const HostPort& address,
                                                 std::string_view client_id,
                                                 std::uint64_t correlation_id,
                                                 std::chrono::milliseconds connect_timeout) {
  const std::string text = to_string(address);
  const auto started = std::chrono::steady_clock::now();
  if (auto ok = co_await connect_socket(socket, address, connect_timeout); !ok) {
    co_return ok.error();
  }
  // The hello exchange shares the connect deadline: a broker that accepts connections but
  // does not answer (frozen, overloaded) is given up on as soon as one that refuses them.
  const auto left = std::max(std::chrono::milliseconds(1),
                             connect_timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                   std::chrono::steady_clock::now() - started));
  const std::string frame = hello_frame(client_id, correlation_id);
  if (auto ok = co_await write_within(socket, frame, text, left); !ok) co_return ok.error();
  auto answer = co_await read_frame_within(socket, text, left);
  if (!answer) co_return answer.error();
  co_return decode_hello_answer(*answer, correlation_id, text);
}

void frame_buffers(capnp::MessageBuilder& message, std::string& header,
                   std::vector<asio::const_buffer>& out) {
  auto segments = message.getSegmentsForOutput();
  const std::size_t count = segments.size();
  const std::size_t table_bytes = ((count + 2) / 2) * 8;
  std::size_t body = table_bytes;
  for (auto& s : segments) body += s.size() * sizeof(capnp::word);
  header.assign(protocol::kFrameHeaderBytes + table_bytes, '\0');
  auto* p = reinterpret_cast<std::uint8_t*>(header.data());
  protocol::write_frame_length(p, static_cast<std::uint32_t>(body));
  auto put_le = [](std::uint8_t* q, std::uint32_t v) {
    q[0] = static_cast<std::uint8_t>(v);
    q[1] = static_cast<std::uint8_t>(v >> 8);
    q[2] = static_cast<std::uint8_t>(v >> 16);
    q[3] = static_cast<std::uint8_t>(v >> 24);
  };
  p += protocol::kFrameHeaderBytes;
  put_le(p, static_cast<std::uint32_t>(count - 1));
  for (std::size_t i = 0; i < count; ++i) {
    put_le(p + 4 + 4 * i, static_cast<std::uint32_t>(segments[i].size()));
  }
  out.emplace_back(header.data(), header.size());
  for (auto& s : segments) out.emplace_back(s.begin(), s.size() * sizeof(capnp::word));
}

}  // namespace alldata::client::detail
