// The in-process network: a FIFO of datagrams, delivered on demand.
#include "alldata/broker/gossip_memory.h"

namespace alldata::broker {

MemoryTransport::MemoryTransport(MemoryNetwork& network, std::string address)
    : network_(network), address_(std::move(address)) {
  network_.endpoints_[address_] = this;
}

MemoryTransport::~MemoryTransport() {
  auto it = network_.endpoints_.find(address_);
  if (it != network_.endpoints_.end() && it->second == this) network_.endpoints_.erase(it);
}

void MemoryTransport::send(const std::string& to, std::string bytes) {
  network_.inject(address_, to, std::move(bytes));
}

void MemoryNetwork::inject(const std::string& from, const std::string& to, std::string bytes) {
  if (observer_) observer_(from, to, bytes);
  if (queue_.size() >= max_queued_ || down_.count(from) != 0) {
    ++lost_;
    return;
  }
  queue_.push_back(Datagram{from, to, std::move(bytes)});
}

std::size_t MemoryNetwork::run(std::size_t max_deliveries) {
  std::size_t n = 0;
  while (!queue_.empty() && n < max_deliveries) {
    Datagram d = std::move(queue_.front());
    queue_.pop_front();
    auto it = endpoints_.find(d.to);
    if (it == endpoints_.end() || down_.count(d.to) != 0 || down_.count(d.from) != 0 ||
        !it->second->receiver_) {
      ++lost_;
      continue;
    }
    ++n;
    ++delivered_;
    // Copy: the receiver may replace itself (a gossiper destroyed from an event handler).
    DatagramTransport::Receiver receiver = it->second->receiver_;
    receiver(d.from, d.bytes);
  }
  return n;
}

void MemoryNetwork::set_down(const std::string& address, bool down) {
  if (down) {
    down_.insert(address);
  } else {
    down_.erase(address);
  }
}

}  // namespace alldata::broker
