#include "connection_table.h"

#include <string>

namespace alldata::broker {

std::shared_ptr<ConnectionTable::Entry> ConnectionTable::admit(std::function<void()> close,
                                                               std::uint64_t now_ms) {
  auto entry = std::make_shared<Entry>();
  entry->close_ = std::move(close);
  entry->last_active_ms_.store(now_ms, std::memory_order_relaxed);
  std::shared_ptr<Entry> victim;
  {
    std::lock_guard lock(mu_);
    if (limits_.max_pending > 0 && pending_.size() >= limits_.max_pending) {
      victim = pending_.front();
      pending_.pop_front();
      victim->closing_ = true;
      ++evicted_;
    }
    entry->where_ = pending_.insert(pending_.end(), entry);
  }
  if (victim) victim->close_();
  return entry;
}

std::shared_ptr<ConnectionTable::Entry> ConnectionTable::idlest(std::uint64_t now_ms) const {
  std::shared_ptr<Entry> best;
  std::uint64_t best_ms = 0;
  for (const auto& e : sessions_) {
    if (e->closing_ || e->busy_.load(std::memory_order_relaxed)) continue;
    const std::uint64_t last = e->last_active_ms_.load(std::memory_order_relaxed);
    if (now_ms < last || now_ms - last < limits_.evict_idle_after_ms) continue;
    // Client sessions go before peer sessions; then the one idle the longest.
    if (!best || (best->peer_ && !e->peer_) || (best->peer_ == e->peer_ && last < best_ms)) {
      best = e;
      best_ms = last;
    }
  }
  return best;
}

Status ConnectionTable::promote(const std::shared_ptr<Entry>& entry, bool peer,
                                std::uint64_t now_ms) {
  std::shared_ptr<Entry> victim;
  {
    std::lock_guard lock(mu_);
    if (entry->session_) return {};
    if (entry->closing_) {
      return Error(ErrorCode::kOverloaded, "this connection was closed to make room for newer ones");
    }
    if (sessions_.size() >= limits_.max_sessions) {
      victim = idlest(now_ms);
      if (!victim) {
        return Error(ErrorCode::kOverloaded,
                     "the broker has " + std::to_string(sessions_.size()) +
                         " sessions open (max-connections), none idle for " +
                         std::to_string(limits_.evict_idle_after_ms) +
                         " ms: try again later or another broker");
      }
      sessions_.erase(victim->where_);
      victim->closing_ = true;
      ++evicted_;
    }
    pending_.erase(entry->where_);
    entry->session_ = true;
    entry->peer_ = peer;
    entry->last_active_ms_.store(now_ms, std::memory_order_relaxed);
    entry->where_ = sessions_.insert(sessions_.end(), entry);
  }
  if (victim) victim->close_();
  return {};
}

void ConnectionTable::release(const std::shared_ptr<Entry>& entry) {
  std::lock_guard lock(mu_);
  if (entry->closing_) return;  // already out of the lists
  (entry->session_ ? sessions_ : pending_).erase(entry->where_);
  entry->closing_ = true;
}

std::size_t ConnectionTable::pending() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

std::size_t ConnectionTable::sessions() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

std::uint64_t ConnectionTable::evicted() const {
  std::lock_guard lock(mu_);
  return evicted_;
}

}  // namespace alldata::broker
