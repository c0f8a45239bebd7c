// An in-process datagram network and a manual clock, so tests and simulations run many
// gossipers in one thread, deterministically and without sleeping: sends are queued, and
// run() delivers them (and the replies they cause) in FIFO order. Nodes can be taken down
// (their datagrams, in and out, are lost) and brought back; every delivery can be observed.
//
// Single-threaded: the network, its transports and the gossipers on it are used from one
// thread. The network must outlive its transports.
#pragma once

#include "alldata/broker/gossip.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace alldata::broker {

// Time moves only when told to.
class ManualGossipClock final : public GossipClock {
 public:
  explicit ManualGossipClock(std::uint64_t start_ms = 0) : now_(start_ms) {}
  std::uint64_t now_ms() override { return now_; }
  void advance(std::uint64_t ms) { now_ += ms; }

 private:
  std::uint64_t now_;
};

class MemoryNetwork;

// One endpoint of a MemoryNetwork, registered under its address for its lifetime.
class MemoryTransport final : public DatagramTransport {
 public:
  MemoryTransport(MemoryNetwork& network, std::string address);
  ~MemoryTransport() override;
  MemoryTransport(const MemoryTransport&) = delete;
  MemoryTransport& operator=(const MemoryTransport&) = delete;

  std::string local_address() const override { return address_; }
  void send(const std::string& to, std::string bytes) override;
  void set_receiver(Receiver receiver) override { receiver_ = std::move(receiver); }

 private:
  friend class MemoryNetwork;
  MemoryNetwork& network_;
  std::string address_;
  Receiver receiver_;
};

class MemoryNetwork {
 public:
  // Called for every datagram sent (before any loss): sender, destination, bytes.
  using Observer =
      std::function<void(const std::string& from, const std::string& to, std::string_view bytes)>;

  explicit MemoryNetwork(std::size_t max_queued = 1'000'000) : max_queued_(max_queued) {}
  MemoryNetwork(const MemoryNetwork&) = delete;
  MemoryNetwork& operator=(const MemoryNetwork&) = delete;

  // Queues a datagram as if `from` had sent it (tests use it to inject garbage).
  void inject(const std::string& from, const std::string& to, std::string bytes);

  // Delivers queued datagrams, including those sent while delivering, until the queue is
  // empty or `max_deliveries` were made. Returns the number delivered.
  std::size_t run(std::size_t max_deliveries = SIZE_MAX);

  // A down address neither sends nor receives: its datagrams are lost, as are those
  // already queued to or from it when they come up for delivery.
  void set_down(const std::string& address, bool down);

  void set_observer(Observer observer) { observer_ = std::move(observer); }

  std::uint64_t delivered() const noexcept { return delivered_; }
  std::uint64_t lost() const noexcept { return lost_; }

 private:
  friend class MemoryTransport;
  struct Datagram {
    std::string from;
    std::string to;
    std::string bytes;
  };
  std::size_t max_queued_;
  std::map<std::string, MemoryTransport*> endpoints_;
  std::set<std::string> down_;
  std::deque<Datagram> queue_;
  Observer observer_;
  std::uint64_t delivered_ = 0;
  std::uint64_t lost_ = 0;
};

}  // namespace alldata::broker
