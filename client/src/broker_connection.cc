#include "broker_connection.h"

#include <boost/asio/co_spawn.hpp>
#include <spdlog/logger.h>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <thread>

namespace alldata::client::detail {

namespace {

// A hello answer is a few dozen bytes; anything this large is not one.
constexpr std::uint32_t kMaxHelloAnswerBytes = 64u << 10;

}  // namespace

bool RetryBudget::wait_before_retry() {
  const auto now = std::chrono::steady_clock::now();
  if (!streak_start_) streak_start_ = now;
  if (now + backoff_ - *streak_start_ > limit_) return false;
  std::this_thread::sleep_for(backoff_);
  backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(1000));
  return true;
}

BrokerConnection::BrokerConnection(ClientConfig config)
    : config_(std::move(config)), socket_(ioc_) {
  for (const auto& b : config_.bootstrap) {
    if (auto hp = parse_host_port(b)) brokers_.push_back(std::move(*hp));
  }
}

Status BrokerConnection::check_bootstrap(const ClientConfig& config) {
  if (config.bootstrap.empty()) {
    return Error(ErrorCode::kBadRequest, "ClientConfig.bootstrap: no broker address given");
  }
  for (const auto& b : config.bootstrap) {
    if (auto hp = parse_host_port(b); !hp) return hp.error();
  }
  if (config.connect_timeout.count() <= 0 || config.request_timeout.count() <= 0) {
    return Error(ErrorCode::kBadRequest, "ClientConfig: timeouts must be positive");
  }
  return {};
}

template <class T>
T BrokerConnection::run(asio::awaitable<T> op) {
  std::optional<T> out;
  std::exception_ptr failure;
  asio::co_spawn(ioc_, std::move(op), [&](std::exception_ptr e, T value) {
    failure = e;
    if (!e) out.emplace(std::move(value));
  });
  ioc_.restart();
  ioc_.run();
  if (failure || !out) {
    std::string what = "unknown failure";
    try {
      if (failure) std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    return Error(ErrorCode::kInternal, "client I/O failed: " + what);
  }
  return std::move(*out);
}

Status BrokerConnection::connect() {
  if (connected_) return {};
  Error last(ErrorCode::kConnectionFailed, "no broker address");
  for (std::size_t i = 0; i < brokers_.size(); ++i) {
    const HostPort& broker = brokers_[next_broker_];
    current_broker_ = next_broker_;
    next_broker_ = (next_broker_ + 1) % brokers_.size();
    boost::system::error_code ignored;
    socket_.close(ignored);
    auto hello = run(open_session(socket_, broker, config_.client_id, next_id(),
                                  config_.connect_timeout));
    if (hello) {
      info_ = std::move(*hello);
      connected_ = true;
      if (config_.logger) {
        config_.logger->info("connected to broker {} at {}", info_.node_id, info_.address);
      }
      return {};
    }
    last = hello.error();
    if (config_.logger) config_.logger->warn("{}", last.to_string());
    // A broker refusing us for a reason that is not about reachability (e.g. an
    // unsupported protocol version) would refuse again: other brokers may not.
  }
  socket_.close();
  return last;
}

void BrokerConnection::drop() {
  boost::system::error_code ignored;
  socket_.close(ignored);
  connected_ = false;
  step_ = Step::kIdle;
}

Status BrokerConnection::begin_connect() {
  if (connected_ || step_ != Step::kIdle) return {};
  if (brokers_.empty()) return Error(ErrorCode::kConnectionFailed, "no broker address");
  const HostPort& broker = brokers_[next_broker_];
  current_broker_ = next_broker_;
  next_broker_ = (next_broker_ + 1) % brokers_.size();
  attempt_address_ = to_string(broker);
  deadline_ = std::chrono::steady_clock::now() + config_.connect_timeout;
  boost::system::error_code ec;
  socket_.close(ec);
  tcp::endpoint endpoint;
  auto ip = asio::ip::make_address(broker.host == "localhost" ? "127.0.0.1" : broker.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, broker.port);
  } else {
    tcp::resolver resolver(ioc_);
    auto found = resolver.resolve(broker.host, std::to_string(broker.port), ec);
    if (ec || found.empty()) return fail_attempt(connection_error(ec, "cannot resolve", attempt_address_));
    endpoint = *found.begin();
  }
  socket_.open(endpoint.protocol(), ec);
  if (!ec) socket_.non_blocking(true, ec);
  if (ec) return fail_attempt(connection_error(ec, "cannot connect to", attempt_address_));
  // Asio's own connect() waits for the outcome even on a non-blocking socket: ask the OS.
  if (::connect(socket_.native_handle(), endpoint.data(), endpoint.size()) == 0) return send_hello();
  if (errno != EINPROGRESS && errno != EAGAIN) {
    return fail_attempt(connection_error(boost::system::error_code(errno, boost::system::system_category()),
                                         "cannot connect to", attempt_address_));
  }
  step_ = Step::kTcp;
  return {};
}

short BrokerConnection::poll_events() const noexcept {
  return step_ == Step::kTcp ? POLLOUT : POLLIN;
}

Status BrokerConnection::advance() {
  if (step_ == Step::kIdle) return {};
  if (std::chrono::steady_clock::now() >= deadline_) {
    return fail_attempt(Error(ErrorCode::kTimeout,
                              "broker " + attempt_address_ + " did not " +
                                  (step_ == Step::kTcp ? "accept the connection" : "answer hello") +
                                  " within " + std::to_string(config_.connect_timeout.count()) +
                                  " ms"));
  }
  if (step_ == Step::kTcp) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == EINPROGRESS || err == EALREADY) return {};
    if (err != 0) {
      return fail_attempt(connection_error(boost::system::error_code(err, boost::system::system_category()),
                                           "cannot connect to", attempt_address_));
    }
    return send_hello();
  }
  return read_hello();
}

Status BrokerConnection::send_hello() {
  boost::system::error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  hello_id_ = next_id();
  const std::string frame = hello_frame(config_.client_id, hello_id_);
  // A new socket's send buffer takes a hello whole.
  const std::size_t n = socket_.write_some(asio::buffer(frame), ec);
  if (ec || n != frame.size()) {
    return fail_attempt(ec ? connection_error(ec, "cannot send hello to", attempt_address_)
                           : Error(ErrorCode::kConnectionFailed,
                                   "cannot send hello to " + attempt_address_ + ": short write"));
  }
  hello_in_.clear();
  step_ = Step::kHello;
  return {};
}

Status BrokerConnection::read_hello() {
  char buffer[4096];
  for (;;) {
    boost::system::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(buffer), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return {};
    if (ec) return fail_attempt(connection_error(ec, "lost connection to", attempt_address_));
    hello_in_.append(buffer, n);
    if (hello_in_.size() < protocol::kFrameHeaderBytes) continue;
    const std::uint32_t length =
        protocol::read_frame_length(reinterpret_cast<const std::uint8_t*>(hello_in_.data()));
    if (auto ok = protocol::check_frame_length(length, kMaxHelloAnswerBytes); !ok) {
      return fail_attempt(protocol_error(ok.error().message, attempt_address_));
    }
    if (hello_in_.size() < protocol::kFrameHeaderBytes + length) continue;
    if (hello_in_.size() > protocol::kFrameHeaderBytes + length) {
      return fail_attempt(protocol_error("bytes after the hello answer", attempt_address_));
    }
    protocol::FrameBuffer frame(length);
    std::memcpy(frame.data(), hello_in_.data() + protocol::kFrameHeaderBytes, length);
    auto info = decode_hello_answer(frame, hello_id_, attempt_address_);
    if (!info) return fail_attempt(info.error());
    socket_.non_blocking(false, ec);
    info_ = std::move(*info);
    connected_ = true;
    step_ = Step::kIdle;
    if (config_.logger) config_.logger->info("connected to broker {} at {}", info_.node_id, info_.address);
    return {};
  }
}

Status BrokerConnection::fail_attempt(Error error) {
  boost::system::error_code ignored;
  socket_.close(ignored);
  step_ = Step::kIdle;
  connected_ = false;
  if (config_.logger) config_.logger->warn("{}", error.to_string());
  return error;
}

void BrokerConnection::keep_only_current() {
  if (!connected_ || brokers_.empty()) return;
  brokers_ = {brokers_[current_broker_]};
  current_broker_ = 0;
  next_broker_ = 0;
}

int BrokerConnection::native_handle() noexcept {
  return connected_ || step_ != Step::kIdle ? static_cast<int>(socket_.native_handle()) : -1;
}

Status BrokerConnection::write(std::string_view frames) {
  auto r = run(write_within(socket_, frames, info_.address, config_.request_timeout));
  if (!r) drop();
  return r;
}

Result<protocol::FrameBuffer> BrokerConnection::read() {
  auto r = run(read_frame_within(socket_, info_.address, config_.request_timeout));
  if (!r) drop();
  return r;
}

}  // namespace alldata::client::detail
