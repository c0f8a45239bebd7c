#include "scanner_impl.h"

#include <spdlog/logger.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace alldata::client {

using namespace scanner_detail;

Status Scanner::Impl::start_node(int node) {
  Node& n = nodes_[node];
  if (n.address.empty()) {
    return Error(ErrorCode::kConnectionFailed,
                 "the cluster metadata gives no client address for broker " + n.id);
  }
  if (!n.conn) {
    if (auto hp = detail::parse_host_port(n.address); !hp) {
      return Error(ErrorCode::kConnectionFailed, "broker " + n.id + " advertises a bad client address: " +
                                                     hp.error().message);
    }
    ClientConfig c = config_;
    c.bootstrap = {n.address};
    c.logger = nullptr;  // the scanner logs its connections and failures itself
    n.conn = std::make_unique<BrokerConnection>(std::move(c));
  }
  if (auto ok = n.conn->begin_connect(); !ok) return ok;
  if (n.conn->connected()) return on_connected(node);
  return {};
}

Status Scanner::Impl::on_connected(int node) {
  Node& n = nodes_[node];
  if (n.conn->info().node_id != n.id) {
    const std::string who = n.conn->info().node_id;
    n.conn->drop();
    return Error(ErrorCode::kConnectionFailed, n.address + " answered as broker " + who + ", not " + n.id);
  }
  if (config_.logger) config_.logger->info("scanner: connected to broker {}", describe(node));
  n.deadline = Clock::now() + config_.request_timeout;
  return flush(node);
}

Status Scanner::Impl::flush(int node) {
  Node& n = nodes_[node];
  if (n.out.empty()) return {};
  std::string frames = std::move(n.out);
  n.out.clear();
  return n.conn->write(frames);
}

Status Scanner::Impl::pump() {
  std::optional<Clock::time_point> earliest_retry;
  for (std::size_t i = 0; i < readers_.size(); ++i) {
    Reader& r = readers_[i];
    if (r.done || r.in_flight || merger_.buffered(i) > low_water_) continue;
    for (;;) {
      if (r.retry_at > Clock::now()) {
        earliest_retry = std::min(earliest_retry.value_or(r.retry_at), r.retry_at);
        break;
      }
      if (r.node < 0) {
        if (auto ok = choose(i); !ok) return ok;
        continue;
      }
      const int node = r.node;
      Node& n = nodes_[node];
      if (!n.conn || (!n.conn->connected() && !n.conn->connecting())) {
        if (auto ok = start_node(node); !ok) {
          node_failed(node, ok.error());
          continue;
        }
      }
      const std::uint64_t id = n.conn->next_id();
      encode_scan(id, i, n.out);
      if (n.pending.empty()) {
        n.deadline = n.conn->connected() ? Clock::now() + config_.request_timeout
                                         : n.conn->connect_deadline();
      }
      n.pending[id] = i;
      r.in_flight = true;
      r.asked_at = Clock::now();
      break;
    }
  }
  for (std::size_t node = 0; node < nodes_.size(); ++node) {
    Node& n = nodes_[node];
    if (n.out.empty() || !n.conn->connected()) continue;  // a connecting node sends once up
    if (auto ok = flush(static_cast<int>(node)); !ok) node_failed(static_cast<int>(node), ok.error());
  }
  return wait_and_handle(earliest_retry);
}

Status Scanner::Impl::wait_and_handle(std::optional<Clock::time_point> earliest_retry) {
  std::vector<pollfd> fds;
  std::vector<int> polled;
  std::optional<Clock::time_point> wake = earliest_retry;
  auto wake_by = [&](Clock::time_point t) { wake = std::min(wake.value_or(t), t); };
  for (std::size_t node = 0; node < nodes_.size(); ++node) {
    const Node& n = nodes_[node];
    if (connecting(n)) {
      fds.push_back(pollfd{n.conn->native_handle(), n.conn->poll_events(), 0});
      wake_by(n.conn->connect_deadline());
    } else if (!n.pending.empty()) {
      fds.push_back(pollfd{n.conn->native_handle(), POLLIN, 0});
      wake_by(n.deadline);
    } else {
      continue;
    }
    polled.push_back(static_cast<int>(node));
  }
  for (const Reader& r : readers_) {
    if (r.in_flight) wake_by(r.asked_at + kSwitchReplicaAfter);
  }
  if (fds.empty()) {
    // Everything needed is waiting out a retry back-off.
    if (earliest_retry) std::this_thread::sleep_until(*earliest_retry);
    return {};
  }
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*wake - Clock::now());
  const int timeout_ms = static_cast<int>(std::clamp<std::int64_t>(wait.count(), 0, 60'000));
  const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
  if (ready < 0 && errno != EINTR) {
    return Error(ErrorCode::kInternal, std::string("poll failed: ") + std::strerror(errno));
  }
  for (std::size_t k = 0; ready > 0 && k < fds.size(); ++k) {
    if (fds[k].revents == 0) continue;
    if (auto ok = handle_ready(polled[k]); !ok) return ok;
  }
  expire_deadlines();
  switch_slow_readers();
  return {};
}

Status Scanner::Impl::handle_ready(int node) {
  Node& n = nodes_[node];
  if (connecting(n)) {
    auto ok = n.conn->advance();
    if (ok && n.conn->connected()) ok = on_connected(node);
    if (!ok) node_failed(node, ok.error());
    return {};
  }
  if (n.pending.empty() || !n.conn->connected()) return {};
  auto frame = n.conn->read();
  if (!frame) {
    node_failed(node, frame.error());
    return {};
  }
  if (!n.pending.empty()) n.deadline = Clock::now() + config_.request_timeout;
  return handle(node, *frame);
}

void Scanner::Impl::expire_deadlines() {
  const auto now = Clock::now();
  for (std::size_t node = 0; node < nodes_.size(); ++node) {
    Node& n = nodes_[node];
    if (connecting(n)) {
      if (n.conn->connect_deadline() > now) continue;
      if (auto ok = n.conn->advance(); !ok) node_failed(static_cast<int>(node), ok.error());
      continue;
    }
    if (n.pending.empty() || n.deadline > now) continue;
    pollfd probe{n.conn->native_handle(), POLLIN, 0};
    if (::poll(&probe, 1, 0) > 0) continue;
    node_failed(static_cast<int>(node),
                Error(ErrorCode::kTimeout, "no answer to a scan within " +
                                               std::to_string(config_.request_timeout.count()) +
                                               " ms [broker " + n.address + "]"));
  }
}

}  // namespace alldata::client
