// UDP transport and tick timer for the gossiper. Asynchronous operations hold a
// shared_ptr to the internal State, so the public object can go away at any time on its
// executor.
#include "alldata/broker/gossip_udp.h"

#include "net_util.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <deque>
#include <map>

namespace alldata::broker {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

}  // namespace

struct UdpGossipTransport::State : std::enable_shared_from_this<State> {
  State(asio::any_io_executor ex, std::shared_ptr<spdlog::logger> l, std::size_t max)
      : socket(ex), resolver(ex), logger(std::move(l)), max_queued(max) {}

  udp::socket socket;
  udp::resolver resolver;
  std::shared_ptr<spdlog::logger> logger;
  std::size_t max_queued;
  std::string host;
  Receiver receiver;
  std::deque<std::pair<udp::endpoint, std::string>> queue;
  bool sending = false;
  bool closed = false;
  std::map<std::string, udp::endpoint> resolved;  // host name cache
  std::size_t resolving = 0;
  std::uint64_t dropped = 0;
  std::array<char, 65536> buffer{};

  void enqueue(const udp::endpoint& to, std::string bytes) {
    if (closed || queue.size() >= max_queued) {
      ++dropped;
      return;
    }
    queue.emplace_back(to, std::move(bytes));
    if (!sending) write_next();
  }

  void write_next() {
    if (queue.empty() || closed) {
      sending = false;
      return;
    }
    sending = true;
    auto& front = queue.front();
    socket.async_send_to(asio::buffer(front.second), front.first,
                         [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                           if (ec) ++self->dropped;
                           if (!self->queue.empty()) self->queue.pop_front();
                           self->write_next();
                         });
  }

  asio::awaitable<void> receive_loop() {
    auto self = shared_from_this();
    udp::endpoint sender;
    for (;;) {
      auto [ec, n] = co_await socket.async_receive_from(asio::buffer(buffer), sender,
                                                        asio::as_tuple(asio::use_awaitable));
      if (closed || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
        co_return;
      }
      if (ec) continue;  // e.g. ICMP port unreachable from an earlier send: not our problem
      if (receiver) {
        // Copy: the receiver may uninstall itself while running.
        Receiver r = receiver;
        r(endpoint_text(sender.address(), sender.port()), std::string_view(buffer.data(), n));
      }
    }
  }
};

Result<std::unique_ptr<UdpGossipTransport>> UdpGossipTransport::open(
    asio::any_io_executor executor, const std::string& host_port,
    std::shared_ptr<spdlog::logger> logger, std::size_t max_queued) {
  auto ip_port = parse_ip_port(host_port, /*allow_port_zero=*/true, "gossip address");
  if (!ip_port) return ip_port.error();
  auto state = std::make_shared<State>(executor, logger, max_queued);
  state->host = ip_port->ip.to_string();
  const udp::endpoint local(ip_port->ip, ip_port->port);
  boost::system::error_code ec;
  state->socket.open(local.protocol(), ec);
  if (!ec) state->socket.bind(local, ec);
  if (ec) {
    return Error(ErrorCode::kConnectionFailed,
                 "cannot bind gossip socket to " + host_port + ": " + ec.message());
  }
  asio::co_spawn(executor, state->receive_loop(), [logger](std::exception_ptr e) {
    if (e) logger->error("gossip: udp receive loop failed: {}", describe_exception(e));
  });
  return std::unique_ptr<UdpGossipTransport>(new UdpGossipTransport(std::move(state)));
}

UdpGossipTransport::UdpGossipTransport(std::shared_ptr<State> state) : state_(std::move(state)) {}

UdpGossipTransport::~UdpGossipTransport() { close(); }

std::string UdpGossipTransport::local_address() const {
  return to_string(HostPort{state_->host, port()});
}

std::uint16_t UdpGossipTransport::port() const noexcept {
  boost::system::error_code ec;
  const auto e = state_->socket.local_endpoint(ec);
  return ec ? 0 : e.port();
}

void UdpGossipTransport::send(const std::string& to, std::string bytes) {
  State& s = *state_;
  if (s.closed) {
    ++s.dropped;
    return;
  }
  auto hp = parse_host_port(to);
  if (!hp) {
    ++s.dropped;
    return;
  }
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(hp->host, ec);
  if (!ec) {
    s.enqueue(udp::endpoint(address, hp->port), std::move(bytes));
    return;
  }
  if (auto it = s.resolved.find(to); it != s.resolved.end()) {
    s.enqueue(it->second, std::move(bytes));
    return;
  }
  if (s.resolving >= 16) {  // bound the lookups in flight
    ++s.dropped;
    return;
  }
  ++s.resolving;
  s.resolver.async_resolve(
      hp->host, std::to_string(hp->port),
      [self = state_->shared_from_this(), to, bytes = std::move(bytes)](
          boost::system::error_code rec, udp::resolver::results_type results) mutable {
        --self->resolving;
        if (rec || results.empty()) {
          ++self->dropped;
          return;
        }
        if (self->resolved.size() > 1024) self->resolved.clear();
        self->resolved[to] = results.begin()->endpoint();
        self->enqueue(results.begin()->endpoint(), std::move(bytes));
      });
}

void UdpGossipTransport::set_receiver(Receiver receiver) { state_->receiver = std::move(receiver); }

void UdpGossipTransport::close() {
  State& s = *state_;
  if (s.closed) return;
  s.closed = true;
  s.receiver = {};
  s.queue.clear();
  boost::system::error_code ignored;
  s.resolver.cancel();
  s.socket.close(ignored);
}

std::uint64_t UdpGossipTransport::send_dropped() const noexcept { return state_->dropped; }

struct GossipTicker::State : std::enable_shared_from_this<State> {
  State(asio::any_io_executor ex, Gossiper& g, std::chrono::milliseconds i)
      : timer(ex), gossiper(&g), interval(i) {}
  asio::steady_timer timer;
  Gossiper* gossiper;
  std::chrono::milliseconds interval;
  bool stopped = true;

  void arm() {
    timer.expires_after(interval);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      self->gossiper->tick();
      if (!self->stopped) self->arm();
    });
  }
};

GossipTicker::GossipTicker(asio::any_io_executor executor, Gossiper& gossiper,
                           std::chrono::milliseconds interval)
    : state_(std::make_shared<State>(executor, gossiper, interval)) {}

GossipTicker::~GossipTicker() { stop(); }

void GossipTicker::start() {
  if (!state_->stopped) return;
  state_->stopped = false;
  state_->arm();
}

void GossipTicker::stop() {
  state_->stopped = true;
  state_->timer.cancel();
}

}  // namespace alldata::broker
