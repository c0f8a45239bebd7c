// A blocking, single-threaded connection to one broker at a time for the Scanner and the
// Admin: each call runs a private io_context in the caller's thread until its coroutine
// finishes (so every read and write has a deadline), and a RetryBudget decides how long
// connection failures and retriable errors are retried. Internal to the client library.
#pragma once

#include "alldata/client/types.h"
#include "alldata/protocol/framing.h"
#include "client_wire.h"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace alldata::client::detail {

// Bounds a streak of failures: retry while the first failure of the streak is younger
// than `limit`, sleeping with exponential back-off (100 ms doubling to 1 s) in between.
class RetryBudget {
 public:
  explicit RetryBudget(std::chrono::milliseconds limit) : limit_(limit) {}
  // After a retriable failure: sleeps and returns true, or returns false when the budget
  // is spent (the caller then reports the failure).
  bool wait_before_retry();
  // After a success: the next failure starts a new streak.
  void reset() noexcept { streak_start_.reset(); backoff_ = kFirstBackoff; }

 private:
  static constexpr std::chrono::milliseconds kFirstBackoff{100};
  std::chrono::milliseconds limit_;
  std::optional<std::chrono::steady_clock::time_point> streak_start_;
  std::chrono::milliseconds backoff_ = kFirstBackoff;
};

class BrokerConnection {
 public:
  // `config.bootstrap` must hold valid addresses (checked by check_bootstrap()).
  explicit BrokerConnection(ClientConfig config);

  static Status check_bootstrap(const ClientConfig& config);

  // If not connected: tries each bootstrap broker once, starting after the last one used,
  // and says hello. Returns the last failure when none answered.
  Status connect();
  bool connected() const noexcept { return connected_; }
  // Closes the connection; the next connect() tries the next broker.
  void drop();

  // The same as connect(), without blocking, for a caller that polls many connections
  // (the Scanner): begin_connect() starts a session with the next bootstrap broker; then,
  // while connecting(), poll native_handle() for poll_events() and call advance() when it
  // is ready or connect_deadline() has passed. Resolving a host name (not an IP address)
  // blocks. Each returns the failure (the attempt is then over: kConnectionFailed,
  // kTimeout, the broker's refusal, kProtocolError) or success: connected() or still
  // connecting().
  Status begin_connect();
  Status advance();
  bool connecting() const noexcept { return step_ != Step::kIdle; }
  short poll_events() const noexcept;
  std::chrono::steady_clock::time_point connect_deadline() const noexcept { return deadline_; }
  // While connected: forget the other bootstrap addresses, so that a reconnect goes back to
  // this broker only (a Scanner reading one broker's copy must not land on another).
  void keep_only_current();
  // The socket's descriptor (for poll() over several connections); -1 when neither
  // connected nor connecting.
  int native_handle() noexcept;

  const BrokerInfo& info() const noexcept { return info_; }
  const ClientConfig& config() const noexcept { return config_; }
  std::uint64_t next_id() noexcept { return ++last_id_; }

  // Writes whole frames within request_timeout (kConnectionFailed, kTimeout).
  Status write(std::string_view frames);
  // Reads one frame within request_timeout (kConnectionFailed, kTimeout, kProtocolError).
  Result<protocol::FrameBuffer> read();

 private:
  template <class T>
  T run(asio::awaitable<T> op);

  enum class Step { kIdle, kTcp, kHello };
  // Ends a non-blocking attempt with `error` (the socket is closed).
  Status fail_attempt(Error error);
  // After the TCP connect: hello is sent; then its answer is read as it arrives.
  Status send_hello();
  Status read_hello();

  ClientConfig config_;
  std::vector<HostPort> brokers_;
  std::size_t next_broker_ = 0;
  std::size_t current_broker_ = 0;
  asio::io_context ioc_;
  tcp::socket socket_;
  bool connected_ = false;
  BrokerInfo info_;
  std::uint64_t last_id_ = 0;
  Step step_ = Step::kIdle;
  std::chrono::steady_clock::time_point deadline_{};
  std::string attempt_address_;
  std::uint64_t hello_id_ = 0;
  std::string hello_in_;  // the hello answer's bytes so far
};

// True for failures after which the connection cannot be trusted (drop and reconnect).
inline bool breaks_connection(ErrorCode code) noexcept {
  return code == ErrorCode::kConnectionFailed || code == ErrorCode::kTimeout ||
         code == ErrorCode::kProtocolError || code == ErrorCode::kShuttingDown;
}

}  // namespace alldata::client::detail
