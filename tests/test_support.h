// Shared helpers for the integration tests: a temporary folder, an in-process broker on an
// OS-chosen loopback port, and a blocking raw-protocol connection that can send well-formed
// requests or arbitrary bytes. Every read has a deadline, so a broker that hangs fails the
// test instead of hanging it.
#pragma once

#include "alldata/broker/broker.h"
#include "alldata/protocol/framing.h"
#include "alldata/protocol/key.h"
#include "alldata/protocol/wire.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace alldata::testing {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("alldata-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline std::shared_ptr<spdlog::logger> test_logger() {
  // ALLDATA_TEST_LOG=1 shows broker logs while debugging a test.
  if (std::getenv("ALLDATA_TEST_LOG")) {
    return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  }
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

inline broker::BrokerOptions test_options(const std::string& dir) {
  broker::BrokerOptions o;
  o.data_dir = dir;
  o.client_listen = "127.0.0.1:0";
  o.sync = false;
  o.partitions = 4;
  return o;
}

// Options for broker `i` of an in-process test cluster (RF 3, gossip every 100 ms, node id
// "node-<i>", data under dir/broker-<i>), joining through `seed` unless it is empty.
inline broker::BrokerOptions cluster_options(const std::filesystem::path& dir, int i,
                                             const std::string& seed, std::uint32_t partitions) {
  auto o = test_options((dir / ("broker-" + std::to_string(i))).string());
  o.partitions = partitions;
  o.peer_listen = "127.0.0.1:0";
  o.gossip_listen = "127.0.0.1:0";
  o.gossip_interval = std::chrono::milliseconds(100);
  o.replica_timeout = std::chrono::seconds(2);
  o.replication_factor = 3;
  o.node_id = "node-" + std::to_string(i);
  if (!seed.empty()) o.seeds = {seed};
  return o;
}

inline std::uint16_t port_of(const std::string& address) {
  return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// Polls `done` until it holds or `timeout` passes; true if it held.
template <class F>
bool eventually(F done, std::chrono::seconds timeout = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

inline std::unique_ptr<broker::Broker> start_broker(const broker::BrokerOptions& o) {
  auto b = broker::Broker::start(o, test_logger());
  if (!b) {
    ADD_FAILURE() << "broker did not start: " << b.error().to_string();
    return nullptr;
  }
  return std::move(*b);
}

// A decoded response, owning the bytes its reader points into.
struct Reply {
  protocol::FrameBuffer frame;
  std::unique_ptr<capnp::FlatArrayMessageReader> reader;
  wire::Response::Reader get() { return reader->getRoot<wire::Response>(); }
  ErrorCode error() { return protocol::from_wire(get().getError()); }
  std::string message() { return get().getMessage().cStr(); }
};

struct TestEvent {
  std::string payload;
  std::optional<Key> key;
};

class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port, std::chrono::milliseconds read_timeout = std::chrono::seconds(20))
      : socket_(io_) {
    boost::asio::ip::tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), port);
    socket_.connect(ep);
    socket_.set_option(boost::asio::ip::tcp::no_delay(true));
    timeval tv{};
    tv.tv_sec = read_timeout.count() / 1000;
    tv.tv_usec = (read_timeout.count() % 1000) * 1000;
    ::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

  void send_bytes(std::string_view bytes) {
    boost::asio::write(socket_, boost::asio::buffer(bytes.data(), bytes.size()));
  }

  void send(capnp::MessageBuilder& mb) {
    std::string out;
    protocol::append_frame(mb, out);
    send_bytes(out);
  }

  // The next response, or nullopt when the broker closed the connection (or the read
  // deadline passed: `timed_out()` tells).
  std::optional<Reply> read() {
    std::uint8_t header[4];
    boost::system::error_code ec;
    boost::asio::read(socket_, boost::asio::buffer(header), ec);
    if (ec) {
      timed_out_ = ec == boost::asio::error::would_block || ec == boost::asio::error::try_again;
      return std::nullopt;
    }
    const auto n = protocol::read_frame_length(header);
    Reply r;
    r.frame = protocol::FrameBuffer(n);
    boost::asio::read(socket_, boost::asio::buffer(r.frame.data(), n), ec);
    if (ec) return std::nullopt;
    r.reader = std::make_unique<capnp::FlatArrayMessageReader>(
        r.frame.words(), protocol::reader_options(n));
    return r;
  }

  // True once the broker has closed this connection (reads end-of-file).
  bool closed_by_peer() {
    char c;
    boost::system::error_code ec;
    const auto n = socket_.read_some(boost::asio::buffer(&c, 1), ec);
    return n == 0 && ec == boost::asio::error::eof;
  }

  bool timed_out() const { return timed_out_; }

  Reply call(capnp::MessageBuilder& mb) {
    send(mb);
    auto r = read();
    if (!r) throw std::runtime_error("the broker closed the connection without an answer");
    return std::move(*r);
  }

  Reply hello(bool peer = false) {
    capnp::MallocMessageBuilder mb;
    auto req = mb.initRoot<wire::Request>();
    req.setCorrelationId(next_id_++);
    auto h = req.initHello();
    h.setProtocolVersion(1);
    h.setClientId("test");
    h.setRole(peer ? wire::Role::PEER : wire::Role::CLIENT);
    return call(mb);
  }

  // A peer's replicate (or deliverHints) of keyed events.
  Reply replicate(const std::string& stream, std::uint32_t partition,
                  const std::vector<std::pair<Key, std::string>>& events, bool deliver_hints = false) {
    capnp::MallocMessageBuilder mb;
    auto req = mb.initRoot<wire::Request>();
    req.setCorrelationId(next_id_++);
    auto fill = [&](auto r) {
      r.setStream(protocol::text(stream));
      r.setPartition(partition);
      auto list = r.initEvents(static_cast<unsigned>(events.size()));
      for (unsigned i = 0; i < events.size(); ++i) {
        list[i].setKey(protocol::data(events[i].first.view()));
        list[i].setPayload(protocol::data(events[i].second));
      }
    };
    if (deliver_hints) {
      fill(req.initDeliverHints());
    } else {
      fill(req.initReplicate());
    }
    return call(mb);
  }

  Reply produce(const std::string& stream, std::uint32_t partition,
                const std::vector<TestEvent>& events,
                wire::CommitLevel level = wire::CommitLevel::ONE) {
    capnp::MallocMessageBuilder mb;
    auto req = mb.initRoot<wire::Request>();
    req.setCorrelationId(next_id_++);
    auto p = req.initProduce();
    p.setStream(protocol::text(stream));
    p.setPartition(partition);
    p.setCommitLevel(level);
    auto list = p.initEvents(static_cast<unsigned>(events.size()));
    for (unsigned i = 0; i < events.size(); ++i) {
      list[i].setPayload(protocol::data(events[i].payload));
      if (events[i].key) list[i].setKey(protocol::data(events[i].key->view()));
    }
    return call(mb);
  }

  Reply scan(const std::string& stream, std::uint32_t partition, std::optional<Key> from = {},
             std::optional<Key> to = {}, std::uint32_t max_events = 0) {
    capnp::MallocMessageBuilder mb;
    auto req = mb.initRoot<wire::Request>();
    req.setCorrelationId(next_id_++);
    auto s = req.initScan();
    s.setStream(protocol::text(stream));
    s.setPartition(partition);
    if (from) s.setFrom(protocol::data(from->view()));
    if (to) s.setTo(protocol::data(to->view()));
    s.setMaxEvents(max_events);
    return call(mb);
  }

  // The broker's metadata; with `stream`, also that stream's replica sets.
  Reply metadata(const std::string& stream = "") {
    capnp::MallocMessageBuilder mb;
    auto req = mb.initRoot<wire::Request>();
    req.setCorrelationId(next_id_++);
    auto m = req.initMetadata();
    if (!stream.empty()) m.setStream(protocol::text(stream));
    return call(mb);
  }

  // Every event of one partition, following next_from, as (key, payload) in order.
  std::vector<std::pair<Key, std::string>> scan_all(const std::string& stream, std::uint32_t partition,
                                                    std::optional<Key> from = {},
                                                    std::optional<Key> to = {}) {
    std::vector<std::pair<Key, std::string>> out;
    for (;;) {
      auto r = scan(stream, partition, from, to);
      EXPECT_EQ(r.error(), ErrorCode::kOk) << r.message();
      if (r.error() != ErrorCode::kOk) return out;
      auto res = r.get().getScan();
      for (auto e : res.getEvents()) {
        out.emplace_back(Key::from_raw(e.getKey().begin()), std::string(protocol::view(e.getPayload())));
      }
      if (res.getDone()) return out;
      from = Key::from_raw(res.getNextFrom().begin());
    }
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  std::uint64_t next_id_ = 1;
  bool timed_out_ = false;
};

// Members that the broker on `port` reports alive and normal, or 0 while its own
// membership is not ready (joining, settling): what a test waits for before writing.
inline int normal_members(std::uint16_t port) {
  RawConnection c(port);
  c.hello();
  auto r = c.metadata();
  if (r.error() != ErrorCode::kOk) return 0;
  auto m = r.get().getMetadata();
  if (std::string_view(m.getMembershipStatus().cStr()) != "ready") return 0;
  int normal = 0;
  for (auto member : m.getMembers()) {
    normal += member.getLiveness() == wire::Liveness::ALIVE && member.getLifecycle() == wire::Lifecycle::NORMAL;
  }
  return normal;
}

// The keys of a successful produce reply, in request order.
inline std::vector<Key> keys_of(Reply& r) {
  std::vector<Key> keys;
  auto data = r.get().getProduce().getKeys();
  for (std::size_t i = 0; i + Key::kSize <= data.size(); i += Key::kSize) {
    keys.push_back(Key::from_raw(data.begin() + i));
  }
  return keys;
}

// A new client on `port` says hello, writes `payload` to partition 0 of stream "health"
// and reads it back: what a healthy broker does for anyone, whatever else goes on.
inline void expect_serves(std::uint16_t port, const std::string& payload) {
  RawConnection c(port);
  auto h = c.hello();
  ASSERT_EQ(h.error(), ErrorCode::kOk) << h.message();
  auto r = c.produce("health", 0, {{payload, {}}});
  ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
  const Key k = keys_of(r)[0];
  auto got = c.scan_all("health", 0, k);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].second, payload);
}

// The frames of `count` scans of partition 0 of `stream` from its start, pages of up to
// `max_bytes`, correlation ids from `first_id`: what a client pipelines before it reads.
inline std::string pipelined_scans(const std::string& stream, int count, std::uint32_t max_bytes,
                                   std::uint64_t first_id) {
  std::string frames;
  for (int k = 0; k < count; ++k) {
    capnp::MallocMessageBuilder mb;
    auto req = mb.initRoot<wire::Request>();
    req.setCorrelationId(first_id + static_cast<std::uint64_t>(k));
    auto s = req.initScan();
    s.setStream(protocol::text(stream));
    s.setPartition(0);
    s.setMaxBytes(max_bytes);
    protocol::append_frame(mb, frames);
  }
  return frames;
}

// Every key the broker at `client_port` holds in its own copy of `stream` (raw protocol,
// not the code under test).
inline std::set<Key> keys_held(std::uint16_t client_port, const std::string& stream,
                               std::uint32_t partitions) {
  RawConnection c(client_port);
  c.hello();
  std::set<Key> keys;
  for (std::uint32_t p = 0; p < partitions; ++p) {
    for (auto& [k, v] : c.scan_all(stream, p)) keys.insert(k);
  }
  return keys;
}

}  // namespace alldata::testing
