// A deterministic simulated world for the membership code: one clock, a priority queue of
// events, and a network of hosts joined by datagrams (lossy, delayed, reordered, blockable
// in one direction) and request/response streams (reliable, slower under loss, failing
// across a partition or to a host that is down). Hosts can crash (everything in flight to
// them is lost), restart, and pause (a SIGSTOP: what arrives waits, timers do not run).
//
// The same seed gives the same run, event for event: every random choice comes from one
// seeded generator, and nothing iterates a container in an order that depends on memory.
// Single-threaded.
#pragma once

#include "membership/env.h"
#include "membership/timer_queue.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <string>
#include <vector>

namespace alldata::sim {

using broker::Clock;
using broker::DatagramTransport;
using broker::SeededRandom;
using broker::StreamTransport;
using broker::TimerQueue;

class World;

// One machine on the simulated network, known by its address ("h17:7402").
class Host {
 public:
  Host(World& world, std::string address, std::uint64_t pause_threshold_ms);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const std::string& address() const noexcept { return address_; }
  bool up() const noexcept { return up_; }
  bool paused() const noexcept { return paused_; }
  TimerQueue& timers() { return *timers_; }
  DatagramTransport& datagrams();
  StreamTransport& streams();

  std::uint64_t bytes_sent() const noexcept { return bytes_sent_; }
  std::uint64_t stream_bytes_sent() const noexcept { return stream_bytes_sent_; }

 private:
  friend class World;
  class Datagrams;
  class Streams;
  void schedule_poll(std::uint64_t when_ms);
  void poll(std::uint64_t generation);
  void reset_endpoints();

  World& world_;
  std::string address_;
  std::uint64_t pause_threshold_ms_;
  bool up_ = true;
  bool paused_ = false;
  std::unique_ptr<TimerQueue> timers_;
  std::unique_ptr<Datagrams> datagrams_;
  std::unique_ptr<Streams> streams_;
  std::uint64_t poll_at_ = UINT64_MAX;
  std::uint64_t poll_generation_ = 0;
  std::uint64_t epoch_ = 0;  // bumped by crash: deliveries of an earlier life are lost
  std::vector<std::function<void()>> held_;  // deliveries that waited while paused
  std::uint64_t bytes_sent_ = 0;
  std::uint64_t stream_bytes_sent_ = 0;
};

struct NetworkStats {
  std::uint64_t datagrams_sent = 0;
  std::uint64_t datagrams_lost = 0;
  std::uint64_t streams = 0;
  std::uint64_t streams_failed = 0;
};

class World {
 public:
  explicit World(std::uint64_t seed, std::uint64_t start_ms = 1'000'000);
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  std::uint64_t now() const noexcept { return now_; }
  Clock& clock() { return clock_; }
  SeededRandom& random() { return random_; }

  // Runs `fn` at `when_ms` (>= now), after the events already due then.
  void at(std::uint64_t when_ms, std::function<void()> fn);
  // Runs every event up to and including `until_ms`; then now() == until_ms.
  void run_until(std::uint64_t until_ms);
  // Runs events until `done()` holds or `until_ms` passes; `done` is checked after each
  // event, or with `check_every_ms` at most that often in simulated time (for costly checks).
  bool run_until(std::uint64_t until_ms, const std::function<bool()>& done, std::uint64_t check_every_ms = 0);
  std::uint64_t events_run() const noexcept { return events_run_; }

  // The network. Loss applies to every datagram (and slows streams); latency is uniform.
  void set_loss(double p) { loss_ = p; }
  void set_latency(std::uint64_t min_ms, std::uint64_t max_ms) { latency_min_ = min_ms; latency_max_ = max_ms; }
  // Datagrams and streams from `from` to `to` are lost (one direction).
  void block(const std::string& from, const std::string& to) { blocked_.emplace(from, to); }
  void unblock_all() { blocked_.clear(); }
  bool blocked(const std::string& from, const std::string& to) const;
  const NetworkStats& network() const noexcept { return net_; }

  Host& add_host(const std::string& address, std::uint64_t pause_threshold_ms = 2000);
  // The host at `address`, or at the address `address` is an alias of (a second name).
  Host* host(const std::string& address);
  void alias(const std::string& name, const std::string& address) { aliases_[name] = address; }
  // A crash: the host is down (nothing in or out), its timers and transports are new when
  // it comes back; whoever ran on it must be destroyed before restart().
  void crash(Host& h);
  void restart(Host& h);
  void pause(Host& h);
  void resume(Host& h);

 private:
  friend class Host;
  class WorldClock final : public Clock {
   public:
    explicit WorldClock(World& w) : w_(w) {}
    std::uint64_t now_ms() override { return w_.now_; }

   private:
    World& w_;
  };
  struct Event {
    std::uint64_t when;
    std::uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Event& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };

  std::uint64_t latency();
  // Delivers `fn` on `to` after the latency, unless lost, blocked, down or of another life.
  void deliver(Host& from, Host& to, std::uint64_t delay_ms, std::function<void()> fn);

  std::uint64_t now_;
  WorldClock clock_{*this};
  SeededRandom random_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
  std::uint64_t next_seq_ = 0;
  std::uint64_t events_run_ = 0;
  double loss_ = 0.0;
  std::uint64_t latency_min_ = 1;
  std::uint64_t latency_max_ = 5;
  std::set<std::pair<std::string, std::string>> blocked_;
  std::map<std::string, std::unique_ptr<Host>> hosts_;
  std::map<std::string, std::string> aliases_;
  NetworkStats net_;
};

}  // namespace alldata::sim
