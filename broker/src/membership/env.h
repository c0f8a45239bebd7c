// What the membership protocol needs from the world, as interfaces: a monotonic clock,
// randomness, an unreliable datagram service and a request/response stream service. The
// broker wires real ones (steady_clock, a seeded generator, UDP and TCP: asio_runtime.h);
// the simulator in tests/sim wires a simulated clock and network, so the same code runs
// thousands of nodes in one process, deterministically.
//
// Everything here is used from one executor (the membership's), never concurrently.
#pragma once

#include "alldata/protocol/error.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace alldata::broker {

// Milliseconds from any fixed origin, never going back.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::uint64_t now_ms() = 0;
};

// Uniform random numbers.
class Random {
 public:
  virtual ~Random() = default;
  virtual std::uint64_t below(std::uint64_t n) = 0;  // uniform in [0, n); 0 when n == 0
  virtual double unit() = 0;                         // uniform in [0, 1)
};

// std::chrono::steady_clock.
class SteadyClock final : public Clock {
 public:
  std::uint64_t now_ms() override;
};

// splitmix64: the same seed gives the same choices (simulations replay); the broker seeds
// it from std::random_device.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(std::uint64_t seed) : state_(seed) {}
  std::uint64_t below(std::uint64_t n) override;
  double unit() override;
  std::uint64_t next();

 private:
  std::uint64_t state_;
};

// An unreliable datagram service: datagrams may be lost, duplicated or reordered, never
// cut. Addresses are "host:port".
class DatagramTransport {
 public:
  // Called with the sender's address and the bytes, both borrowed for the call.
  using Receiver = std::function<void(std::string_view from, std::string_view bytes)>;

  virtual ~DatagramTransport() = default;
  // The address others reach this transport at.
  virtual std::string local_address() const = 0;
  // Queues one datagram; never blocks, never calls the receiver from inside. What cannot be
  // sent (bad address, queue full) is dropped, as the network may drop anything.
  virtual void send(const std::string& to, std::string bytes) = 0;
  // Installs the receiver (an empty function stops delivery).
  virtual void set_receiver(Receiver receiver) = 0;
};

// A reliable request/response service (TCP in a broker): one request, one answer.
class StreamTransport {
 public:
  // Answers one request from `from` (the peer's address as the transport sees it); the
  // answer is sent back and the exchange ends. Borrowed arguments live for the call.
  using Handler = std::function<std::string(std::string_view from, std::string_view request)>;
  // The answer, or kConnectionFailed / kTimeout / kBadRequest (answer too large).
  using Done = std::function<void(Result<std::string> answer)>;

  virtual ~StreamTransport() = default;
  // Sends `request` to `to` and calls `done` exactly once, later (never from inside this
  // call), with the answer or an error within `timeout`. Destroying the transport drops
  // the calls still pending without calling them.
  virtual void request(const std::string& to, std::string request, std::chrono::milliseconds timeout,
                       Done done) = 0;
  virtual void set_handler(Handler handler) = 0;
};

}  // namespace alldata::broker
