#include "alldata/client/producer.h"

#include "alldata/protocol/keygen.h"
#include "alldata/protocol/partitioner.h"
#include "alldata/protocol/wire.h"
#include "client_wire.h"
#include "produce_accumulator.h"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <kj/exception.h>
#include <spdlog/logger.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <variant>

namespace alldata::client {

namespace asio = boost::asio;
using detail::BatchEvent;
using detail::BatchHeader;
using detail::HostPort;
using detail::kAsTuple;
using detail::ProduceAccumulator;
using detail::ProduceBatch;
using detail::SteadyClock;
using detail::tcp;
using std::chrono::milliseconds;

namespace {

// What one buffered event costs besides its wire bytes: its index entry and key.
constexpr std::size_t kPerEventOverhead = sizeof(BatchEvent) + 16;
// Room left in a frame for everything but the events.
constexpr std::size_t kFrameSlack = 64 * 1024;

std::string ms_text(milliseconds d) { return std::to_string(d.count()) + " ms"; }

// now + d, saturating (max_block may be "forever").
SteadyClock::time_point deadline_after(milliseconds d) {
  const auto now = SteadyClock::now();
  const auto room = std::chrono::duration_cast<milliseconds>(SteadyClock::time_point::max() - now);
  return d >= room ? SteadyClock::time_point::max() : now + d;
}

Status validate(const ProducerConfig& c) {
  auto bad = [](std::string m) { return Error(ErrorCode::kBadRequest, std::move(m)); };
  if (c.bootstrap.empty()) return bad("ProducerConfig.bootstrap: no broker address given");
  for (const auto& b : c.bootstrap) {
    if (auto hp = detail::parse_host_port(b); !hp) return hp.error();
  }
  if (c.linger.count() < 0) return bad("ProducerConfig.linger must not be negative");
  if (c.batch_bytes < 1024) return bad("ProducerConfig.batch_bytes must be at least 1024");
  if (c.buffer_memory < c.batch_bytes) {
    return bad("ProducerConfig.buffer_memory must be at least batch_bytes");
  }
  if (c.max_block.count() < 0) return bad("ProducerConfig.max_block must not be negative");
  if (c.startup_timeout.count() < 0) {
    return bad("ProducerConfig.startup_timeout must not be negative");
  }
  if (c.connect_timeout.count() <= 0) return bad("ProducerConfig.connect_timeout must be positive");
  if (c.request_timeout.count() <= 0) return bad("ProducerConfig.request_timeout must be positive");
  if (c.delivery_timeout < c.linger + c.request_timeout) {
    return bad("ProducerConfig.delivery_timeout (" + ms_text(c.delivery_timeout) +
               ") must be at least linger + request_timeout (" +
               ms_text(c.linger + c.request_timeout) + ")");
  }
  if (c.retry_backoff.count() <= 0 || c.retry_backoff_max < c.retry_backoff) {
    return bad("ProducerConfig.retry_backoff must be positive and at most retry_backoff_max");
  }
  if (c.max_in_flight == 0) return bad("ProducerConfig.max_in_flight must be at least 1");
  return {};
}

}  // namespace

// Shared state is guarded by mu_; the rest belongs to the I/O thread, which runs ioc_ and
// the one coroutine (run) that owns the connection.
class Producer::Impl {
 public:
  Impl(ProducerConfig config, std::vector<HostPort> brokers)
      : config_(std::move(config)),
        brokers_(std::move(brokers)),
        keygen_(config_.origin != 0 ? config_.origin : random_origin(), clock_),
        acc_(config_.batch_bytes, config_.linger, keygen_.origin()),
        wake_timer_(ioc_),
        backoff_timer_(ioc_),
        started_(SteadyClock::now()),
        startup_deadline_(deadline_after(startup_wait())) {}

  ~Impl() { stop_io(); }

  void start() {
    asio::co_spawn(ioc_, run(),
                   asio::bind_cancellation_slot(stop_signal_.slot(), [this](std::exception_ptr e) {
                     if (!e) return;
                     const std::string what = describe_exception(e);
                     if (config_.logger) config_.logger->error("producer I/O failed: {}", what);
                     fail_everything(Error(ErrorCode::kInternal, "producer I/O failed: " + what));
                   }));
    thread_ = std::thread([this] { ioc_.run(); });
  }

  Result<Key> send(std::string_view stream, std::string_view payload, const SendOptions& options,
                   Callback&& callback);
  Status flush();
  Status close(milliseconds timeout);

  std::optional<BrokerInfo> broker() const {
    std::lock_guard lock(mu_);
    return broker_;
  }

  Stats stats() const {
    std::lock_guard lock(mu_);
    Stats s = stats_;
    s.requests = requests_.load(std::memory_order_relaxed);
    s.retries = retries_.load(std::memory_order_relaxed);
    s.buffered_bytes = buffered_;
    return s;
  }

 private:
  using BatchPtr = std::unique_ptr<ProduceBatch>;
  struct InFlight {
    std::uint64_t correlation_id;
    BatchPtr batch;
    SteadyClock::time_point deadline;
  };

  // ---- I/O thread
  asio::awaitable<void> run();
  asio::awaitable<Error> session();
  asio::awaitable<Error> read_loop();
  asio::awaitable<Error> write_loop();
  std::optional<Error> handle_answer(const protocol::FrameBuffer& frame);
  void on_connected(const BrokerInfo& info);
  void note_connection_failure(const Error& error);
  void pull_ready(SteadyClock::time_point now);
  void promote_retries(SteadyClock::time_point now, bool all);
  void expire(SteadyClock::time_point now, bool connected);
  SteadyClock::time_point next_wakeup(SteadyClock::time_point now) const;
  void requeue_in_flight();
  void encode(ProduceBatch& b);
  void retry_later(BatchPtr b, Error error);
  void complete(BatchPtr b, const std::uint8_t* keys);
  void fail(BatchPtr b, const Error& error);
  void finish(BatchPtr b, const Error* error);
  void fail_everything(const Error& error);
  void invoke(Callback& cb, const Result<Key>& r) {
    try {
      cb(r);
    } catch (const std::exception& e) {
      if (config_.logger) config_.logger->error("producer callback threw: {}", e.what());
    } catch (...) {
      if (config_.logger) config_.logger->error("producer callback threw");
    }
  }
  SteadyClock::time_point delivery_deadline(const ProduceBatch& b) const {
    return b.created + config_.delivery_timeout;
  }
  const std::string& address() const { return current_address_; }
  milliseconds startup_wait() const {
    return std::min(config_.startup_timeout, config_.delivery_timeout);
  }

  // ---- any thread
  void wake_io() {
    if (!wake_posted_.exchange(true, std::memory_order_acq_rel)) {
      asio::post(ioc_, [this] {
        wake_posted_.store(false, std::memory_order_release);
        wake_pending_ = true;
        wake_timer_.cancel();
      });
    }
  }
  void stop_io();

  const ProducerConfig config_;
  const std::vector<HostPort> brokers_;
  SystemClock clock_;
  Keygen keygen_;

  // ---- guarded by mu_
  mutable std::mutex mu_;
  std::condition_variable space_cv_;  // buffer space freed, partition count known, closed
  std::condition_variable done_cv_;   // a batch completed
  ProduceAccumulator acc_;
  std::vector<BatchPtr> ready_;       // closed batches waiting for the I/O thread
  std::size_t buffered_ = 0;
  std::uint32_t partitions_ = 0;      // 0 until the first hello answer
  std::uint32_t max_event_bytes_ = 0;
  std::size_t max_batch_wire_bytes_ = 0;
  std::optional<BrokerInfo> broker_;
  std::optional<Error> last_connection_error_;
  std::optional<Error> unreachable_;  // no broker answered since the start: sends fail fast
  bool closed_ = false;
  std::set<std::uint64_t> incomplete_;  // ids of batches not yet final
  std::optional<Error> first_error_;    // since the last flush
  Stats stats_;
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> retries_{0};

  // ---- I/O thread only
  asio::io_context ioc_;
  asio::steady_timer wake_timer_;
  asio::steady_timer backoff_timer_;
  asio::cancellation_signal stop_signal_;
  std::atomic<bool> wake_posted_{false};
  bool wake_pending_ = false;
  bool stopping_ = false;
  bool writing_ = false;
  std::deque<BatchPtr> queue_;        // to send, oldest first
  std::vector<BatchPtr> retry_;       // waiting for retry_at
  std::vector<InFlight> inflight_;    // written, awaiting the answer
  std::vector<BatchPtr> graveyard_;   // done while a write may still read their buffers
  std::optional<SteadyClock::time_point> next_linger_;
  tcp::socket* socket_ = nullptr;
  tcp::socket* connecting_ = nullptr;
  std::string current_address_;
  std::uint64_t next_correlation_id_ = 0;
  std::size_t broker_index_ = 0;
  const SteadyClock::time_point started_;
  const SteadyClock::time_point startup_deadline_;
  std::uint32_t failure_streak_ = 0;  // connection failures since the last hello

  std::mutex stop_mu_;
  std::thread thread_;
};

// ----------------------------------------------------------------------------- send side

Result<Key> Producer::Impl::send(std::string_view stream, std::string_view payload,
                                 const SendOptions& options, Callback&& callback) {
  if (stream.empty()) return Error(ErrorCode::kInvalidStream, "empty stream name");
  std::size_t event_bytes = payload.size();
  for (const auto& h : options.headers) event_bytes += h.name.size() + h.value.size();
  const std::size_t wire_bytes = detail::event_wire_bytes(payload.size(), options.headers);
  const std::size_t accounted = wire_bytes + kPerEventOverhead;
  if (accounted > config_.buffer_memory) {
    return Error(ErrorCode::kEventTooLarge, "event of " + std::to_string(event_bytes) +
                                                " bytes does not fit in buffer_memory (" +
                                                std::to_string(config_.buffer_memory) + ")");
  }
  const CommitLevel level = options.commit_level.value_or(config_.commit_level);

  std::unique_lock lock(mu_);
  if (closed_) return Error(ErrorCode::kClosed, "the producer is closed");
  if (partitions_ == 0) {
    if (unreachable_) return *unreachable_;
    space_cv_.wait_until(lock, startup_deadline_,
                         [&] { return partitions_ != 0 || closed_ || unreachable_.has_value(); });
    if (closed_) return Error(ErrorCode::kClosed, "the producer is closed");
    if (partitions_ == 0) {
      if (!unreachable_) {
        std::string m = "no broker answered within " + ms_text(startup_wait()) + " of the start";
        if (last_connection_error_) m += ": " + last_connection_error_->message;
        unreachable_ = Error(ErrorCode::kConnectionFailed, std::move(m));
        space_cv_.notify_all();
      }
      return *unreachable_;
    }
  }
  if (max_event_bytes_ != 0 && event_bytes > max_event_bytes_) {
    return Error(ErrorCode::kEventTooLarge, "event of " + std::to_string(event_bytes) +
                                                " bytes is over the broker's limit of " +
                                                std::to_string(max_event_bytes_));
  }
  if (wire_bytes + detail::request_wire_bytes(stream) > max_batch_wire_bytes_) {
    return Error(ErrorCode::kEventTooLarge, "event of " + std::to_string(event_bytes) +
                                                " bytes does not fit in one request frame");
  }
  if (buffered_ + accounted > config_.buffer_memory) {
    const auto deadline = deadline_after(config_.max_block);
    const bool fits = space_cv_.wait_until(lock, deadline, [&] {
      return closed_ || buffered_ + accounted <= config_.buffer_memory;
    });
    if (closed_) return Error(ErrorCode::kClosed, "the producer is closed");
    if (!fits) {
      return Error(ErrorCode::kBufferFull,
                   "the producer holds " + std::to_string(buffered_) +
                       " bytes (buffer_memory) and no room came free within max_block (" +
                       ms_text(config_.max_block) + ")");
    }
  }
  std::optional<std::uint32_t> keyed;
  if (options.partition_key) keyed = protocol::partition_for_key(*options.partition_key, partitions_);
  const Key key = config_.client_keys ? keygen_.next() : Key{};
  const std::size_t ready_before = ready_.size();
  auto appended = acc_.append(stream, keyed, partitions_, level, key, payload, options.headers,
                              std::move(callback), accounted, SteadyClock::now(), ready_);
  buffered_ += accounted;
  ++stats_.sent;
  if (appended.new_batch) incomplete_.insert(*appended.new_batch);
  const bool wake = appended.new_batch || ready_.size() != ready_before;
  lock.unlock();
  if (wake) wake_io();
  return key;
}

Status Producer::Impl::flush() {
  std::unique_lock lock(mu_);
  acc_.close_all(ready_);
  const std::uint64_t target = acc_.next_batch_id();
  lock.unlock();
  wake_io();
  lock.lock();
  done_cv_.wait(lock, [&] { return incomplete_.empty() || *incomplete_.begin() >= target; });
  if (auto e = std::exchange(first_error_, std::nullopt)) return *e;
  return {};
}

Status Producer::Impl::close(milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!closed_) {
    closed_ = true;
    acc_.close_all(ready_);
    space_cv_.notify_all();
  }
  lock.unlock();
  wake_io();
  lock.lock();
  auto all_done = [&] { return incomplete_.empty(); };
  if (timeout == milliseconds::max()) {
    done_cv_.wait(lock, all_done);
  } else {
    done_cv_.wait_for(lock, timeout, all_done);
  }
  std::optional<Error> error = std::exchange(first_error_, std::nullopt);
  lock.unlock();
  stop_io();  // fails whatever is left with kClosed
  lock.lock();
  if (!error) error = std::exchange(first_error_, std::nullopt);
  if (error) return *error;
  return {};
}

void Producer::Impl::stop_io() {
  std::lock_guard stop_lock(stop_mu_);
  if (!thread_.joinable()) return;
  asio::post(ioc_, [this] {
    stopping_ = true;
    boost::system::error_code ignored;
    if (socket_ != nullptr) socket_->close(ignored);
    if (connecting_ != nullptr) connecting_->close(ignored);
    wake_timer_.cancel();
    backoff_timer_.cancel();
    stop_signal_.emit(asio::cancellation_type::terminal);
  });
  thread_.join();
}

// ----------------------------------------------------------------------------- I/O thread

asio::awaitable<void> Producer::Impl::run() {
  std::size_t failures_in_round = 0;
  milliseconds backoff = config_.retry_backoff;
  try {
    while (!stopping_) {
      const HostPort& broker = brokers_[broker_index_];
      tcp::socket socket(ioc_);
      connecting_ = &socket;
      auto hello = co_await detail::open_session(socket, broker, config_.client_id,
                                                 ++next_correlation_id_, config_.connect_timeout);
      connecting_ = nullptr;
      if (stopping_) break;
      if (!hello) {
        if (config_.logger) {
          // The first failure of a streak is news; the retries that follow mostly are not.
          const auto level = failure_streak_ % 30 == 0 ? spdlog::level::warn : spdlog::level::debug;
          config_.logger->log(level, "producer: {} (retrying)", hello.error().to_string());
        }
        ++failure_streak_;
        note_connection_failure(hello.error());
        broker_index_ = (broker_index_ + 1) % brokers_.size();
        if (++failures_in_round >= brokers_.size()) {
          failures_in_round = 0;
          backoff_timer_.expires_after(backoff);
          co_await backoff_timer_.async_wait(kAsTuple);
          backoff = std::min(backoff * 2, config_.retry_backoff_max);
        }
        continue;
      }
      failures_in_round = 0;
      failure_streak_ = 0;
      current_address_ = hello->address;
      on_connected(*hello);
      socket_ = &socket;
      const auto session_start = SteadyClock::now();
      Error why = co_await session();
      socket_ = nullptr;
      boost::system::error_code ignored;
      socket.close(ignored);
      requeue_in_flight();
      graveyard_.clear();
      if (stopping_) break;
      if (config_.logger) {
        // An idle connection closed by the broker is routine; one with work on it is not.
        const bool had_work = !queue_.empty() || !retry_.empty();
        config_.logger->log(had_work ? spdlog::level::warn : spdlog::level::info,
                            "producer: connection to {} ended: {}", current_address_,
                            why.to_string());
      }
      note_connection_failure(why);
      broker_index_ = (broker_index_ + 1) % brokers_.size();
      if (SteadyClock::now() - session_start < config_.retry_backoff_max) {
        // A broker that takes the hello and then drops us must not make us spin.
        backoff_timer_.expires_after(backoff);
        co_await backoff_timer_.async_wait(kAsTuple);
        backoff = std::min(backoff * 2, config_.retry_backoff_max);
      } else {
        backoff = config_.retry_backoff;
      }
    }
  } catch (const boost::system::system_error&) {
    // Cancelled by stop_io(): fall through to the final cleanup.
  }
  fail_everything(Error(ErrorCode::kClosed, "the producer was closed before the broker answered"));
}

void Producer::Impl::on_connected(const BrokerInfo& info) {
  if (config_.logger) {
    config_.logger->info("producer: connected to broker {} at {} ({} partitions)", info.node_id,
                         info.address, info.partitions);
  }
  std::lock_guard lock(mu_);
  broker_ = info;
  partitions_ = info.partitions;
  max_event_bytes_ = info.max_event_bytes;
  const std::size_t frame = info.max_frame_bytes != 0 ? info.max_frame_bytes
                                                      : protocol::kDefaultMaxFrameBytes;
  max_batch_wire_bytes_ = frame > 2 * kFrameSlack ? frame - kFrameSlack : frame / 2;
  acc_.set_batch_bytes(std::min(config_.batch_bytes, max_batch_wire_bytes_));
  unreachable_.reset();
  last_connection_error_.reset();
  space_cv_.notify_all();
}

void Producer::Impl::note_connection_failure(const Error& error) {
  const auto now = SteadyClock::now();
  {
    std::lock_guard lock(mu_);
    last_connection_error_ = error;
    if (partitions_ == 0 && !unreachable_ && now >= startup_deadline_) {
      unreachable_ = Error(ErrorCode::kConnectionFailed,
                           "no broker answered within " + ms_text(startup_wait()) +
                               " of the start: " + error.message);
      space_cv_.notify_all();
    }
  }
  pull_ready(now);
  promote_retries(now, /*all=*/true);
  expire(now, /*connected=*/false);
}

asio::awaitable<Error> Producer::Impl::session() {
  using namespace asio::experimental::awaitable_operators;
  auto r = co_await (read_loop() || write_loop());
  co_return std::visit([](Error& e) { return std::move(e); }, r);
}

asio::awaitable<Error> Producer::Impl::read_loop() {
  for (;;) {
    auto frame = co_await detail::read_frame(*socket_, address());
    if (!frame) co_return frame.error();
    if (auto end = handle_answer(*frame)) co_return std::move(*end);
  }
}

std::optional<Error> Producer::Impl::handle_answer(const protocol::FrameBuffer& frame) {
  std::uint64_t id = 0;
  wire::ErrorCode code = wire::ErrorCode::OK;
  std::string message;
  bool has_result = false;
  const std::uint8_t* keys = nullptr;
  std::size_t key_bytes = 0;
  try {
    auto reader = protocol::make_reader(frame);
    auto r = reader.getRoot<wire::Response>();
    id = r.getCorrelationId();
    code = r.getError();
    if (code != wire::ErrorCode::OK) message = std::string(protocol::view(r.getMessage()));
    if (code == wire::ErrorCode::OK && r.isProduce()) {
      has_result = true;
      auto k = r.getProduce().getKeys();
      keys = k.begin();
      key_bytes = k.size();
    }
  } catch (const kj::Exception& e) {
    return detail::protocol_error(e.getDescription().cStr(), address());
  }
  auto it = std::find_if(inflight_.begin(), inflight_.end(),
                         [&](const InFlight& f) { return f.correlation_id == id; });
  if (it == inflight_.end()) return std::nullopt;  // an answer to a request given up on
  BatchPtr b = std::move(it->batch);
  inflight_.erase(it);
  wake_pending_ = true;  // a request slot is free
  wake_timer_.cancel();
  if (code == wire::ErrorCode::OK) {
    if (!has_result) {
      fail(std::move(b), detail::protocol_error("answer to produce carries no result", address()));
    } else if (key_bytes != std::size_t{16} * b->event_count) {
      fail(std::move(b), detail::protocol_error("broker acknowledged " +
                                                    std::to_string(key_bytes / 16) + " keys for " +
                                                    std::to_string(b->event_count) + " events",
                                                address()));
    } else {
      complete(std::move(b), keys);
    }
    return std::nullopt;
  }
  Error error = detail::broker_error(code, message, address());
  // A broker that stops, or does not coordinate writes yet: use another one.
  const bool failover = code == wire::ErrorCode::SHUTTING_DOWN || code == wire::ErrorCode::NOT_READY;
  if (is_retriable(error.code)) {
    retry_later(std::move(b), error);
  } else {
    fail(std::move(b), error);
  }
  if (failover) return error;
  return std::nullopt;
}

asio::awaitable<Error> Producer::Impl::write_loop() {
  std::vector<asio::const_buffer> buffers;
  const auto request_timeout = config_.request_timeout;
  for (;;) {
    const auto now = SteadyClock::now();
    pull_ready(now);
    promote_retries(now, /*all=*/false);
    expire(now, /*connected=*/true);
    for (const auto& f : inflight_) {
      if (f.deadline <= now) {
        co_return Error(ErrorCode::kTimeout, "broker " + address() +
                                                 " did not answer a produce request within " +
                                                 ms_text(request_timeout));
      }
    }
    buffers.clear();
    while (inflight_.size() < config_.max_in_flight && !queue_.empty()) {
      BatchPtr b = std::move(queue_.front());
      queue_.pop_front();
      if (!b->message) encode(*b);
      const std::uint64_t id = ++next_correlation_id_;
      b->message->getRoot<wire::Request>().setCorrelationId(id);
      detail::frame_buffers(*b->message, b->frame_header, buffers);
      if (b->attempts++ > 0) retries_.fetch_add(1, std::memory_order_relaxed);
      requests_.fetch_add(1, std::memory_order_relaxed);
      inflight_.push_back(InFlight{id, std::move(b), now + request_timeout});
    }
    if (!buffers.empty()) {
      writing_ = true;
      auto [ec, n] = co_await asio::async_write(*socket_, buffers, kAsTuple);
      writing_ = false;
      graveyard_.clear();
      if (ec) co_return detail::connection_error(ec, "lost connection to", address());
      continue;
    }
    if (stopping_) co_return Error(ErrorCode::kClosed, "the producer is closing");
    if (wake_pending_) {
      wake_pending_ = false;
      continue;
    }
    wake_timer_.expires_at(next_wakeup(now));
    co_await wake_timer_.async_wait(kAsTuple);
  }
}

void Producer::Impl::pull_ready(SteadyClock::time_point now) {
  std::lock_guard lock(mu_);
  acc_.close_expired(now, ready_);
  for (auto& b : ready_) queue_.push_back(std::move(b));
  ready_.clear();
  next_linger_ = acc_.next_expiry();
}

void Producer::Impl::promote_retries(SteadyClock::time_point now, bool all) {
  if (retry_.empty()) return;
  std::vector<BatchPtr> due;
  for (auto& b : retry_) {
    if (all || b->retry_at <= now) due.push_back(std::move(b));
  }
  std::erase_if(retry_, [](const BatchPtr& b) { return !b; });
  std::sort(due.begin(), due.end(), [](const BatchPtr& a, const BatchPtr& b) { return a->id > b->id; });
  for (auto& b : due) queue_.push_front(std::move(b));
}

void Producer::Impl::expire(SteadyClock::time_point now, bool connected) {
  auto give_up = [&](BatchPtr b) {
    Error e;
    if (b->last_error) {
      e = *b->last_error;
    } else if (!connected) {
      std::lock_guard lock(mu_);
      e = last_connection_error_.value_or(Error(ErrorCode::kConnectionFailed, "no broker reachable"));
    } else {
      e = Error(ErrorCode::kTimeout, "not sent");
    }
    e.message = "not acknowledged within delivery_timeout (" + ms_text(config_.delivery_timeout) +
                "): " + e.message;
    fail(std::move(b), e);
  };
  if (connected) {
    // Oldest first: checking the front is enough while a connection drains the queue.
    while (!queue_.empty() && delivery_deadline(*queue_.front()) <= now) {
      BatchPtr b = std::move(queue_.front());
      queue_.pop_front();
      give_up(std::move(b));
    }
    for (auto it = inflight_.begin(); it != inflight_.end();) {
      if (delivery_deadline(*it->batch) <= now) {
        BatchPtr b = std::move(it->batch);
        it = inflight_.erase(it);
        b->last_error = Error(ErrorCode::kTimeout, "no answer from broker " + address());
        give_up(std::move(b));
      } else {
        ++it;
      }
    }
  } else {
    for (auto& b : queue_) {
      if (delivery_deadline(*b) <= now) give_up(std::move(b));
    }
    std::erase_if(queue_, [](const BatchPtr& b) { return !b; });
  }
  for (auto& b : retry_) {
    if (delivery_deadline(*b) <= now) give_up(std::move(b));
  }
  std::erase_if(retry_, [](const BatchPtr& b) { return !b; });
}

SteadyClock::time_point Producer::Impl::next_wakeup(SteadyClock::time_point now) const {
  auto t = now + std::chrono::seconds(1);
  if (next_linger_) t = std::min(t, *next_linger_);
  for (const auto& b : retry_) t = std::min(t, b->retry_at);
  for (const auto& f : inflight_) {
    t = std::min(t, f.deadline);
    t = std::min(t, delivery_deadline(*f.batch));
  }
  if (!queue_.empty()) t = std::min(t, delivery_deadline(*queue_.front()));
  return t;
}

void Producer::Impl::requeue_in_flight() {
  std::sort(inflight_.begin(), inflight_.end(),
            [](const InFlight& a, const InFlight& b) { return a.batch->id > b.batch->id; });
  for (auto& f : inflight_) queue_.push_front(std::move(f.batch));
  inflight_.clear();
}

void Producer::Impl::encode(ProduceBatch& b) {
  const std::size_t words = b.wire_bytes / 8 + 64;
  b.message = std::make_unique<capnp::MallocMessageBuilder>(static_cast<unsigned>(words));
  auto request = b.message->initRoot<wire::Request>();
  auto produce = request.initProduce();
  produce.setStream(protocol::text(b.stream));
  produce.setPartition(b.partition);
  produce.setCommitLevel(detail::to_wire(b.level));
  produce.setTimeoutMs(static_cast<std::uint32_t>(
      std::min<std::int64_t>(config_.request_timeout.count(), UINT32_MAX)));
  auto events = produce.initEvents(b.event_count);
  const char* data = b.data.data();
  for (std::uint32_t i = 0; i < b.event_count; ++i) {
    const BatchEvent& be = b.events[i];
    auto e = events[i];
    if (config_.client_keys) e.setKey(protocol::data(be.key.view()));
    e.setPayload(protocol::data({data + be.payload_offset, be.payload_size}));
    if (be.header_count != 0) {
      auto hs = e.initHeaders(be.header_count);
      for (std::uint32_t j = 0; j < be.header_count; ++j) {
        const BatchHeader& bh = b.headers[be.first_header + j];
        auto name = hs[j].initName(bh.name_size);
        std::memcpy(name.begin(), data + bh.name_offset, bh.name_size);
        hs[j].setValue(protocol::data({data + bh.value_offset, bh.value_size}));
      }
    }
  }
  // The request holds everything now; retries resend it, keys and all.
  std::string().swap(b.data);
  std::vector<BatchEvent>().swap(b.events);
  std::vector<BatchHeader>().swap(b.headers);
}

void Producer::Impl::retry_later(BatchPtr b, Error error) {
  const auto now = SteadyClock::now();
  const std::uint32_t shift = std::min<std::uint32_t>(b->attempts > 0 ? b->attempts - 1 : 0, 16);
  const milliseconds delay =
      std::min<milliseconds>(config_.retry_backoff * (std::int64_t{1} << shift), config_.retry_backoff_max);
  if (now + delay >= delivery_deadline(*b)) {
    error.message = "not acknowledged within delivery_timeout (" +
                    ms_text(config_.delivery_timeout) + ") after " + std::to_string(b->attempts) +
                    " attempts: " + error.message;
    fail(std::move(b), error);
    return;
  }
  if (config_.logger) {
    config_.logger->debug("producer: retrying a batch of {} events in {} ms: {}", b->event_count,
                          delay.count(), error.to_string());
  }
  b->last_error = std::move(error);
  b->retry_at = now + delay;
  retry_.push_back(std::move(b));
}

void Producer::Impl::complete(BatchPtr b, const std::uint8_t* keys) {
  for (auto& [index, cb] : b->callbacks) {
    invoke(cb, Key::from_raw(keys + std::size_t{16} * index));
  }
  finish(std::move(b), nullptr);
}

void Producer::Impl::fail(BatchPtr b, const Error& error) {
  for (auto& [index, cb] : b->callbacks) invoke(cb, error);
  finish(std::move(b), &error);
}

void Producer::Impl::finish(BatchPtr b, const Error* error) {
  {
    std::lock_guard lock(mu_);
    buffered_ -= b->accounted;
    incomplete_.erase(b->id);
    if (error != nullptr) {
      stats_.failed += b->event_count;
      if (!first_error_) first_error_ = *error;
    } else {
      stats_.acknowledged += b->event_count;
    }
  }
  space_cv_.notify_all();
  done_cv_.notify_all();
  if (writing_) graveyard_.push_back(std::move(b));
}

void Producer::Impl::fail_everything(const Error& error) {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    acc_.close_all(ready_);
    for (auto& b : ready_) queue_.push_back(std::move(b));
    ready_.clear();
  }
  space_cv_.notify_all();
  for (auto& f : inflight_) fail(std::move(f.batch), error);
  inflight_.clear();
  for (auto& b : queue_) fail(std::move(b), error);
  queue_.clear();
  for (auto& b : retry_) fail(std::move(b), error);
  retry_.clear();
  graveyard_.clear();
}

// ----------------------------------------------------------------------------- Producer

Result<std::unique_ptr<Producer>> Producer::create(ProducerConfig config) {
  if (auto ok = validate(config); !ok) return ok.error();
  std::vector<HostPort> brokers;
  for (const auto& b : config.bootstrap) brokers.push_back(*detail::parse_host_port(b));
  auto impl = std::make_unique<Impl>(std::move(config), std::move(brokers));
  impl->start();
  return std::unique_ptr<Producer>(new Producer(std::move(impl)));
}

Producer::Producer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Producer::~Producer() {
  if (impl_) (void)impl_->close(milliseconds::max());
}

Result<Key> Producer::send(std::string_view stream, std::string_view payload, SendOptions options,
                           Callback callback) {
  return impl_->send(stream, payload, options, std::move(callback));
}

std::future<Result<Key>> Producer::send_async(std::string_view stream, std::string_view payload,
                                              SendOptions options) {
  auto promise = std::make_shared<std::promise<Result<Key>>>();
  auto future = promise->get_future();
  auto sent = impl_->send(stream, payload, options,
                          [promise](const Result<Key>& r) { promise->set_value(r); });
  if (!sent) promise->set_value(sent.error());
  return future;
}

Status Producer::flush() { return impl_->flush(); }

Status Producer::close(milliseconds timeout) { return impl_->close(timeout); }

std::optional<BrokerInfo> Producer::broker() const { return impl_->broker(); }

Producer::Stats Producer::stats() const { return impl_->stats(); }

}  // namespace alldata::client
