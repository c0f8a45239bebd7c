// UdpTransport, open_membership_transports() and TimerDriver of asio_runtime.h (the TCP
// transport is in asio_runtime_tcp.cc). UdpTransport keeps the design of the former
// gossip transport (UdpGossipTransport) behind the membership's interface: asynchronous
// operations hold a shared_ptr to the internal State, never the public object, so the
// public object can go away at any time on its executor.
#include "membership/asio_runtime.h"
#include "membership/asio_names.h"

#include "net_util.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <optional>

namespace alldata::broker {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;
using asio::ip::udp;

// ---- UDP ---------------------------------------------------------------------------------

struct UdpTransport::State : std::enable_shared_from_this<State> {
  State(asio::any_io_executor ex, std::shared_ptr<spdlog::logger> l, std::size_t max)
      : socket(ex), resolver(ex), logger(std::move(l)), max_queued(max) {}

  udp::socket socket;
  udp::resolver resolver;
  std::shared_ptr<spdlog::logger> logger;
  std::size_t max_queued;
  asio::ip::address ip;
  Receiver receiver;
  std::deque<std::pair<udp::endpoint, std::string>> queue;
  bool sending = false;
  bool closed = false;
  NameCache<udp::endpoint> names;
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

  void resolve_and_send(const std::string& to, const HostPort& hp, std::string bytes) {
    if (!names.start_lookup()) {
      ++dropped;
      return;
    }
    resolver.async_resolve(hp.host, std::to_string(hp.port),
                           [self = shared_from_this(), to, bytes = std::move(bytes)](
                               boost::system::error_code ec, udp::resolver::results_type results) mutable {
                             if (ec || results.empty()) {
                               self->names.end_lookup(to, std::nullopt);
                               ++self->dropped;
                               return;
                             }
                             self->names.end_lookup(to, results.begin()->endpoint());
                             self->enqueue(results.begin()->endpoint(), std::move(bytes));
                           });
  }

  // `self` is a parameter, not a local: a coroutine starts later, and the State must
  // live until then even if the transport is gone.
  asio::awaitable<void> receive_loop(std::shared_ptr<State> self) {
    udp::endpoint sender;
    for (;;) {
      auto [ec, n] = co_await socket.async_receive_from(asio::buffer(buffer), sender,
                                                        as_tuple(use_awaitable));
      if (closed || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
        co_return;
      }
      if (ec) continue;  // e.g. ICMP port unreachable from an earlier send: not our problem
      if (receiver) {
        Receiver r = receiver;  // copy: the receiver may uninstall itself while running
        r(endpoint_text(sender.address(), sender.port()), std::string_view(buffer.data(), n));
      }
    }
  }
};

Result<std::unique_ptr<UdpTransport>> UdpTransport::open(asio::any_io_executor executor,
                                                         const std::string& host_port,
                                                         std::shared_ptr<spdlog::logger> logger,
                                                         std::size_t max_queued) {
  auto ip_port = parse_ip_port(host_port, /*allow_port_zero=*/true, "membership address");
  if (!ip_port) return ip_port.error();
  auto state = std::make_shared<State>(executor, logger, max_queued);
  state->ip = ip_port->ip;
  const udp::endpoint local(ip_port->ip, ip_port->port);
  boost::system::error_code ec;
  state->socket.open(local.protocol(), ec);
  if (!ec) state->socket.bind(local, ec);
  if (ec) {
    return Error(ErrorCode::kConnectionFailed,
                 "cannot bind membership udp socket to " + host_port + ": " + ec.message());
  }
  asio::co_spawn(executor, state->receive_loop(state), [logger](std::exception_ptr e) {
    if (e) logger->error("membership: udp receive loop failed: {}", describe_exception(e));
  });
  return std::unique_ptr<UdpTransport>(new UdpTransport(std::move(state)));
}

UdpTransport::UdpTransport(std::shared_ptr<State> state) : state_(std::move(state)) {}

UdpTransport::~UdpTransport() { close(); }

std::string UdpTransport::local_address() const { return endpoint_text(state_->ip, port()); }

std::uint16_t UdpTransport::port() const noexcept {
  boost::system::error_code ec;
  const auto e = state_->socket.local_endpoint(ec);
  return ec ? 0 : e.port();
}

void UdpTransport::send(const std::string& to, std::string bytes) {
  State& s = *state_;
  auto hp = parse_host_port(to);
  if (s.closed || !hp) {
    ++s.dropped;
    return;
  }
  if (auto endpoint = s.names.known(to, *hp)) {
    s.enqueue(*endpoint, std::move(bytes));
  } else {
    s.resolve_and_send(to, *hp, std::move(bytes));
  }
}

void UdpTransport::set_receiver(Receiver receiver) { state_->receiver = std::move(receiver); }

void UdpTransport::close() {
  State& s = *state_;
  if (s.closed) return;
  s.closed = true;
  s.receiver = {};
  s.queue.clear();
  boost::system::error_code ignored;
  s.resolver.cancel();
  s.socket.close(ignored);
}

std::uint64_t UdpTransport::send_dropped() const noexcept { return state_->dropped; }

// ---- both --------------------------------------------------------------------------------

Result<std::pair<std::unique_ptr<UdpTransport>, std::unique_ptr<TcpStreamTransport>>>
open_membership_transports(asio::any_io_executor executor, const std::string& host_port,
                           std::shared_ptr<spdlog::logger> logger, TcpStreamLimits limits) {
  auto ip_port = parse_ip_port(host_port, /*allow_port_zero=*/true, "membership address");
  if (!ip_port) return ip_port.error();
  Error last;
  for (int attempt = 0; attempt < 20; ++attempt) {
    auto udp = UdpTransport::open(executor, host_port, logger);
    if (!udp) return udp.error();
    const std::string tcp_address = ip_port->port == 0 ? (*udp)->local_address() : host_port;
    auto tcp = TcpStreamTransport::open(executor, tcp_address, logger, limits);
    if (tcp) return std::make_pair(std::move(*udp), std::move(*tcp));
    if (ip_port->port != 0) return tcp.error();
    last = tcp.error();  // the OS gave UDP a port that TCP has: try another
  }
  return Error(ErrorCode::kConnectionFailed, "no port on " + endpoint_text(ip_port->ip, 0) +
                                                 " free for both udp and tcp in 20 tries: " + last.message);
}

// ---- timers ------------------------------------------------------------------------------

struct TimerDriver::State : std::enable_shared_from_this<State> {
  State(asio::any_io_executor ex, TimerQueue& q, Clock& c) : timer(ex), timers(&q), clock(&c) {}

  asio::steady_timer timer;
  TimerQueue* timers;
  Clock* clock;
  bool running = false;
  bool in_run = false;                    // inside run_due: re-armed once it returns
  std::optional<std::uint64_t> armed_for;  // the deadline (clock ms) the timer waits for

  void arm(std::uint64_t deadline_ms) {
    const std::uint64_t now = clock->now_ms();
    // Capped so a far deadline cannot overflow steady_clock: an early wake-up re-arms.
    const std::uint64_t delay = std::min<std::uint64_t>(deadline_ms > now ? deadline_ms - now : 0, 3'600'000);
    armed_for = deadline_ms;
    timer.expires_after(std::chrono::milliseconds(delay));  // cancels the previous wait
    timer.async_wait([w = weak_from_this()](boost::system::error_code ec) {
      auto self = w.lock();
      if (!ec && self) self->fire();
    });
  }

  void fire() {
    if (!running) return;
    armed_for.reset();
    in_run = true;
    timers->run_due(clock->now_ms());
    in_run = false;
    if (!running) return;
    if (auto next = timers->next_deadline()) arm(*next);
  }

  void earlier(std::uint64_t deadline_ms) {
    if (running && !in_run && (!armed_for || deadline_ms < *armed_for)) arm(deadline_ms);
  }
};

TimerDriver::TimerDriver(asio::any_io_executor executor, TimerQueue& timers, Clock& clock)
    : state_(std::make_shared<State>(executor, timers, clock)) {}

TimerDriver::~TimerDriver() { stop(); }

void TimerDriver::start() {
  State& s = *state_;
  if (s.running) return;
  s.running = true;
  s.timers->set_on_earlier([w = std::weak_ptr<State>(state_)](std::uint64_t deadline_ms) {
    if (auto self = w.lock()) self->earlier(deadline_ms);
  });
  if (auto next = s.timers->next_deadline()) s.arm(*next);
}

void TimerDriver::stop() {
  State& s = *state_;
  if (!s.running) return;
  s.running = false;
  s.armed_for.reset();
  s.timer.cancel();
  s.timers->set_on_earlier({});
}

}  // namespace alldata::broker
