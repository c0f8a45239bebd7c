#include "alldata/broker/peer_client.h"

#include "wire_events.h"

#include "net_util.h"

#include "alldata/protocol/framing.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <kj/exception.h>

#include <vector>

namespace alldata::broker {

namespace asio = boost::asio;
using asio::as_tuple;
using asio::use_awaitable;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {


}  // namespace

// One connection to one peer. Lives on the PeerClient's executor; never touched elsewhere.
class PeerClient::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::any_io_executor ex, std::string node_id, std::string address,
             const PeerClientOptions& options, spdlog::logger& log)
      : ex_(ex),
        node_id_(std::move(node_id)),
        address_(std::move(address)),
        options_(options),
        log_(log),
        socket_(ex),
        connect_wait_(ex),
        writer_wake_(ex) {}

  // Sends the request `build` fills in (the correlation id is set here) and completes with
  // the answer's frame when it is ok, or with the error.
  asio::awaitable<Result<protocol::FrameBuffer>> request(const RequestBuilder& build,
                                                         std::size_t size_hint,
                                                         std::chrono::milliseconds timeout,
                                                         std::uint64_t* sent_bytes = nullptr) {
    auto self = shared_from_this();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (auto st = co_await ensure_connected(deadline); !st) co_return st.error();
    if (out_.size() > options_.max_queued_bytes) {
      co_return Error(ErrorCode::kOverloaded, "too much unsent data queued for peer " + address_);
    }
    const std::uint64_t id = ++next_id_;
    {
      capnp::MallocMessageBuilder mb(static_cast<unsigned>(size_hint / 8 + 64));
      auto req = mb.initRoot<wire::Request>();
      req.setCorrelationId(id);
      build(req);
      const std::size_t before = out_.size();
      protocol::append_frame(mb, out_);
      if (sent_bytes != nullptr) *sent_bytes += out_.size() - before;
    }
    auto pending = std::make_shared<Pending>(ex_);
    pending->timer.expires_at(deadline);
    pending_[id] = pending;
    writer_wake_.cancel();
    if (!pending->result) co_await pending->timer.async_wait(as_tuple(use_awaitable));
    pending_.erase(id);
    if (!pending->result) {
      co_return Error(ErrorCode::kTimeout,
                      "peer " + address_ + " did not answer within " +
                          std::to_string(timeout.count()) + " ms");
    }
    co_return std::move(*pending->result);
  }

  asio::awaitable<Status> call(Kind kind, const storage::EventBatch& batch,
                               const std::optional<std::string>& hint_for,
                               std::chrono::milliseconds timeout) {
    // A named std::function: a conversion inside co_await would make a temporary GCC 12
    // destroys twice.
    const RequestBuilder build = [&](wire::Request::Builder req) {
      auto fill = [&](auto r) {
        r.setStream(protocol::text(batch.stream()));
        r.setPartition(batch.partition());
        put_events(r.initEvents(static_cast<unsigned>(batch.size())), batch);
      };
      if (kind == Kind::kDeliverHints) {
        fill(req.initDeliverHints());
      } else {
        auto r = req.initReplicate();
        fill(r);
        if (hint_for) r.setHintFor(protocol::text(*hint_for));
      }
    };
    auto answer = co_await request(build, batch.bytes(), timeout);
    if (!answer) co_return answer.error();
    co_return Status{};
  }

  void close(const Error& why) {
    closed_ = true;
    drop(why);
  }

 private:
  struct Pending {
    explicit Pending(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::optional<Result<protocol::FrameBuffer>> result;
  };

  asio::awaitable<Status> ensure_connected(std::chrono::steady_clock::time_point deadline) {
    // Several calls may wait for one connect: they share the timer without resetting it
    // (resetting would cancel the others' waits), and the connector cancels it when done.
    while (connecting_) co_await connect_wait_.async_wait(as_tuple(use_awaitable));
    if (closed_) co_return Error(ErrorCode::kShuttingDown, "the broker is stopping");
    if (ready_) co_return Status{};
    connecting_ = true;
    connect_wait_.expires_at(asio::steady_timer::time_point::max());
    Status st = co_await connect(std::min(deadline, std::chrono::steady_clock::now() +
                                                         options_.connect_timeout));
    connecting_ = false;
    connect_wait_.cancel();
    co_return st;
  }

  asio::awaitable<Status> connect(std::chrono::steady_clock::time_point deadline) {
    auto ip_port = parse_ip_port(address_, /*allow_port_zero=*/false, "peer address");
    if (!ip_port) co_return Error(ErrorCode::kConnectionFailed, ip_port.error().message);
    const tcp::endpoint endpoint(ip_port->ip, ip_port->port);
    socket_ = tcp::socket(ex_);
    asio::steady_timer timer(ex_);
    timer.expires_at(deadline);
    auto fail = [&](const std::string& what) -> Status {
      boost::system::error_code ignored;
      socket_.close(ignored);
      return Error(ErrorCode::kConnectionFailed, "cannot reach peer " + address_ + ": " + what);
    };
    auto connected = co_await (socket_.async_connect(endpoint, as_tuple(use_awaitable)) ||
                               timer.async_wait(as_tuple(use_awaitable)));
    if (connected.index() == 1) co_return fail("connect timed out");
    if (auto [ec] = std::get<0>(connected); ec) co_return fail(ec.message());
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);

    // hello, with role peer, answered before anything else goes out.
    std::string frame;
    {
      capnp::MallocMessageBuilder mb(128);
      auto req = mb.initRoot<wire::Request>();
      req.setCorrelationId(0);
      auto h = req.initHello();
      h.setProtocolVersion(wire::PROTOCOL_VERSION);
      h.setClientId(protocol::text(options_.self_node_id));
      h.setRole(wire::Role::PEER);
      protocol::append_frame(mb, frame);
    }
    auto wrote = co_await (asio::async_write(socket_, asio::buffer(frame), as_tuple(use_awaitable)) ||
                           timer.async_wait(as_tuple(use_awaitable)));
    if (wrote.index() == 1) co_return fail("hello timed out");
    if (auto [ec, n] = std::get<0>(wrote); ec) co_return fail(ec.message());
    auto answer = co_await (read_frame() || timer.async_wait(as_tuple(use_awaitable)));
    if (answer.index() == 1) co_return fail("hello timed out");
    auto& body = std::get<0>(answer);
    if (!body) co_return fail(body.error().message);
    try {
      auto reader = protocol::make_reader(*body);
      auto resp = reader.getRoot<wire::Response>();
      if (resp.getError() != wire::ErrorCode::OK) {
        co_return fail("hello refused: " + std::string(resp.getMessage().cStr()));
      }
      // A stale or forged address must never put a replica on another broker.
      const std::string answered = resp.isHello() ? resp.getHello().getNodeId().cStr() : "";
      if (answered != node_id_) {
        log_.warn("peer at {} is node '{}', not '{}': nothing is sent to it", address_, answered,
                  node_id_);
        co_return fail("it is node '" + answered + "', not '" + node_id_ + "'");
      }
    } catch (const kj::Exception& e) {
      co_return fail(std::string("bad hello answer: ") + e.getDescription().cStr());
    }
    ready_ = true;
    const std::uint64_t generation = ++generation_;
    auto self = shared_from_this();
    asio::co_spawn(ex_, read_loop(generation), [self](std::exception_ptr) {});
    asio::co_spawn(ex_, write_loop(generation), [self](std::exception_ptr) {});
    co_return Status{};
  }

  // One frame body, or kConnectionFailed / kProtocolError.
  asio::awaitable<Result<protocol::FrameBuffer>> read_frame() {
    std::uint8_t header[protocol::kFrameHeaderBytes];
    auto [ec, n] = co_await asio::async_read(socket_, asio::buffer(header), as_tuple(use_awaitable));
    if (ec) co_return Error(ErrorCode::kConnectionFailed, ec.message());
    const auto length = protocol::read_frame_length(header);
    if (auto ok = protocol::check_frame_length(length, options_.max_frame_bytes); !ok) {
      co_return Error(ErrorCode::kProtocolError, ok.error().message);
    }
    protocol::FrameBuffer body(length);
    auto [ec2, n2] = co_await asio::async_read(socket_, asio::buffer(body.data(), length),
                                               as_tuple(use_awaitable));
    if (ec2) co_return Error(ErrorCode::kConnectionFailed, ec2.message());
    co_return body;
  }

  asio::awaitable<void> read_loop(std::uint64_t generation) {
    while (generation == generation_) {
      auto body = co_await read_frame();
      if (generation != generation_) co_return;
      if (!body) {
        drop(Error(body.error().code, "lost peer " + address_ + ": " + body.error().message));
        co_return;
      }
      try {
        std::optional<Error> error;
        std::uint64_t id = 0;
        {
          auto reader = protocol::make_reader(*body);
          auto resp = reader.getRoot<wire::Response>();
          id = resp.getCorrelationId();
          if (resp.getError() != wire::ErrorCode::OK) {
            error = Error(protocol::from_wire(resp.getError()),
                          std::string(resp.getMessage().cStr()) + " [peer " + address_ + "]");
          }
        }
        auto it = pending_.find(id);
        if (it == pending_.end()) continue;  // answer to a call that timed out
        if (error) {
          it->second->result = Result<protocol::FrameBuffer>(std::move(*error));
        } else {
          it->second->result = Result<protocol::FrameBuffer>(std::move(*body));
        }
        it->second->timer.cancel();
      } catch (const kj::Exception& e) {
        drop(Error(ErrorCode::kProtocolError, "peer " + address_ + " sent an undecodable answer"));
        co_return;
      }
    }
  }

  asio::awaitable<void> write_loop(std::uint64_t generation) {
    std::string buffer;
    while (generation == generation_) {
      while (out_.empty() && generation == generation_) co_await wait_on(writer_wake_);
      if (generation != generation_) co_return;
      buffer.swap(out_);
      auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(buffer), as_tuple(use_awaitable));
      buffer.clear();
      if (ec) {
        if (generation == generation_) drop(Error(ErrorCode::kConnectionFailed,
                                                  "lost peer " + address_ + ": " + ec.message()));
        co_return;
      }
    }
  }

  // Ends the current connection: every waiting call fails with `why`; the next call
  // reconnects (unless closed).
  void drop(const Error& why) {
    if (ready_) log_.warn("{}", why.to_string());
    ready_ = false;
    ++generation_;
    boost::system::error_code ignored;
    socket_.close(ignored);
    out_.clear();
    writer_wake_.cancel();
    for (auto& [id, p] : pending_) {
      if (!p->result) p->result = Result<protocol::FrameBuffer>(why);
      p->timer.cancel();
    }
  }

  asio::any_io_executor ex_;
  std::string node_id_;  // who must answer at address_
  std::string address_;
  const PeerClientOptions& options_;
  spdlog::logger& log_;
  tcp::socket socket_;
  asio::steady_timer connect_wait_;
  asio::steady_timer writer_wake_;
  std::map<std::uint64_t, std::shared_ptr<Pending>> pending_;
  std::string out_;
  std::uint64_t next_id_ = 0;
  std::uint64_t generation_ = 0;
  bool connecting_ = false;
  bool ready_ = false;
  bool closed_ = false;
};

PeerClient::PeerClient(asio::any_io_executor executor, PeerClientOptions options, spdlog::logger& log)
    : executor_(std::move(executor)), options_(std::move(options)), log_(log) {}

PeerClient::~PeerClient() = default;

asio::awaitable<Status> PeerClient::send(const std::string& node_id, const std::string& address,
                                         Kind kind, const storage::EventBatch& batch,
                                         std::optional<std::string> hint_for,
                                         std::chrono::milliseconds timeout) {
  co_return co_await asio::co_spawn(
      executor_, send_here(node_id, address, kind, batch, hint_for, timeout), use_awaitable);
}

asio::awaitable<Status> PeerClient::send_here(const std::string& node_id,
                                              const std::string& address, Kind kind,
                                              const storage::EventBatch& batch,
                                              const std::optional<std::string>& hint_for,
                                              std::chrono::milliseconds timeout) {
  if (closed_) co_return Error(ErrorCode::kShuttingDown, "the broker is stopping");
  auto connection = this->connection(node_id, address);
  // A batch whose request could pass the peer's frame limit (keys and framing add to the
  // events' bytes) goes as several requests; writes are idempotent by key, so a failure
  // part-way is retried whole.
  const std::size_t chunk_bytes = options_.max_frame_bytes / 4;
  if (batch.bytes() <= chunk_bytes) co_return co_await connection->call(kind, batch, hint_for, timeout);
  std::vector<storage::EventBatch> chunks;
  batch.for_each([&](const Key& key, std::string_view payload, std::span<const storage::HeaderView> headers) {
    if (chunks.empty() || chunks.back().bytes() >= chunk_bytes) {
      chunks.emplace_back(batch.stream(), batch.partition());
      chunks.back().set_repair(batch.repair());
    }
    chunks.back().add(key, payload, headers);
  });
  for (const auto& chunk : chunks) {
    Status st = co_await connection->call(kind, chunk, hint_for, timeout);
    if (!st) co_return st;
  }
  co_return Status{};
}

asio::awaitable<Result<protocol::FrameBuffer>> PeerClient::request(
    const std::string& node_id, const std::string& address, const RequestBuilder& build,
    std::size_t size_hint, std::chrono::milliseconds timeout, std::uint64_t* sent_bytes) {
  // A named task, not a temporary inside co_await: GCC 12 destroys those twice.
  auto task = [this, &node_id, &address, &build, size_hint, timeout,
               sent_bytes]() -> asio::awaitable<Result<protocol::FrameBuffer>> {
    if (closed_) co_return Error(ErrorCode::kShuttingDown, "the broker is stopping");
    auto c = connection(node_id, address);
    co_return co_await c->request(build, size_hint, timeout, sent_bytes);
  };
  co_return co_await asio::co_spawn(executor_, std::move(task), use_awaitable);
}

std::shared_ptr<PeerClient::Connection> PeerClient::connection(const std::string& node_id,
                                                               const std::string& address) {
  auto& slot = connections_[{node_id, address}];
  if (!slot) slot = std::make_shared<Connection>(executor_, node_id, address, options_, log_);
  return slot;
}

void PeerClient::close() {
  asio::post(executor_, [this] {
    closed_ = true;
    for (auto& [address, c] : connections_) c->close(Error(ErrorCode::kShuttingDown, "the broker is stopping"));
  });
}

}  // namespace alldata::broker
