#include "broker_connection.h"

#include <boost/asio/co_spawn.hpp>
#include <spdlog/logger.h>

#include <algorithm>
#include <exception>
#include <thread>

namespace alldata::client::detail {

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
                                  config_.connect_timeout, config_.request_timeout));
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
}

void BrokerConnection::keep_only_current() {
  if (!connected_ || brokers_.empty()) return;
  brokers_ = {brokers_[current_broker_]};
  current_broker_ = 0;
  next_broker_ = 0;
}

int BrokerConnection::native_handle() noexcept {
  return connected_ ? static_cast<int>(socket_.native_handle()) : -1;
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
