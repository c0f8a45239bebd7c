#include "membership/broadcast_queue.h"

namespace alldata::broker {

void BroadcastQueue::push(const std::string& node_id, Message message, std::uint32_t sends) {
  erase(node_id);
  Item item{node_id, std::move(message), 0, sends, next_seq_++};
  item.bytes = encoded_bytes(item.message);
  const Key key{sends, item.bytes, item.seq};
  by_node_.emplace(node_id, key);
  queue_.emplace(key, std::move(item));
}

void BroadcastQueue::erase(const std::string& node_id) {
  auto it = by_node_.find(node_id);
  if (it == by_node_.end()) return;
  queue_.erase(it->second);
  by_node_.erase(it);
}

std::size_t BroadcastQueue::take(std::size_t room, std::size_t limit, std::vector<Message>& out) {
  std::size_t used = 0;
  std::vector<Item> again;
  // The walk ends once even the smallest message cannot fit, or after a run of updates too
  // large for what is left: a datagram costs O(what it carries), not O(queue).
  std::size_t misses = 0;
  for (auto it = queue_.begin(); it != queue_.end() && room - used >= kSmallest && misses < 16;) {
    if (it->second.bytes > room - used) {
      ++misses;
      ++it;
      continue;
    }
    Item item = std::move(it->second);
    it = queue_.erase(it);
    by_node_.erase(item.node_id);
    used += item.bytes;
    out.push_back(item.message);
    if (++item.sends < limit) again.push_back(std::move(item));
  }
  // Re-queued after the walk, so an update is taken at most once per call.
  for (auto& item : again) {
    const Key key{item.sends, item.bytes, item.seq};
    by_node_.emplace(item.node_id, key);
    queue_.emplace(key, std::move(item));
  }
  return used;
}

}  // namespace alldata::broker
