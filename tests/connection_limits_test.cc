// Connections that never say hello, sessions that sit idle and clients that never read
// their answers cannot keep a healthy client out of a broker (an in-process broker on
// loopback; the RSS under these attacks is measured on a real process by
// tests/faults/hostile_clients_test.cc).
#include "test_support.h"

#include <thread>

namespace alldata::testing {
namespace {

using namespace std::chrono_literals;

class ConnectionLimitsTest : public ::testing::Test {
 protected:
  void start(broker::BrokerOptions o) {
    broker_ = start_broker(o);
    ASSERT_TRUE(broker_);
  }

  broker::BrokerOptions options() { return test_options(dir_.str()); }

  // A new client says hello, writes one event and reads it back.
  void expect_served() { expect_serves(broker_->client_port(), "served-" + std::to_string(++probe_)); }

  TempDir dir_;
  std::unique_ptr<broker::Broker> broker_;
  int probe_ = 0;
};

TEST_F(ConnectionLimitsTest, AConnectionWithoutHelloIsClosedAfterTheHelloTimeout) {
  auto o = options();
  o.hello_timeout = 300ms;
  start(o);
  RawConnection silent(broker_->client_port(), 10s);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(silent.read());
  EXPECT_FALSE(silent.timed_out()) << "still open after 10 s";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  expect_served();
}

TEST_F(ConnectionLimitsTest, SilentSocketsCannotLockOutAHealthyClient) {
  auto o = options();
  o.max_pending_connections = 8;
  o.max_connections = 4;
  o.hello_timeout = 60s;  // only the eviction of the oldest silent socket lets us in
  start(o);
  std::vector<std::unique_ptr<RawConnection>> silent;
  for (int i = 0; i < 50; ++i) silent.push_back(std::make_unique<RawConnection>(broker_->client_port()));
  for (int i = 0; i < 3; ++i) expect_served();
  // The oldest silent ones were closed to make room.
  EXPECT_FALSE(silent.front()->read());
  EXPECT_FALSE(silent.front()->timed_out());
}

TEST_F(ConnectionLimitsTest, BeforeHelloOnlyASmallFrameIsRead) {
  start(options());
  RawConnection c(broker_->client_port());
  std::string prefix(4, '\0');
  protocol::write_frame_length(reinterpret_cast<std::uint8_t*>(prefix.data()), 1u << 20);
  c.send_bytes(prefix);
  auto r = c.read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error(), ErrorCode::kBadRequest);
  EXPECT_NE(r->message().find("over the limit"), std::string::npos) << r->message();
  EXPECT_TRUE(c.closed_by_peer());
  expect_served();
}

TEST_F(ConnectionLimitsTest, IdleSessionsGiveTheirSlotsToNewOnesButBusyOnesKeepThem) {
  auto o = options();
  o.max_connections = 2;
  o.evict_idle_after = 1500ms;
  start(o);
  RawConnection a(broker_->client_port(), 15s);
  RawConnection b(broker_->client_port(), 15s);
  ASSERT_EQ(a.hello().error(), ErrorCode::kOk);
  ASSERT_EQ(b.hello().error(), ErrorCode::kOk);

  // Both just said hello: a third session is refused with a reason.
  {
    RawConnection c(broker_->client_port());
    auto h = c.hello();
    EXPECT_EQ(h.error(), ErrorCode::kOverloaded);
    EXPECT_NE(h.message().find("max-connections"), std::string::npos) << h.message();
  }

  // `b` keeps working; once `a` has been idle long enough, a newcomer takes its slot.
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  bool admitted = false;
  while (!admitted && std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(b.metadata().error(), ErrorCode::kOk);
    RawConnection c(broker_->client_port());
    auto h = c.hello();
    admitted = h.error() == ErrorCode::kOk;
    if (!admitted) std::this_thread::sleep_for(200ms);
  }
  ASSERT_TRUE(admitted) << "no slot came free within 15 s";
  EXPECT_FALSE(a.read());
  EXPECT_FALSE(a.timed_out()) << "the idle session was not closed";
  EXPECT_EQ(b.metadata().error(), ErrorCode::kOk) << "the active session lost its slot";
}

TEST_F(ConnectionLimitsTest, AClientThatNeverReadsItsAnswersHoldsUpOnlyItself) {
  auto o = options();
  o.max_connection_buffer_bytes = 4u << 20;
  o.max_event_bytes = 256u << 10;
  start(o);
  // 8 MiB in one partition: more than the bound, so the answers cannot all be buffered.
  {
    RawConnection w(broker_->client_port());
    ASSERT_EQ(w.hello().error(), ErrorCode::kOk);
    const std::string payload(200u << 10, 'x');
    for (int batch = 0; batch < 8; ++batch) {
      std::vector<TestEvent> events(5, TestEvent{payload, {}});
      ASSERT_EQ(w.produce("big", 0, events).error(), ErrorCode::kOk);
    }
  }
  // Three clients pipeline 100 full scans each (up to 1 MiB pages) and read nothing.
  std::vector<std::unique_ptr<RawConnection>> greedy;
  for (int i = 0; i < 3; ++i) {
    auto c = std::make_unique<RawConnection>(broker_->client_port());
    ASSERT_EQ(c->hello().error(), ErrorCode::kOk);
    c->send_bytes(pipelined_scans("big", 100, 16u << 20, 1000));
    greedy.push_back(std::move(c));
  }
  // A healthy client is served promptly all the while.
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    expect_served();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  }
  // And a greedy client that finally reads gets every answer, in full.
  auto& g = *greedy.front();
  for (int k = 0; k < 100; ++k) {
    auto r = g.read();
    ASSERT_TRUE(r) << "answer " << k << " missing";
    ASSERT_EQ(r->error(), ErrorCode::kOk) << r->message();
    EXPECT_GT(r->get().getScan().getEvents().size(), 0u);
  }
}

}  // namespace
}  // namespace alldata::testing
