// The membership protocol on a real network: the env.h interfaces over Boost.Asio (a UDP
// socket for datagrams, TCP on the same IP and port number for push-pull) and a driver
// that runs a TimerQueue from one steady_timer. The protocol library stays free of Asio so
// the simulator can run it; this library is what a broker links to run it for real.
//
// Executors: every class here is executor-only. Create, use and destroy it on one
// executor (an io_context run by one thread), or while that executor is not running.
// Pending asynchronous operations keep only internal shared state alive, never the public
// object, so the public object may be destroyed at any time on its executor.
//
// Push-pull wire format (one exchange per TCP connection): the requester connects and
// sends one frame, a 4-byte big-endian length N then N bytes (0 < N <= max_frame_bytes,
// N a multiple of 8); the responder answers with one frame of the same form; both close.
#pragma once

#include "membership/env.h"
#include "membership/timer_queue.h"

#include "alldata/protocol/error.h"

#include <boost/asio/any_io_executor.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace alldata::broker {

// A UDP socket bound to HOST:PORT (port 0: the OS chooses; IPv6 as [::1]:PORT). One
// coroutine receives datagrams and hands each to the receiver; sends are queued (at most
// `max_queued` datagrams, beyond that dropped and counted) and written one at a time, so
// nothing blocks. Host names in destination addresses are resolved asynchronously and
// cached. Destruction closes the socket.
class UdpTransport final : public DatagramTransport {
 public:
  // Errors: kBadRequest for an address that is not HOST:PORT with a numeric host,
  // kConnectionFailed when the socket cannot be bound (the message names the address).
  // `logger` must not be null.
  static Result<std::unique_ptr<UdpTransport>> open(boost::asio::any_io_executor executor,
                                                    const std::string& host_port,
                                                    std::shared_ptr<spdlog::logger> logger,
                                                    std::size_t max_queued = 1024);

  ~UdpTransport() override;
  UdpTransport(const UdpTransport&) = delete;
  UdpTransport& operator=(const UdpTransport&) = delete;

  // The bound IP with the bound port ("127.0.0.1:41234"). A wildcard host (0.0.0.0, ::) is
  // not reachable by others: then set MembershipOptions::advertise_address.
  std::string local_address() const override;
  std::uint16_t port() const noexcept;  // 0 once closed
  // Queues one datagram (see DatagramTransport::send); the receiver is never called from
  // inside.
  void send(const std::string& to, std::string bytes) override;
  void set_receiver(Receiver receiver) override;

  // Closes the socket and drops the queue; later sends are dropped. Idempotent.
  void close();

  // Datagrams dropped before reaching the network (queue full, bad or unresolvable
  // address, send error, closed).
  std::uint64_t send_dropped() const noexcept;

  struct State;

 private:
  explicit UdpTransport(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

struct TcpStreamLimits {
  std::uint32_t max_frame_bytes = 16u << 20;  // requests read and answers accepted
  std::size_t max_connections = 64;           // concurrent exchanges served; more are closed
  std::chrono::milliseconds io_timeout{10'000};  // for one served exchange, start to end
};

// The push-pull channel: a TCP listener on HOST:PORT serving one exchange per connection
// (format above) with the installed handler, and a client for requests to others. A
// served exchange that breaks the format, is not finished within io_timeout, or arrives
// while no handler is installed only closes its own connection.
class TcpStreamTransport final : public StreamTransport {
 public:
  // Listens on `host_port` (port 0: the OS chooses). Errors: kBadRequest for an address
  // that is not HOST:PORT with a numeric host, kConnectionFailed when it cannot listen
  // (the message names the address). `logger` must not be null.
  static Result<std::unique_ptr<TcpStreamTransport>> open(boost::asio::any_io_executor executor,
                                                          const std::string& host_port,
                                                          std::shared_ptr<spdlog::logger> logger,
                                                          TcpStreamLimits limits = {});

  ~TcpStreamTransport() override;
  TcpStreamTransport(const TcpStreamTransport&) = delete;
  TcpStreamTransport& operator=(const TcpStreamTransport&) = delete;

  std::string local_address() const;    // the listening IP and port
  std::uint16_t port() const noexcept;  // 0 once closed

  // Connects to `to` ("host:port", host names resolved asynchronously and cached), sends
  // `request`, reads the answer, all within `timeout`. `done` runs exactly once, later, on
  // this executor, with the answer or: kConnectionFailed ("<to>: <reason>", also for a
  // malformed answer), kTimeout, kBadRequest (an answer over max_frame_bytes, or a request
  // that is not a valid frame body). Closing or destroying the transport drops the
  // pending `done`s without calling them, as it drops requests made after close().
  void request(const std::string& to, std::string request, std::chrono::milliseconds timeout,
               Done done) override;
  // Installs the handler for served exchanges (empty: connections are closed unanswered).
  void set_handler(Handler handler) override;

  // Stops listening, aborts every exchange in flight (served and requested) and drops
  // pending `done`s. Idempotent.
  void close();

  // Connections closed at accept because max_connections exchanges were in flight.
  std::uint64_t connections_refused() const noexcept;

  struct State;

 private:
  explicit TcpStreamTransport(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// Opens both membership transports on one IP and port number: UDP first, then TCP on the
// port UDP got. With port 0 and the TCP port already taken, retries with a new UDP port
// (up to 20 times). Errors as the two open() calls; with a fixed port the message names
// the address and the protocol that failed.
Result<std::pair<std::unique_ptr<UdpTransport>, std::unique_ptr<TcpStreamTransport>>>
open_membership_transports(boost::asio::any_io_executor executor, const std::string& host_port,
                           std::shared_ptr<spdlog::logger> logger, TcpStreamLimits limits = {});

// Runs `timers` on `executor`: one steady_timer armed for timers.next_deadline() (in ms of
// `clock`, converted through the difference from clock.now_ms(), so any Clock works),
// re-armed when an earlier deadline appears; when it fires, timers.run_due(clock.now_ms()).
// Borrows `timers` and `clock`, which must outlive it; it owns timers' on_earlier hook
// between start() and stop().
class TimerDriver {
 public:
  TimerDriver(boost::asio::any_io_executor executor, TimerQueue& timers, Clock& clock);
  ~TimerDriver();  // stop()
  TimerDriver(const TimerDriver&) = delete;
  TimerDriver& operator=(const TimerDriver&) = delete;

  // Installs the on_earlier hook and arms for the next deadline. Idempotent.
  void start();
  // Cancels the timer and uninstalls the hook; no callback runs from this driver after.
  void stop();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace alldata::broker
