#include "sim_world.h"

#include <algorithm>

namespace alldata::sim {

// ---- transports ------------------------------------------------------------------------

class Host::Datagrams final : public DatagramTransport {
 public:
  explicit Datagrams(Host& h) : host_(h) {}
  std::string local_address() const override { return host_.address_; }
  void set_receiver(Receiver r) override { receiver_ = std::move(r); }

  void send(const std::string& to, std::string bytes) override {
    World& w = host_.world_;
    ++w.net_.datagrams_sent;
    host_.bytes_sent_ += bytes.size();
    Host* target = w.host(to);
    if (target == nullptr || !host_.up_ || w.blocked(host_.address_, to) || w.random_.unit() < w.loss_) {
      ++w.net_.datagrams_lost;
      return;
    }
    const std::string from = host_.address_;
    w.deliver(host_, *target, w.latency(), [target, from, bytes = std::move(bytes)] {
      if (target->datagrams_->receiver_) target->datagrams_->receiver_(from, bytes);
    });
  }

 private:
  friend class Host;
  Host& host_;
  Receiver receiver_;
};

class Host::Streams final : public StreamTransport {
 public:
  explicit Streams(Host& h) : host_(h) {}
  void set_handler(Handler h) override { handler_ = std::move(h); }

  void request(const std::string& to, std::string request, std::chrono::milliseconds timeout, Done done) override {
    World& w = host_.world_;
    ++w.net_.streams;
    host_.stream_bytes_sent_ += request.size();
    struct Call {
      Done done;
      bool finished = false;
      void finish(Result<std::string> r) {
        if (finished) return;
        finished = true;
        done(std::move(r));
      }
    };
    auto call = std::make_shared<Call>(Call{std::move(done)});
    Host& self = host_;
    const std::uint64_t epoch = self.epoch_;
    // The deadline, on this host (lost with it if it crashes meanwhile).
    w.at(w.now() + static_cast<std::uint64_t>(timeout.count()), [&self, epoch, call, to, &w] {
      if (self.epoch_ != epoch || call->finished) return;
      ++w.net_.streams_failed;
      auto fire = [call, to] { call->finish(Error(ErrorCode::kTimeout, "no answer from " + to)); };
      if (self.paused_) {
        self.held_.push_back(fire);
      } else {
        fire();
      }
    });
    Host* target = w.host(to);
    if (target == nullptr || !target->up_ || !target->streams_->handler_) {
      // Refused at once (nothing listens there), unless the way there is cut.
      if (!w.blocked(self.address_, to)) {
        w.at(w.now() + w.latency(), [&self, epoch, call, to, &w] {
          if (self.epoch_ != epoch) return;
          ++w.net_.streams_failed;
          call->finish(Error(ErrorCode::kConnectionFailed, "connection refused by " + to));
        });
      }
      return;
    }
    if (w.blocked(self.address_, to)) return;  // a black hole: the deadline answers
    const std::string from = self.address_;
    const std::uint64_t there = w.latency() + transfer_ms(request.size());
    w.deliver(self, *target, there, [&w, &self, epoch, target, from, call, request = std::move(request)] {
      if (!target->streams_->handler_) return;
      std::string answer = target->streams_->handler_(from, request);
      target->stream_bytes_sent_ += answer.size();
      if (w.blocked(target->address_, from) || !self.up_ || self.epoch_ != epoch) return;
      const std::uint64_t back = w.latency() + target->streams_->transfer_ms(answer.size());
      w.deliver(*target, self, back, [call, answer = std::move(answer)]() mutable { call->finish(std::move(answer)); });
    });
  }

 private:
  friend class Host;
  // 1 Gb/s, and a 200 ms retransmission (doubling) for each loss of the network's rate.
  std::uint64_t transfer_ms(std::size_t bytes) {
    World& w = host_.world_;
    std::uint64_t ms = bytes / 125'000;
    std::uint64_t rto = 200;
    for (int i = 0; i < 6 && w.random_.unit() < w.loss_; ++i, rto *= 2) ms += rto;
    return ms;
  }
  Host& host_;
  Handler handler_;
};

// ---- hosts -----------------------------------------------------------------------------

Host::Host(World& world, std::string address, std::uint64_t pause_threshold_ms)
    : world_(world), address_(std::move(address)), pause_threshold_ms_(pause_threshold_ms) {
  reset_endpoints();
}

Host::~Host() = default;
DatagramTransport& Host::datagrams() { return *datagrams_; }
StreamTransport& Host::streams() { return *streams_; }

void Host::reset_endpoints() {
  timers_ = std::make_unique<TimerQueue>(pause_threshold_ms_);
  timers_->set_on_earlier([this](std::uint64_t when) { schedule_poll(when); });
  datagrams_ = std::make_unique<Datagrams>(*this);
  streams_ = std::make_unique<Streams>(*this);
  poll_at_ = UINT64_MAX;
  ++poll_generation_;
}

void Host::schedule_poll(std::uint64_t when_ms) {
  when_ms = std::max(when_ms, world_.now());
  if (when_ms >= poll_at_) return;
  poll_at_ = when_ms;
  const std::uint64_t generation = ++poll_generation_;
  world_.at(when_ms, [this, generation] { poll(generation); });
}

void Host::poll(std::uint64_t generation) {
  if (generation != poll_generation_) return;
  poll_at_ = UINT64_MAX;
  if (!up_ || paused_) return;
  timers_->run_due(world_.now());
  if (auto next = timers_->next_deadline()) schedule_poll(*next);
}

// ---- the world -------------------------------------------------------------------------

World::World(std::uint64_t seed, std::uint64_t start_ms) : now_(start_ms), random_(seed) {}

void World::at(std::uint64_t when_ms, std::function<void()> fn) {
  events_.push(Event{std::max(when_ms, now_), next_seq_++, std::move(fn)});
}

void World::run_until(std::uint64_t until_ms) {
  run_until(until_ms, [] { return false; });
}

bool World::run_until(std::uint64_t until_ms, const std::function<bool()>& done, std::uint64_t check_every_ms) {
  std::uint64_t next_check = now_;
  while (!events_.empty() && events_.top().when <= until_ms) {
    Event e = std::move(const_cast<Event&>(events_.top()));
    events_.pop();
    now_ = e.when;
    ++events_run_;
    e.fn();
    if (now_ >= next_check) {
      if (done()) return true;
      next_check = now_ + check_every_ms;
    }
  }
  now_ = std::max(now_, until_ms);
  return done();
}

bool World::blocked(const std::string& from, const std::string& to) const {
  return !blocked_.empty() && blocked_.count({from, to}) > 0;
}

std::uint64_t World::latency() { return latency_min_ + random_.below(latency_max_ - latency_min_ + 1); }

void World::deliver(Host& from, Host& to, std::uint64_t delay_ms, std::function<void()> fn) {
  (void)from;
  const std::uint64_t epoch = to.epoch_;
  at(now_ + delay_ms, [&to, epoch, fn = std::move(fn)]() mutable {
    if (!to.up_ || to.epoch_ != epoch) return;
    if (to.paused_) {
      to.held_.push_back(std::move(fn));
      return;
    }
    fn();
  });
}

Host& World::add_host(const std::string& address, std::uint64_t pause_threshold_ms) {
  auto [it, inserted] = hosts_.try_emplace(address, nullptr);
  if (inserted) it->second = std::make_unique<Host>(*this, address, pause_threshold_ms);
  return *it->second;
}

Host* World::host(const std::string& address) {
  auto alias = aliases_.find(address);
  auto it = hosts_.find(alias == aliases_.end() ? address : alias->second);
  return it == hosts_.end() ? nullptr : it->second.get();
}

void World::crash(Host& h) {
  h.up_ = false;
  h.paused_ = false;
  ++h.epoch_;
  h.held_.clear();
  ++h.poll_generation_;
  h.poll_at_ = UINT64_MAX;
}

void World::restart(Host& h) {
  h.reset_endpoints();
  h.up_ = true;
}

void World::pause(Host& h) { h.paused_ = true; }

void World::resume(Host& h) {
  h.paused_ = false;
  std::vector<std::function<void()>> held;
  held.swap(h.held_);
  for (auto& fn : held) {
    if (!h.up_ || h.paused_) break;
    fn();
  }
  h.poll_at_ = UINT64_MAX;
  h.schedule_poll(now_);
}

}  // namespace alldata::sim
