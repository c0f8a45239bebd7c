// Gossip on a real network: a DatagramTransport over one Boost.Asio UDP socket, and a
// GossipTicker that calls Gossiper::tick() every gossip interval. Both live on one
// executor (an io_context thread or a strand), which is also where the gossiper's receiver
// and event handlers run.
#pragma once

#include "alldata/broker/gossip.h"
#include "alldata/protocol/error.h"

#include <boost/asio/any_io_executor.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace alldata::broker {

// A UDP socket bound to HOST:PORT (port 0: the OS chooses; IPv6 as [::1]:PORT). One
// coroutine receives datagrams and hands each to the receiver; sends are queued (at most
// `max_queued` datagrams, beyond that dropped and counted) and written one at a time, so
// nothing ever blocks. Host names in destination addresses are resolved asynchronously
// and cached.
//
// Executor-only: create, use and destroy it on its executor (or while that executor is
// not running). Destruction closes the socket; pending operations end with
// operation_aborted and keep only internal state alive, never this object.
class UdpGossipTransport final : public DatagramTransport {
 public:
  // Errors: kBadRequest for an address that is not HOST:PORT with a numeric host,
  // kConnectionFailed when the socket cannot be bound (the message names the address).
  static Result<std::unique_ptr<UdpGossipTransport>> open(
      boost::asio::any_io_executor executor, const std::string& host_port,
      std::shared_ptr<spdlog::logger> logger, std::size_t max_queued = 1024);

  ~UdpGossipTransport() override;
  UdpGossipTransport(const UdpGossipTransport&) = delete;
  UdpGossipTransport& operator=(const UdpGossipTransport&) = delete;

  // The bound host as given with the bound port ("127.0.0.1:41234"). A wildcard host
  // (0.0.0.0, ::) is not reachable: then set GossipOptions::advertise_address.
  std::string local_address() const override;
  std::uint16_t port() const noexcept;
  void send(const std::string& to, std::string bytes) override;
  void set_receiver(Receiver receiver) override;

  // Closes the socket; later sends are dropped.
  void close();

  // Datagrams dropped before reaching the network (queue full, bad or unresolvable
  // address, send error).
  std::uint64_t send_dropped() const noexcept;

  struct State;

 private:
  explicit UdpGossipTransport(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// Calls gossiper.tick() every `interval` on `executor` until stop() or destruction.
// Executor-only, like the transport. Borrows `gossiper`, which must outlive it.
class GossipTicker {
 public:
  GossipTicker(boost::asio::any_io_executor executor, Gossiper& gossiper,
               std::chrono::milliseconds interval);
  ~GossipTicker();
  GossipTicker(const GossipTicker&) = delete;
  GossipTicker& operator=(const GossipTicker&) = delete;

  void start();
  void stop();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace alldata::broker
