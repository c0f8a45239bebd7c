// TcpStreamTransport: the push-pull channel of asio_runtime.h, one TCP exchange per
// connection. Each exchange gets its deadline from one timer that closes the socket
// (rather than `co_await (op || timer)`): that also bounds a host-name lookup, which Asio
// cannot cancel, and lets `done` be called on time whatever the coroutine is waiting for.
// Asynchronous operations hold the internal State, never the public object.
#include "membership/asio_runtime.h"
#include "membership/asio_names.h"

#include "net_util.h"

#include "alldata/protocol/framing.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <map>
#include <memory>
#include <optional>

namespace alldata::broker {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;
using asio::ip::tcp;

// ---- TCP ---------------------------------------------------------------------------------

namespace {

// One exchange (served or requested): its socket and its deadline, shared by the
// coroutine that runs it and the timer that ends it.
struct Exchange {
  explicit Exchange(const asio::any_io_executor& ex) : socket(ex), timer(ex) {}
  tcp::socket socket;
  asio::steady_timer timer;
  std::uint64_t id = 0;
  std::string peer;  // "ip:port" served, the address as given requested
  std::chrono::milliseconds timeout{0};
  bool timed_out = false;
  StreamTransport::Done done;  // requested only; empty once delivered or dropped

  void abort() {
    boost::system::error_code ignored;
    socket.close(ignored);
    timer.cancel();
  }
};

// Reads one frame body, the length checked before anything is allocated. Errors:
// kBadRequest over `max`, kProtocolError for another bad length, kConnectionFailed for
// EOF, a reset or a short read.
asio::awaitable<Result<std::string>> read_frame(tcp::socket& socket, std::uint32_t max,
                                                const char* what) {
  std::array<std::uint8_t, protocol::kFrameHeaderBytes> header{};
  auto [ec, n] = co_await asio::async_read(socket, asio::buffer(header), as_tuple(use_awaitable));
  if (ec) {
    co_return Error(ErrorCode::kConnectionFailed,
                    ec == asio::error::eof ? std::string("connection closed") : ec.message());
  }
  const std::uint32_t length = protocol::read_frame_length(header.data());
  if (auto st = protocol::check_frame_length(length, max); !st) {
    if (length > max) {
      co_return Error(ErrorCode::kBadRequest, std::string(what) + " of " + std::to_string(length) +
                                                  " bytes over the limit of " + std::to_string(max));
    }
    co_return Error(ErrorCode::kProtocolError, std::string(what) + ": " + st.error().message);
  }
  std::string body(length, '\0');
  auto [bec, bn] = co_await asio::async_read(socket, asio::buffer(body), as_tuple(use_awaitable));
  if (bec) {
    co_return Error(ErrorCode::kConnectionFailed,
                    bec == asio::error::eof ? std::string(what) + " cut short" : bec.message());
  }
  co_return body;
}

// `body` behind its 4-byte length; nullopt for an empty body or one over 4 GiB.
std::optional<std::string> framed(std::string_view body) {
  if (body.empty() || body.size() > UINT32_MAX) return std::nullopt;
  std::string frame(protocol::kFrameHeaderBytes, '\0');
  protocol::write_frame_length(reinterpret_cast<std::uint8_t*>(frame.data()),
                               static_cast<std::uint32_t>(body.size()));
  frame.append(body);
  return frame;
}

}  // namespace

struct TcpStreamTransport::State : std::enable_shared_from_this<State> {
  State(asio::any_io_executor ex, std::shared_ptr<spdlog::logger> l, TcpStreamLimits lim)
      : executor(ex), acceptor(ex), resolver(ex), logger(std::move(l)), limits(lim) {}

  asio::any_io_executor executor;
  tcp::acceptor acceptor;
  tcp::resolver resolver;
  std::shared_ptr<spdlog::logger> logger;
  TcpStreamLimits limits;
  asio::ip::address ip;
  Handler handler;
  bool closed = false;
  std::size_t serving = 0;
  std::uint64_t refused = 0;
  NameCache<tcp::endpoint> names;
  std::uint64_t next_id = 0;
  std::map<std::uint64_t, std::weak_ptr<Exchange>> live;  // for close()

  // Runs `work` for `x` under x's deadline; `served` exchanges count against the limit.
  void run(std::shared_ptr<Exchange> x, asio::awaitable<void> work, bool served) {
    x->id = ++next_id;
    live[x->id] = x;
    if (served) ++serving;
    x->timer.expires_after(x->timeout);
    auto on_deadline = [self = shared_from_this(), w = std::weak_ptr<Exchange>(x)](
                           boost::system::error_code ec) {
      auto x = w.lock();
      if (ec || !x) return;
      x->timed_out = true;
      self->deliver(*x, Error(ErrorCode::kTimeout, x->peer + ": no answer within " +
                                                       std::to_string(x->timeout.count()) + " ms"));
      x->abort();
    };
    x->timer.async_wait(std::move(on_deadline));
    auto on_end = [self = shared_from_this(), x, served](std::exception_ptr e) {
      self->live.erase(x->id);
      if (served) --self->serving;
      if (!e) return;
      const std::string why = describe_exception(e);
      self->logger->error("membership: push-pull exchange with {} failed: {}", x->peer, why);
      self->deliver(*x, Error(ErrorCode::kConnectionFailed, x->peer + ": " + why));
    };
    asio::co_spawn(executor, std::move(work), std::move(on_end));
  }

  // Calls x's done once, later, unless the transport is closed by then.
  void deliver(Exchange& x, Result<std::string> result) {
    if (!x.done) return;
    auto call_done = [self = shared_from_this(), done = std::move(x.done), r = std::move(result)]() mutable {
      if (!self->closed) done(std::move(r));
    };
    asio::post(executor, std::move(call_done));
    x.done = nullptr;
  }

  void fail(Exchange& x, const std::string& why) {
    if (!x.timed_out) deliver(x, Error(ErrorCode::kConnectionFailed, x.peer + ": " + why));
  }

  // Where `to` is: numeric, cached, or looked up (a bounded number at a time).
  asio::awaitable<Result<tcp::endpoint>> endpoint_of(const std::string& to) {
    auto hp = parse_host_port(to);
    if (!hp) co_return Error(ErrorCode::kConnectionFailed, hp.error().message);
    if (auto endpoint = names.known(to, *hp)) co_return *endpoint;
    if (!names.start_lookup()) co_return Error(ErrorCode::kConnectionFailed, "too many host name lookups in flight");
    auto [ec, results] = co_await resolver.async_resolve(hp->host, std::to_string(hp->port), as_tuple(use_awaitable));
    if (ec || results.empty()) {
      names.end_lookup(to, std::nullopt);
      co_return Error(ErrorCode::kConnectionFailed,
                      "cannot resolve " + hp->host + ": " + (ec ? ec.message() : "no address"));
    }
    names.end_lookup(to, results.begin()->endpoint());
    co_return results.begin()->endpoint();
  }

  // Coroutines take `self` as a parameter, not a local: they start later, and the State
  // must live until then even if the transport is gone.
  asio::awaitable<void> call(std::shared_ptr<State> self, std::shared_ptr<Exchange> x, std::string frame) {
    auto endpoint = co_await endpoint_of(x->peer);
    if (x->timed_out || closed) co_return;  // a closed socket would reopen on connect
    if (!endpoint) co_return fail(*x, endpoint.error().message);
    auto [cec] = co_await x->socket.async_connect(*endpoint, as_tuple(use_awaitable));
    if (cec) co_return fail(*x, cec.message());
    auto [wec, wn] = co_await asio::async_write(x->socket, asio::buffer(frame), as_tuple(use_awaitable));
    if (wec) co_return fail(*x, wec.message());
    auto answer = co_await read_frame(x->socket, limits.max_frame_bytes, "answer");
    if (x->timed_out) co_return;
    if (answer) co_return deliver(*x, std::move(*answer));
    if (answer.error().code == ErrorCode::kBadRequest) {
      co_return deliver(*x, Error(ErrorCode::kBadRequest, x->peer + ": " + answer.error().message));
    }
    fail(*x, answer.error().message);
  }

  asio::awaitable<void> serve(std::shared_ptr<State> self, std::shared_ptr<Exchange> x) {
    auto request = co_await read_frame(x->socket, limits.max_frame_bytes, "request");
    if (!request) co_return drop(*x, request.error().message);
    if (!handler || closed) co_return drop(*x, "no handler installed");
    Handler h = handler;  // copy: the handler may uninstall itself while running
    auto frame = framed(h(x->peer, *request));
    if (closed || x->timed_out) co_return drop(*x, "closed while answering");
    if (!frame) co_return drop(*x, "the handler's answer is empty or over 4 GiB");
    auto [ec, n] = co_await asio::async_write(x->socket, asio::buffer(*frame), as_tuple(use_awaitable));
    if (ec) drop(*x, ec.message());
  }

  void drop(Exchange& x, const std::string& why) {
    logger->debug("membership: closing push-pull connection from {}: {}", x.peer,
                  x.timed_out ? "not done within " + std::to_string(limits.io_timeout.count()) + " ms" : why);
  }

  asio::awaitable<void> accept_loop(std::shared_ptr<State> self) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(as_tuple(use_awaitable));
      if (closed || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      if (ec) {  // e.g. out of file descriptors: do not spin
        logger->warn("membership: accepting push-pull connections: {}", ec.message());
        asio::steady_timer pause(executor, std::chrono::milliseconds(100));
        co_await pause.async_wait(as_tuple(use_awaitable));
        continue;
      }
      boost::system::error_code rec;
      const auto remote = socket.remote_endpoint(rec);
      const std::string peer = rec ? std::string("?") : endpoint_text(remote.address(), remote.port());
      if (serving >= limits.max_connections) {
        ++refused;
        logger->debug("membership: refusing push-pull connection from {}: {} in flight", peer, serving);
        socket.close(rec);
        continue;
      }
      auto x = std::make_shared<Exchange>(executor);
      x->socket = std::move(socket);
      x->peer = peer;
      x->timeout = limits.io_timeout;
      run(x, serve(self, x), /*served=*/true);
    }
  }
};

Result<std::unique_ptr<TcpStreamTransport>> TcpStreamTransport::open(asio::any_io_executor executor,
                                                                     const std::string& host_port,
                                                                     std::shared_ptr<spdlog::logger> logger,
                                                                     TcpStreamLimits limits) {
  auto ip_port = parse_ip_port(host_port, /*allow_port_zero=*/true, "membership address");
  if (!ip_port) return ip_port.error();
  auto state = std::make_shared<State>(executor, logger, limits);
  state->ip = ip_port->ip;
  const tcp::endpoint local(ip_port->ip, ip_port->port);
  boost::system::error_code ec;
  state->acceptor.open(local.protocol(), ec);
  if (!ec) state->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(local, ec);
  if (!ec) state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error(ErrorCode::kConnectionFailed,
                 "cannot listen for membership push-pull (tcp) on " + host_port + ": " + ec.message());
  }
  asio::co_spawn(executor, state->accept_loop(state), [logger](std::exception_ptr e) {
    if (e) logger->error("membership: tcp accept loop failed: {}", describe_exception(e));
  });
  return std::unique_ptr<TcpStreamTransport>(new TcpStreamTransport(std::move(state)));
}

TcpStreamTransport::TcpStreamTransport(std::shared_ptr<State> state) : state_(std::move(state)) {}

TcpStreamTransport::~TcpStreamTransport() { close(); }

std::string TcpStreamTransport::local_address() const { return endpoint_text(state_->ip, port()); }

std::uint16_t TcpStreamTransport::port() const noexcept {
  boost::system::error_code ec;
  const auto e = state_->acceptor.local_endpoint(ec);
  return ec ? 0 : e.port();
}

void TcpStreamTransport::request(const std::string& to, std::string request,
                                 std::chrono::milliseconds timeout, Done done) {
  State& s = *state_;
  if (s.closed) return;  // dropped, as for a transport destroyed with the call pending
  auto x = std::make_shared<Exchange>(s.executor);
  x->peer = to;
  x->timeout = timeout;
  x->done = std::move(done);
  // A request the peer would refuse is a caller's bug, reported like the other errors.
  if (request.size() > s.limits.max_frame_bytes) {
    return s.deliver(*x, Error(ErrorCode::kBadRequest, "request to " + to + " of " +
                                   std::to_string(request.size()) + " bytes over the limit"));
  }
  const auto size = static_cast<std::uint32_t>(request.size());
  if (auto st = protocol::check_frame_length(size, s.limits.max_frame_bytes); !st) {
    return s.deliver(*x, Error(ErrorCode::kBadRequest, "request to " + to + ": " + st.error().message));
  }
  auto frame = framed(request);
  s.run(x, s.call(state_, x, std::move(*frame)), /*served=*/false);
}

void TcpStreamTransport::set_handler(Handler handler) { state_->handler = std::move(handler); }

void TcpStreamTransport::close() {
  State& s = *state_;
  if (s.closed) return;
  s.closed = true;
  s.handler = {};
  boost::system::error_code ignored;
  s.acceptor.close(ignored);
  s.resolver.cancel();
  for (auto& [id, w] : s.live) {
    if (auto x = w.lock()) {
      x->done = nullptr;
      x->abort();
    }
  }
}

std::uint64_t TcpStreamTransport::connections_refused() const noexcept { return state_->refused; }

}  // namespace alldata::broker
