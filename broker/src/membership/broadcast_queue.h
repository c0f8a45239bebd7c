// Infection-style dissemination (SWIM): updates about members wait here and ride, a few at a
// time, on the datagrams a node sends anyway (pings, acks) and on its periodic gossip. Each
// update is sent at most `limit` times (retransmit_mult * ceil(log10(N + 1))), which reaches
// every member with high probability; fresher updates (fewer sends so far) go first, larger
// ones first among equals, newest first among those.
//
// One update per member: a newer update about a member replaces the older one, so the queue
// never holds more entries than there are members.
//
// Single-threaded value type.
#pragma once

#include "membership/codec.h"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace alldata::broker {

class BroadcastQueue {
 public:
  // Queues `message` about `node_id`, replacing any update about it still queued, as if it
  // had been sent `sends` times already.
  void push(const std::string& node_id, Message message, std::uint32_t sends = 0);
  // Drops the update about `node_id` (it was reaped).
  void erase(const std::string& node_id);

  // Takes updates that fit in `room` bytes (by encoded_bytes()), counting one send for
  // each and dropping those that reached `limit` sends. Appends them to `out` and returns
  // the bytes used.
  std::size_t take(std::size_t room, std::size_t limit, std::vector<Message>& out);

  std::size_t size() const noexcept { return by_node_.size(); }
  // No message is smaller (an ack or nack: a list element and its struct).
  static constexpr std::size_t kSmallest = 24;
  bool empty() const noexcept { return by_node_.empty(); }

 private:
  struct Item {
    std::string node_id;
    Message message;
    std::size_t bytes = 0;
    std::uint32_t sends = 0;
    std::uint64_t seq = 0;
  };
  // Order: fewest sends, then largest, then newest.
  struct Key {
    std::uint32_t sends;
    std::size_t bytes;
    std::uint64_t seq;
    bool operator<(const Key& o) const {
      if (sends != o.sends) return sends < o.sends;
      if (bytes != o.bytes) return bytes > o.bytes;
      return seq > o.seq;
    }
  };
  std::uint64_t next_seq_ = 1;
  std::map<Key, Item> queue_;
  std::map<std::string, Key, std::less<>> by_node_;
};

}  // namespace alldata::broker
