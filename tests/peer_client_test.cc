// The broker's peer client against real brokers' peer listeners on loopback: batches land
// under their keys with their headers, failures are values, and a peer that restarts is
// reached again.
#include "alldata/broker/peer_client.h"
#include "alldata/protocol/keygen.h"
#include "test_support.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace alldata::testing {
namespace {

namespace asio = boost::asio;
using broker::PeerClient;

class PeerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_ = test_options(dir_.str());
    options_.peer_listen = "127.0.0.1:0";
    broker_ = start_broker(options_);
    ASSERT_TRUE(broker_);
    node_id_ = broker_->node_id();  // kept in the data folder: the same after a restart
    client_ = std::make_unique<PeerClient>(io_.get_executor(),
                                           broker::PeerClientOptions{.self_node_id = "test-peer"},
                                           *log_);
  }
  void TearDown() override {
    client_->close();
    io_.run_for(std::chrono::seconds(1));
  }

  // Runs one send on the test's io_context, bounded in time.
  Status send(const std::string& address, const storage::EventBatch& batch,
              PeerClient::Kind kind = PeerClient::Kind::kReplicate,
              std::optional<std::string> hint_for = {},
              std::chrono::milliseconds timeout = std::chrono::seconds(5),
              std::optional<std::string> node_id = {}) {
    const std::string expected = node_id.value_or(node_id_);
    auto f = asio::co_spawn(io_, client_->send(expected, address, kind, batch, hint_for, timeout),
                            asio::use_future);
    io_.restart();
    const auto deadline = std::chrono::steady_clock::now() + timeout + std::chrono::seconds(5);
    while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready &&
           std::chrono::steady_clock::now() < deadline) {
      io_.run_one_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    return f.get();
  }

  TempDir dir_;
  broker::BrokerOptions options_;
  std::unique_ptr<broker::Broker> broker_;
  std::string node_id_;
  std::shared_ptr<spdlog::logger> log_ = test_logger();
  asio::io_context io_;
  std::unique_ptr<PeerClient> client_;
  SystemClock clock_;
  Keygen keygen_{0xABCD, clock_};
};

TEST_F(PeerClientTest, ReplicatedBatchIsStoredWithKeysPayloadsAndHeaders) {
  storage::EventBatch batch("orders", 2);
  const Key k1 = keygen_.next(), k2 = keygen_.next();
  const storage::HeaderView headers[] = {{"content-type", "text/plain"}, {"trace", "abc"}};
  batch.add(k1, "first", headers);
  batch.add(k2, "second");
  ASSERT_TRUE(send(broker_->peer_address(), batch));
  ASSERT_TRUE(send(broker_->peer_address(), batch));  // a retry stores nothing twice

  RawConnection c(broker_->client_port());
  c.hello();
  auto r = c.scan("orders", 2);
  ASSERT_EQ(r.error(), ErrorCode::kOk);
  auto events = r.get().getScan().getEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(Key::from_raw(events[0].getKey().begin()), k1);
  EXPECT_EQ(protocol::view(events[0].getPayload()), "first");
  ASSERT_EQ(events[0].getHeaders().size(), 2u);
  EXPECT_EQ(protocol::view(events[0].getHeaders()[0].getName()), "content-type");
  EXPECT_EQ(protocol::view(events[0].getHeaders()[1].getValue()), "abc");
  EXPECT_EQ(Key::from_raw(events[1].getKey().begin()), k2);
  EXPECT_EQ(protocol::view(events[1].getPayload()), "second");
}

TEST_F(PeerClientTest, BatchLargerThanAPeerFrameGoesInPieces) {
  client_->close();
  io_.restart();
  io_.run_for(std::chrono::milliseconds(100));
  // The peer refuses frames over 1 MiB; the batch holds 3 MiB of events.
  client_ = std::make_unique<PeerClient>(
      io_.get_executor(), broker::PeerClientOptions{.self_node_id = "test-peer", .max_frame_bytes = 1u << 20},
      *log_);
  broker_->stop();
  broker_.reset();
  options_.max_frame_bytes = 1u << 20;
  broker_ = start_broker(options_);
  ASSERT_TRUE(broker_);

  storage::EventBatch batch("big", 0);
  const std::string payload(30 * 1024, 'p');
  std::vector<Key> keys;
  for (int i = 0; i < 100; ++i) {
    keys.push_back(keygen_.next());
    batch.add(keys.back(), payload);
  }
  ASSERT_TRUE(send(broker_->peer_address(), batch));
  RawConnection c(broker_->client_port());
  c.hello();
  auto all = c.scan_all("big", 0);
  ASSERT_EQ(all.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(all[i].first, keys[i]);
}

TEST_F(PeerClientTest, NobodyListeningIsConnectionFailed) {
  storage::EventBatch batch("s", 0);
  batch.add(keygen_.next(), "x");
  auto st = send("127.0.0.1:1", batch);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kConnectionFailed);
  EXPECT_NE(st.error().message.find("127.0.0.1:1"), std::string::npos) << st.error().message;
}

TEST_F(PeerClientTest, ABrokerThatIsNotTheNodeMeantGetsNothing) {
  // An address that gossip got wrong (stale, or forged) leads to another broker: it must
  // not receive the copy meant for the node named.
  storage::EventBatch batch("s", 1);
  batch.add(keygen_.next(), "meant for node-7");
  auto st = send(broker_->peer_address(), batch, PeerClient::Kind::kReplicate, {},
                 std::chrono::seconds(5), "node-7");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kConnectionFailed);
  EXPECT_NE(st.error().message.find("'" + broker_->node_id() + "', not 'node-7'"), std::string::npos)
      << st.error().message;
  RawConnection c(broker_->client_port());
  c.hello();
  EXPECT_TRUE(c.scan_all("s", 1).empty());
  // The right node id on the same address still works.
  EXPECT_TRUE(send(broker_->peer_address(), batch));
  EXPECT_EQ(c.scan_all("s", 1).size(), 1u);
}

TEST_F(PeerClientTest, PeerErrorsComeBackTyped) {
  storage::EventBatch batch("s", 99);  // the broker has 4 partitions
  batch.add(keygen_.next(), "x");
  auto st = send(broker_->peer_address(), batch);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidPartition);
}

TEST_F(PeerClientTest, ClientListenerRefusesPeerHello) {
  storage::EventBatch batch("s", 0);
  batch.add(keygen_.next(), "x");
  auto st = send(broker_->client_address(), batch);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kConnectionFailed);
  EXPECT_NE(st.error().message.find("refused"), std::string::npos) << st.error().message;
}

TEST_F(PeerClientTest, ReconnectsAfterThePeerRestarts) {
  storage::EventBatch before("r", 1);
  before.add(keygen_.next(), "before");
  ASSERT_TRUE(send(broker_->peer_address(), before));
  const auto address = broker_->peer_address();
  broker_->stop();
  broker_.reset();

  storage::EventBatch during("r", 1);
  during.add(keygen_.next(), "during");
  auto down = send(address, during);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, ErrorCode::kConnectionFailed);

  options_.peer_listen = address;  // same port again
  broker_ = start_broker(options_);
  ASSERT_TRUE(broker_);
  ASSERT_TRUE(send(address, during));
  RawConnection c(broker_->client_port());
  c.hello();
  auto all = c.scan_all("r", 1);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].second, "before");
  EXPECT_EQ(all[1].second, "during");
}

TEST_F(PeerClientTest, HintedWriteIsKeptAsideForItsOwnerNotStoredAsReplica) {
  storage::EventBatch batch("hinted", 3);
  const Key k = keygen_.next();
  batch.add(k, "for owner-x");
  ASSERT_TRUE(send(broker_->peer_address(), batch, PeerClient::Kind::kReplicate, "owner-x"));

  RawConnection c(broker_->client_port());
  c.hello();
  EXPECT_TRUE(c.scan_all("hinted", 3).empty()) << "a hint is not this broker's replica";

  // The hint is durable in the broker's store, addressed to owner-x.
  broker_->stop();
  broker_.reset();
  storage::Options so;
  so.path = (dir_.path() / "events").string();
  so.logger = log_;
  auto store = storage::EventStore::open(so);
  ASSERT_TRUE(store) << store.error().to_string();
  auto hints = (*store)->read_hints("owner-x", 100);
  ASSERT_TRUE(hints) << hints.error().to_string();
  ASSERT_EQ(hints->events, 1u);
  ASSERT_EQ(hints->batches.size(), 1u);
  EXPECT_EQ(hints->batches[0].stream(), "hinted");
  EXPECT_EQ(hints->batches[0].partition(), 3u);
  std::vector<std::pair<Key, std::string>> got;
  hints->batches[0].for_each([&](const Key& key, std::string_view payload, auto) {
    got.emplace_back(key, std::string(payload));
  });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], std::make_pair(k, std::string("for owner-x")));
}

}  // namespace
}  // namespace alldata::testing
