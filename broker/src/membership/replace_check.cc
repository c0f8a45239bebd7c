#include "membership/replace_check.h"

#include "membership/asio_runtime.h"
#include "membership/codec.h"

#include <boost/asio/io_context.hpp>

#include <optional>

namespace alldata::broker {

namespace {

// One seed's view, or why there is none.
Result<PushPullMsg> ask(TcpStreamTransport& tcp, boost::asio::io_context& io, const std::string& seed,
                        const PushPullMsg& query, std::chrono::milliseconds timeout) {
  std::optional<Result<std::string>> answer;
  tcp.request(seed, encode(query), timeout, [&](Result<std::string> r) { answer = std::move(r); });
  io.restart();
  while (!answer && io.run_one_for(timeout) > 0) {
  }
  if (!answer) return Error(ErrorCode::kTimeout, "no answer within " + std::to_string(timeout.count()) + " ms");
  if (!*answer) return answer->error();
  return decode_push_pull(**answer);
}

// What one answer says of `node_id`: nullopt = nothing (not listed).
std::optional<Status> verdict(const PushPullMsg& view, const std::string& node_id, const std::string& seed) {
  const std::string who = "seed " + seed + " (" + view.from + ")";
  for (const auto& e : view.members) {
    if (e.record.node_id != node_id) continue;
    if (!e.removed_by.empty() || e.record.state.lifecycle == Lifecycle::kLeft) {
      return Error(ErrorCode::kBadRequest, who + ": " + node_id + " left or was removed; its node id may not "
                                                  "return: start the broker with a new --node-id");
    }
    if (e.liveness != Liveness::kDead) {
      return Error(ErrorCode::kBadRequest,
                   who + " holds " + node_id + " " + std::string(to_string(e.liveness)) + " at " + e.record.address +
                       ": stop that broker, or wait until it is declared dead, before replacing it");
    }
    return Status{};
  }
  for (const auto& t : view.tombstones) {
    if (t.node_id != node_id) continue;
    if (t.final) {
      return Error(ErrorCode::kBadRequest, who + ": " + node_id + " may not return (" + t.reason +
                                                  "): start the broker with a new --node-id");
    }
    return Status{};  // a dead member already forgotten
  }
  return std::nullopt;
}

}  // namespace

Status check_replaceable(const std::string& node_id, const std::string& cluster, const std::vector<std::string>& seeds,
                         const std::string& listen_host, std::chrono::milliseconds timeout,
                         std::shared_ptr<spdlog::logger> logger) {
  if (seeds.empty()) return Error(ErrorCode::kBadRequest, "--replace needs --seeds: the cluster to ask");
  boost::asio::io_context io;
  auto tcp = TcpStreamTransport::open(io.get_executor(), listen_host + ":0", logger);
  if (!tcp) return tcp.error();
  PushPullMsg query;
  query.cluster = cluster;
  query.from = node_id;
  query.from_address = (*tcp)->local_address();
  query.query = true;
  bool dead = false;
  std::string unanswered, members;
  for (const auto& seed : seeds) {
    auto view = ask(**tcp, io, seed, query, timeout);
    if (view && !view->refused.empty()) {
      if (view->refused.find("this broker's own") != std::string::npos) {
        return Error(ErrorCode::kBadRequest, "seed " + seed + " is " + node_id + " itself, and running: stop it "
                                                                             "before replacing it");
      }
      if (view->refused.find("may not rejoin") != std::string::npos) {
        return Error(ErrorCode::kBadRequest, "seed " + seed + ": " + view->refused);
      }
      view = Error(ErrorCode::kBadRequest, view->refused);
    }
    if (!view) {
      unanswered += (unanswered.empty() ? "" : "; ") + seed + ": " + view.error().to_string();
      continue;
    }
    if (auto v = verdict(*view, node_id, seed)) {
      if (!*v) return *v;
      dead = true;
    }
    if (members.empty()) {
      for (const auto& e : view->members) members += (members.empty() ? "" : ", ") + e.record.node_id;
    }
  }
  (*tcp)->close();
  if (dead) return {};
  if (members.empty()) return Error(ErrorCode::kConnectionFailed, "no seed answered (" + unanswered + ")");
  return Error(ErrorCode::kBadRequest, "no seed knows a member " + node_id + " (members: " + members +
                                           "): check the node id");
}

}  // namespace alldata::broker
