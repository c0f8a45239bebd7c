// The membership runtime on a real network (membership/asio_runtime.h): UDP datagrams and
// the send-queue bound, the TCP push-pull channel's errors and its defences against
// garbage and idle connections, the timer driver, and two Membership instances converging
// over loopback. Ports are chosen by the OS; every wait has a deadline.
#include "membership/asio_runtime.h"
#include "membership/membership.h"

#include "alldata/protocol/framing.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace alldata::broker {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Clk = std::chrono::steady_clock;

std::shared_ptr<spdlog::logger> null_logger() {
  return std::make_shared<spdlog::logger>("membership", std::make_shared<spdlog::sinks::null_sink_mt>());
}

// Runs `io` until `done()` holds or `timeout` passes; returns done().
bool run_until(asio::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds timeout = 5s) {
  const auto deadline = Clk::now() + timeout;
  while (!done() && Clk::now() < deadline) {
    if (io.stopped()) io.restart();
    io.run_for(5ms);
  }
  return done();
}

// A frame header for `n` bytes followed by `body`.
std::string frame(std::uint32_t n, const std::string& body = {}) {
  std::string out(4, '\0');
  protocol::write_frame_length(reinterpret_cast<std::uint8_t*>(out.data()), n);
  return out + body;
}

// A raw client socket that notices when the server closes it.
struct RawConnection {
  explicit RawConnection(asio::io_context& io) : socket(io) {}
  void open(std::uint16_t port, const std::string& bytes) {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    opened_at = Clk::now();
    if (!bytes.empty()) asio::write(socket, asio::buffer(bytes));
    watch();
  }
  void watch() {
    socket.async_read_some(asio::buffer(buffer), [this](boost::system::error_code ec, std::size_t) {
      if (!ec) return watch();
      closed = true;
      closed_after = Clk::now() - opened_at;
    });
  }
  tcp::socket socket;
  std::array<char, 64> buffer{};
  Clk::time_point opened_at;
  bool closed = false;
  Clk::duration closed_after{};
};

// Steady time shifted by a large offset: the driver must only rely on differences.
struct OffsetClock final : Clock {
  std::uint64_t now_ms() override { return inner.now_ms() + 1'000'000'000; }
  SteadyClock inner;
};

class UdpTransportTest : public ::testing::Test {
 protected:
  std::unique_ptr<UdpTransport> open(std::size_t max_queued = 1024) {
    auto t = UdpTransport::open(io.get_executor(), "127.0.0.1:0", null_logger(), max_queued);
    EXPECT_TRUE(t) << t.error().message;
    return std::move(*t);
  }
  asio::io_context io;
};

TEST_F(UdpTransportTest, DatagramsRoundTrip) {
  auto a = open();
  auto b = open();
  ASSERT_NE(b->port(), 0);
  EXPECT_EQ(b->local_address(), "127.0.0.1:" + std::to_string(b->port()));
  std::vector<std::string> at_a;
  b->set_receiver([&](std::string_view from, std::string_view bytes) {
    EXPECT_EQ(from, a->local_address());
    b->send(std::string(from), "re:" + std::string(bytes));
  });
  a->set_receiver([&](std::string_view, std::string_view bytes) { at_a.emplace_back(bytes); });
  a->send(b->local_address(), "hello");
  ASSERT_TRUE(run_until(io, [&] { return !at_a.empty(); }));
  EXPECT_EQ(at_a.front(), "re:hello");
  EXPECT_EQ(a->send_dropped(), 0u);
}

TEST_F(UdpTransportTest, SendQueueDropsBeyondBound) {
  auto a = open(/*max_queued=*/4);
  auto b = open();
  int received = 0;
  b->set_receiver([&](std::string_view, std::string_view) { ++received; });
  for (int i = 0; i < 10; ++i) a->send(b->local_address(), "datagram " + std::to_string(i));
  EXPECT_EQ(a->send_dropped(), 6u);
  a->send("not an address", "x");
  EXPECT_EQ(a->send_dropped(), 7u);
  ASSERT_TRUE(run_until(io, [&] { return received == 4; }));
  a->close();
  a->send(b->local_address(), "after close");
  EXPECT_EQ(a->send_dropped(), 8u);
}

class TcpStreamTransportTest : public ::testing::Test {
 protected:
  std::unique_ptr<TcpStreamTransport> open(TcpStreamLimits limits = {}) {
    auto t = TcpStreamTransport::open(io.get_executor(), "127.0.0.1:0", null_logger(), limits);
    EXPECT_TRUE(t) << t.error().message;
    return std::move(*t);
  }
  // A server answering each request with itself followed by `extra` bytes.
  std::unique_ptr<TcpStreamTransport> echo_server(TcpStreamLimits limits = {}, std::size_t extra = 8) {
    auto t = open(limits);
    t->set_handler([this, extra](std::string_view from, std::string_view request) {
      last_from = std::string(from);
      return std::string(request) + std::string(extra, '!');
    });
    return t;
  }
  Result<std::string> call(TcpStreamTransport& client, const std::string& to, std::string request,
                           std::chrono::milliseconds timeout = 3s) {
    std::optional<Result<std::string>> answer;
    client.request(to, std::move(request), timeout, [&](Result<std::string> r) { answer = std::move(r); });
    EXPECT_FALSE(answer) << "done ran inside request()";
    EXPECT_TRUE(run_until(io, [&] { return answer.has_value(); }, timeout + 2s));
    return answer ? std::move(*answer) : Error(ErrorCode::kInternal, "no answer");
  }
  asio::io_context io;
  std::string last_from;
};

TEST_F(TcpStreamTransportTest, RequestIsAnswered) {
  auto server = echo_server();
  auto client = open();
  auto answer = call(*client, server->local_address(), "abcdefgh");
  ASSERT_TRUE(answer) << answer.error().message;
  EXPECT_EQ(*answer, "abcdefgh!!!!!!!!");
  EXPECT_EQ(last_from.rfind("127.0.0.1:", 0), 0u) << last_from;
}

TEST_F(TcpStreamTransportTest, ClosedPortFailsPromptly) {
  std::string address;
  {
    auto gone = open();
    address = gone->local_address();
  }
  auto client = open();
  const auto start = Clk::now();
  auto answer = call(*client, address, "abcdefgh", 5s);
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, ErrorCode::kConnectionFailed) << answer.error().message;
  EXPECT_NE(answer.error().message.find(address), std::string::npos) << answer.error().message;
  EXPECT_LT(Clk::now() - start, 2s);
}

TEST_F(TcpStreamTransportTest, AnswerOverLimitIsBadRequest) {
  auto server = echo_server({}, /*extra=*/120);
  auto client = open(TcpStreamLimits{.max_frame_bytes = 64});
  auto answer = call(*client, server->local_address(), "abcdefgh");
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, ErrorCode::kBadRequest) << answer.error().message;
}

TEST_F(TcpStreamTransportTest, InvalidRequestIsBadRequest) {
  auto server = echo_server();
  auto client = open();
  auto answer = call(*client, server->local_address(), "odd");
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, ErrorCode::kBadRequest) << answer.error().message;
}

TEST_F(TcpStreamTransportTest, ServerWithoutHandlerClosesConnection) {
  auto server = open();
  auto client = open();
  auto answer = call(*client, server->local_address(), "abcdefgh");
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, ErrorCode::kConnectionFailed) << answer.error().message;
}

TEST_F(TcpStreamTransportTest, SilentServerTimesOut) {
  tcp::acceptor silent(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));  // never accepts
  auto client = open();
  const std::string address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  auto answer = call(*client, address, "abcdefgh", 300ms);
  ASSERT_FALSE(answer);
  EXPECT_EQ(answer.error().code, ErrorCode::kTimeout) << answer.error().message;
}

TEST_F(TcpStreamTransportTest, DestroyedTransportDropsPendingDone) {
  tcp::acceptor silent(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto client = open();
  bool called = false;
  client->request("127.0.0.1:" + std::to_string(silent.local_endpoint().port()), "abcdefgh", 200ms,
                  [&](Result<std::string>) { called = true; });
  io.run_for(50ms);
  client.reset();
  run_until(io, [&] { return called; }, 500ms);
  EXPECT_FALSE(called);
}

TEST_F(TcpStreamTransportTest, GarbageClosesOnlyThatConnection) {
  auto server = echo_server(TcpStreamLimits{.io_timeout = 1000ms});
  const std::uint16_t port = server->port();
  const std::vector<std::string> garbage = {
      frame(0), frame(0xFFFFFFFFu), frame(12, std::string(12, 'x')), frame(16, std::string(8, 'x'))};
  std::vector<std::unique_ptr<RawConnection>> bad;
  for (const auto& g : garbage) {
    bad.push_back(std::make_unique<RawConnection>(io));
    bad.back()->open(port, g);
  }
  bad.back()->socket.shutdown(tcp::socket::shutdown_send);  // the half frame, then EOF
  RawConnection silent(io);
  silent.open(port, "");
  ASSERT_TRUE(run_until(io, [&] {
    for (const auto& c : bad) {
      if (!c->closed) return false;
    }
    return true;
  }));
  EXPECT_FALSE(silent.closed);
  auto client = open();
  auto answer = call(*client, server->local_address(), "abcdefgh");
  ASSERT_TRUE(answer) << answer.error().message;
  ASSERT_TRUE(run_until(io, [&] { return silent.closed; }));
  EXPECT_GE(silent.closed_after, 950ms);
}

TEST_F(TcpStreamTransportTest, ConnectionsOverLimitDoNotStopLaterExchanges) {
  auto server = echo_server(TcpStreamLimits{.max_connections = 2, .io_timeout = 500ms});
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<RawConnection>(io));
    idle.back()->open(server->port(), "");
  }
  ASSERT_TRUE(run_until(io, [&] {
    for (const auto& c : idle) {
      if (!c->closed) return false;
    }
    return true;
  }));
  EXPECT_EQ(server->connections_refused(), 2u);
  auto client = open();
  auto answer = call(*client, server->local_address(), "abcdefgh");
  ASSERT_TRUE(answer) << answer.error().message;
}

TEST_F(TcpStreamTransportTest, MembershipTransportsShareOnePort) {
  auto both = open_membership_transports(io.get_executor(), "127.0.0.1:0", null_logger());
  ASSERT_TRUE(both) << both.error().message;
  EXPECT_NE(both->first->port(), 0);
  EXPECT_EQ(both->first->port(), both->second->port());
  EXPECT_EQ(both->first->local_address(), both->second->local_address());
  tcp::acceptor taken(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string address = "127.0.0.1:" + std::to_string(taken.local_endpoint().port());
  auto clash = open_membership_transports(io.get_executor(), address, null_logger());
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code, ErrorCode::kConnectionFailed);
  EXPECT_NE(clash.error().message.find(address), std::string::npos) << clash.error().message;
  EXPECT_NE(clash.error().message.find("tcp"), std::string::npos) << clash.error().message;
}

class TimerDriverTest : public ::testing::Test {
 protected:
  asio::io_context io;
  OffsetClock clock;
  TimerQueue timers;
  std::vector<int> ran;
};

TEST_F(TimerDriverTest, RunsCallbacksInOrder) {
  TimerDriver driver(io.get_executor(), timers, clock);
  const std::uint64_t now = clock.now_ms();
  timers.at(now + 60, [&] { ran.push_back(3); });
  driver.start();
  timers.at(now + 20, [&] {
    ran.push_back(1);
    timers.at(clock.now_ms() + 10, [&] { ran.push_back(2); });  // armed from a callback
  });
  const auto start = Clk::now();
  ASSERT_TRUE(run_until(io, [&] { return ran.size() == 3; }));
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
  EXPECT_GE(Clk::now() - start, 55ms);
  EXPECT_EQ(timers.size(), 0u);
}

TEST_F(TimerDriverTest, ReArmsWhenAnEarlierTimerIsAdded) {
  TimerDriver driver(io.get_executor(), timers, clock);
  timers.at(clock.now_ms() + 60'000, [&] { ran.push_back(2); });
  driver.start();
  io.run_for(20ms);
  timers.at(clock.now_ms() + 30, [&] { ran.push_back(1); });
  const auto start = Clk::now();
  ASSERT_TRUE(run_until(io, [&] { return !ran.empty(); }, 2s));
  EXPECT_EQ(ran, std::vector<int>{1});
  EXPECT_LT(Clk::now() - start, 1s);
}

TEST_F(TimerDriverTest, StopRunsNothingMore) {
  TimerDriver driver(io.get_executor(), timers, clock);
  driver.start();
  timers.at(clock.now_ms() + 30, [&] { ran.push_back(1); });
  driver.stop();
  run_until(io, [&] { return !ran.empty(); }, 200ms);
  EXPECT_TRUE(ran.empty());
  EXPECT_EQ(timers.size(), 1u);
}

// One membership node on real sockets: its transports, timers, driver and protocol.
struct Node {
  Node(asio::io_context& io, std::string id, std::vector<std::string> seeds, std::uint64_t seed)
      : random(seed) {
    auto both = open_membership_transports(io.get_executor(), "127.0.0.1:0", null_logger());
    EXPECT_TRUE(both) << both.error().message;
    udp = std::move(both->first);
    tcp = std::move(both->second);
    MembershipOptions o;
    o.node_id = std::move(id);
    o.seeds = std::move(seeds);
    o.state.partitions = 16;
    o.state.replication_factor = 3;
    o.probe_interval = 100ms;
    o.probe_timeout = 50ms;
    o.gossip_interval = 50ms;
    o.push_pull_interval = 1s;
    driver = std::make_unique<TimerDriver>(io.get_executor(), timers, clock);
    membership = std::make_unique<Membership>(std::move(o), *udp, *tcp, timers, clock, random, null_logger());
    membership->start();
    driver->start();
  }
  bool sees_alive(const std::string& id) const {
    const Member* m = membership->member(id);
    return m != nullptr && m->liveness == Liveness::kAlive;
  }
  SteadyClock clock;
  SeededRandom random;
  std::unique_ptr<UdpTransport> udp;
  std::unique_ptr<TcpStreamTransport> tcp;
  TimerQueue timers{2000};
  std::unique_ptr<TimerDriver> driver;
  std::unique_ptr<Membership> membership;  // last: destroyed first
};

class MembershipTest : public ::testing::Test {
 protected:
  asio::io_context io;
};

TEST_F(MembershipTest, TwoNodesConvergeOverLoopback) {
  Node a(io, "a", {}, 1);
  Node b(io, "b", {a.udp->local_address()}, 2);
  ASSERT_TRUE(run_until(io, [&] {
    return a.membership->ready() && b.membership->ready() && a.sees_alive("b") && b.sees_alive("a");
  }, 10s)) << "a: " << a.membership->status() << "; b: " << b.membership->status();
  EXPECT_EQ(a.membership->size(), 2u);
  EXPECT_EQ(b.membership->size(), 2u);
  EXPECT_GT(b.membership->stats().push_pulls, 0u);
}

}  // namespace
}  // namespace alldata::broker
