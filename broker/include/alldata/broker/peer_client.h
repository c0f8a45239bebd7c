// The broker's outgoing side of the peer protocol: one pipelined connection per peer
// address, opened on first use (hello with role peer) and reopened after a failure. The
// replicating coordinator and hinted handoff use it to store batches on other brokers.
//
// Executors: every connection lives on the PeerClient's own executor (give it a strand or a
// single-threaded io_context); calls may come from any executor and complete on the
// caller's. close() fails every pending call with kShuttingDown and refuses new ones.
#pragma once

#include "alldata/protocol/error.h"
#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"
#include "alldata/storage/event_store.h"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace alldata::broker {

struct PeerClientOptions {
  std::string self_node_id;                                  // sent in hello, for logs
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(3);
  std::uint32_t max_frame_bytes = 16u << 20;                 // answers longer are refused
  std::size_t max_queued_bytes = 64u << 20;                  // unsent requests per peer
};

class PeerClient {
 public:
  // Borrows `log`, which must outlive the client.
  PeerClient(boost::asio::any_io_executor executor, PeerClientOptions options, spdlog::logger& log);
  ~PeerClient();
  PeerClient(const PeerClient&) = delete;
  PeerClient& operator=(const PeerClient&) = delete;

  enum class Kind { kReplicate, kDeliverHints };

  // Stores `batch` on broker `node_id`, whose peer listener is `address` (host:port): as
  // its own replica (kReplicate), as a hint it keeps for `hint_for` (kReplicate with
  // hint_for), or as delivered hints (kDeliverHints). The broker at `address` must answer
  // hello with `node_id`, else nothing is sent (kConnectionFailed naming both ids: a stale
  // or forged address never puts a copy on the wrong broker). Completes once that broker
  // acknowledged, or with kConnectionFailed (cannot connect, connection lost: the outcome
  // is unknown, a retry is safe because keys make writes idempotent), kTimeout (after
  // `timeout`, same), the peer's own error, or kShuttingDown after close(). `batch` is
  // borrowed until completion.
  boost::asio::awaitable<Status> send(const std::string& node_id, const std::string& address,
                                      Kind kind,
                                      const storage::EventBatch& batch,
                                      std::optional<std::string> hint_for,
                                      std::chrono::milliseconds timeout);

  // Fills in a request (its correlation id is set by the client).
  using RequestBuilder = std::function<void(wire::Request::Builder)>;

  // Sends any peer request to broker `node_id` at `address` (checked as for send()) and
  // completes with the answer's frame when it is ok (decode it with protocol::make_reader),
  // or with the error: the peer's own, kConnectionFailed, kTimeout, kOverloaded (too much
  // unsent), kShuttingDown. `size_hint`: about how many bytes the request takes; when
  // `sent_bytes` is set, the request's frame size is added to it (on the client's executor,
  // before completion).
  boost::asio::awaitable<Result<protocol::FrameBuffer>> request(
      const std::string& node_id, const std::string& address, const RequestBuilder& build,
      std::size_t size_hint, std::chrono::milliseconds timeout,
      std::uint64_t* sent_bytes = nullptr);

  // Closes every connection; pending and later sends fail with kShuttingDown. Thread-safe.
  void close();

 private:
  class Connection;
  // Runs on executor_; its arguments live in send()'s frame, which awaits it.
  boost::asio::awaitable<Status> send_here(const std::string& node_id,
                                           const std::string& address, Kind kind,
                                           const storage::EventBatch& batch,
                                           const std::optional<std::string>& hint_for,
                                           std::chrono::milliseconds timeout);

  // The connection to (node_id, address), made on first use. On executor_.
  std::shared_ptr<Connection> connection(const std::string& node_id, const std::string& address);

  boost::asio::any_io_executor executor_;
  PeerClientOptions options_;
  spdlog::logger& log_;
  bool closed_ = false;                                         // on executor_
  // By (node id, address): on executor_.
  std::map<std::pair<std::string, std::string>, std::shared_ptr<Connection>> connections_;
};

}  // namespace alldata::broker
