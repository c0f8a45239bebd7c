// Who holds the broker's connection slots, so that neither silent sockets nor idle sessions
// can lock healthy clients out. Two pools, shared by the client and peer listeners:
//
//  - pending: accepted, hello not done yet. At most `max_pending`: admitting one more closes
//    the oldest pending connection (a flood of silent sockets only ever evicts itself). The
//    session's watchdog also closes each one hello_timeout after it was accepted.
//  - sessions: past hello, at most `max_sessions`. A hello past it takes the place of the
//    session idle the longest, if that one has been idle (no request in progress, nothing
//    unsent) for `evict_idle_after_ms` at least, client sessions before peer sessions;
//    otherwise the hello is refused with kOverloaded.
//
// Times are monotonic milliseconds given by the caller, so tests drive them. Thread-safe:
// sessions on every I/O thread share one table. `close` callbacks are called outside the
// lock and must only post work to the connection's own executor.
#pragma once

#include "alldata/protocol/error.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>

namespace alldata::broker {

class ConnectionTable {
 public:
  struct Limits {
    std::uint32_t max_pending = 1000;
    std::uint32_t max_sessions = 10000;
    std::uint64_t evict_idle_after_ms = 10'000;
  };

  // One connection's slot. The session reports its activity through it.
  class Entry {
   public:
    // A request arrived or an answer went out, at `now_ms`; `busy`: requests are in
    // progress or answers unsent (a busy session is never evicted).
    void active(std::uint64_t now_ms, bool busy) noexcept {
      last_active_ms_.store(now_ms, std::memory_order_relaxed);
      busy_.store(busy, std::memory_order_relaxed);
    }

   private:
    friend class ConnectionTable;
    std::function<void()> close_;
    bool peer_ = false;          // a peer session (set by promote)
    bool session_ = false;       // past hello
    bool closing_ = false;       // evicted: its close was called
    std::atomic<std::uint64_t> last_active_ms_{0};
    std::atomic<bool> busy_{false};
    std::list<std::shared_ptr<Entry>>::iterator where_;
  };

  explicit ConnectionTable(Limits limits) : limits_(limits) {}

  ConnectionTable(const ConnectionTable&) = delete;
  ConnectionTable& operator=(const ConnectionTable&) = delete;

  // A connection was accepted at `now_ms`; `close` ends it (from any thread). Evicts the
  // oldest pending connection when max_pending are pending.
  std::shared_ptr<Entry> admit(std::function<void()> close, std::uint64_t now_ms);

  // Hello succeeded at `now_ms`: the connection becomes a session (`peer`: a peer
  // session), possibly evicting an idle one. kOverloaded when every slot is busy or
  // recently used: the caller answers it and closes.
  Status promote(const std::shared_ptr<Entry>& entry, bool peer, std::uint64_t now_ms);

  // The connection ended: its slot is free. Idempotent.
  void release(const std::shared_ptr<Entry>& entry);

  std::size_t pending() const;
  std::size_t sessions() const;
  // Connections closed to make room, since the start.
  std::uint64_t evicted() const;

 private:
  using List = std::list<std::shared_ptr<Entry>>;

  // The session to evict for a new one at `now_ms`, or null. Under mu_.
  std::shared_ptr<Entry> idlest(std::uint64_t now_ms) const;

  const Limits limits_;
  mutable std::mutex mu_;
  List pending_;   // oldest first
  List sessions_;
  std::uint64_t evicted_ = 0;
};

}  // namespace alldata::broker
