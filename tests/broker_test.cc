// A real broker (in-process, real RocksDB in a temp folder, real TCP on an OS-chosen
// loopback port) driven through the wire protocol: what was stored, what came back.
#include "test_support.h"

#include "alldata/protocol/keygen.h"

#include <algorithm>
#include <map>
#include <set>
#include <thread>

namespace alldata::testing {
namespace {

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_ = test_options(dir_.str());
    broker_ = start_broker(options_);
    ASSERT_TRUE(broker_);
  }
  void restart() {
    broker_->stop();
    broker_.reset();
    broker_ = start_broker(options_);
    ASSERT_TRUE(broker_);
  }

  TempDir dir_;
  broker::BrokerOptions options_;
  std::unique_ptr<broker::Broker> broker_;
};

TEST_F(BrokerTest, HelloDescribesTheBroker) {
  RawConnection c(broker_->client_port());
  auto r = c.hello();
  ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
  auto h = r.get().getHello();
  EXPECT_EQ(h.getProtocolVersion(), 1u);
  EXPECT_EQ(h.getPartitions(), 4u);
  EXPECT_EQ(std::string(h.getNodeId().cStr()), broker_->node_id());
  EXPECT_EQ(h.getOrigin(), broker_->origin());
}

TEST_F(BrokerTest, HundredThousandEventsOverThreeStreamsScanBackExactlyInKeyOrder) {
  RawConnection c(broker_->client_port());
  c.hello();
  const std::vector<std::string> streams = {"clicks", "orders", "logs"};
  std::map<std::string, std::map<Key, std::string>> sent;
  constexpr int kEvents = 100000, kBatch = 1000;
  for (int i = 0; i < kEvents; i += kBatch) {
    const auto& stream = streams[(i / kBatch) % 3];
    const std::uint32_t partition = (i / kBatch) % 4;
    std::vector<TestEvent> events;
    for (int j = 0; j < kBatch; ++j) events.push_back({stream + "-" + std::to_string(i + j), {}});
    auto r = c.produce(stream, partition, events);
    ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
    auto keys = keys_of(r);
    ASSERT_EQ(keys.size(), events.size());
    for (int j = 0; j < kBatch; ++j) sent[stream][keys[j]] = events[j].payload;
  }
  std::size_t total = 0;
  for (const auto& stream : streams) {
    std::map<Key, std::string> got;
    for (std::uint32_t p = 0; p < 4; ++p) {
      auto part = c.scan_all(stream, p);
      ASSERT_TRUE(std::is_sorted(part.begin(), part.end())) << stream << " partition " << p;
      for (auto& [k, v] : part) ASSERT_TRUE(got.emplace(k, v).second) << "duplicate " << k.to_text();
    }
    EXPECT_EQ(got, sent[stream]) << stream;
    total += got.size();
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kEvents));
}

TEST_F(BrokerTest, KeysFromOneBrokerStrictlyIncrease) {
  RawConnection c(broker_->client_port());
  c.hello();
  std::vector<Key> all;
  for (int i = 0; i < 50; ++i) {
    auto r = c.produce("s", i % 4, {{"a", {}}, {"b", {}}, {"c", {}}});
    ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
    for (auto k : keys_of(r)) all.push_back(k);
  }
  for (std::size_t i = 1; i < all.size(); ++i) ASSERT_LT(all[i - 1], all[i]);
  EXPECT_EQ(all.front().origin(), broker_->origin());
}

TEST_F(BrokerTest, EightConcurrentProducersAllStored) {
  constexpr int kProducers = 8, kBatches = 50, kBatch = 100;
  std::vector<std::vector<Key>> keys(kProducers);
  std::vector<std::thread> threads;
  for (int t = 0; t < kProducers; ++t) {
    threads.emplace_back([&, t] {
      RawConnection c(broker_->client_port());
      c.hello();
      for (int b = 0; b < kBatches; ++b) {
        std::vector<TestEvent> events;
        for (int j = 0; j < kBatch; ++j) {
          events.push_back({"p" + std::to_string(t) + "-" + std::to_string(b * kBatch + j), {}});
        }
        auto r = c.produce("shared", static_cast<std::uint32_t>((t + b) % 4), events);
        if (r.error() != ErrorCode::kOk) {
          ADD_FAILURE() << r.message();
          return;
        }
        for (auto k : keys_of(r)) keys[t].push_back(k);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<Key> all;
  for (auto& v : keys) all.insert(v.begin(), v.end());
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kProducers * kBatches * kBatch)) << "keys not unique";

  RawConnection reader(broker_->client_port());
  reader.hello();
  std::set<Key> stored;
  std::set<std::string> payloads;
  for (std::uint32_t p = 0; p < 4; ++p) {
    for (auto& [k, v] : reader.scan_all("shared", p)) {
      stored.insert(k);
      payloads.insert(v);
    }
  }
  EXPECT_EQ(stored, all);
  EXPECT_EQ(payloads.size(), all.size());
}

TEST_F(BrokerTest, RestartKeepsDataAndNewKeysSortAfterOldOnes) {
  std::vector<Key> before;
  {
    RawConnection c(broker_->client_port());
    c.hello();
    for (int i = 0; i < 20; ++i) {
      auto r = c.produce("durable", 1, {{"before-" + std::to_string(i), {}}});
      ASSERT_EQ(r.error(), ErrorCode::kOk);
      before.push_back(keys_of(r)[0]);
    }
  }
  const auto origin = broker_->origin();
  const auto node = broker_->node_id();
  restart();
  EXPECT_EQ(broker_->origin(), origin);
  EXPECT_EQ(broker_->node_id(), node);
  RawConnection c(broker_->client_port());
  c.hello();
  auto r = c.produce("durable", 1, {{"after", {}}});
  ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
  const Key after = keys_of(r)[0];
  EXPECT_GT(after, before.back());

  auto all = c.scan_all("durable", 1);
  ASSERT_EQ(all.size(), 21u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(all[i].first, before[i]);
    EXPECT_EQ(all[i].second, "before-" + std::to_string(i));
  }
  EXPECT_EQ(all[20].second, "after");

  RawConnection m(broker_->client_port());
  m.hello();
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(7);
  req.initMetadata().setStreams(true);
  auto meta = m.call(mb);
  ASSERT_EQ(meta.error(), ErrorCode::kOk);
  auto streams = meta.get().getMetadata().getStreams();
  ASSERT_EQ(streams.size(), 1u);
  EXPECT_EQ(std::string(streams[0].cStr()), "durable");
}

TEST_F(BrokerTest, RetriedClientKeyIsStoredOnce) {
  RawConnection c(broker_->client_port());
  c.hello();
  SystemClock clock;
  Keygen gen(0xC11E47, clock);
  const Key k1 = gen.next(), k2 = gen.next();
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = c.produce("idem", 2, {{"one", k1}, {"two", k2}});
    ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
    auto keys = keys_of(r);
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys[0], k1);
    EXPECT_EQ(keys[1], k2);
  }
  auto all = c.scan_all("idem", 2);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], std::make_pair(k1, std::string("one")));
  EXPECT_EQ(all[1], std::make_pair(k2, std::string("two")));
}

TEST_F(BrokerTest, ClientKeyFarFromTheBrokerClockIsRefused) {
  RawConnection c(broker_->client_port());
  c.hello();
  SystemClock clock;
  const Key ahead = Key::make(clock.now_ms() + 5 * 60 * 1000, 0, 1);
  auto r = c.produce("skew", 0, {{"x", ahead}});
  EXPECT_EQ(r.error(), ErrorCode::kKeySkew);
  EXPECT_NE(r.message().find("ahead"), std::string::npos) << r.message();
  EXPECT_TRUE(c.scan_all("skew", 0).empty());
}

TEST_F(BrokerTest, ScanRangeIsFromInclusiveToExclusiveAndPagesResume) {
  RawConnection c(broker_->client_port());
  c.hello();
  std::vector<TestEvent> events;
  for (int i = 0; i < 2500; ++i) events.push_back({std::to_string(i), {}});
  auto r = c.produce("range", 3, events);
  ASSERT_EQ(r.error(), ErrorCode::kOk);
  auto keys = keys_of(r);
  auto part = c.scan_all("range", 3, keys[100], keys[2200]);
  ASSERT_EQ(part.size(), 2100u);
  EXPECT_EQ(part.front().first, keys[100]);
  EXPECT_EQ(part.back().first, keys[2199]);
  auto small = c.scan("range", 3, keys[0], {}, 10);
  ASSERT_EQ(small.error(), ErrorCode::kOk);
  EXPECT_EQ(small.get().getScan().getEvents().size(), 10u);
  EXPECT_FALSE(small.get().getScan().getDone());
  EXPECT_EQ(Key::from_raw(small.get().getScan().getNextFrom().begin()), keys[9].successor());
}

TEST_F(BrokerTest, PipelinedRequestsAreAllAnswered) {
  RawConnection c(broker_->client_port());
  c.hello();
  std::string frames;
  for (int i = 0; i < 200; ++i) {
    capnp::MallocMessageBuilder mb;
    auto req = mb.initRoot<wire::Request>();
    req.setCorrelationId(1000 + i);
    auto p = req.initProduce();
    p.setStream("pipe");
    p.setPartition(i % 4);
    auto ev = p.initEvents(1);
    const std::string payload = std::to_string(i);
    ev[0].setPayload(protocol::data(payload));
    protocol::append_frame(mb, frames);
  }
  c.send_bytes(frames);
  std::set<std::uint64_t> answered;
  for (int i = 0; i < 200; ++i) {
    auto r = c.read();
    ASSERT_TRUE(r);
    ASSERT_EQ(r->error(), ErrorCode::kOk) << r->message();
    answered.insert(r->get().getCorrelationId());
  }
  EXPECT_EQ(answered.size(), 200u);
  EXPECT_EQ(*answered.begin(), 1000u);
  EXPECT_EQ(*answered.rbegin(), 1199u);
}

class PeerListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto o = test_options(dir_.str());
    o.peer_listen = "127.0.0.1:0";
    broker_ = start_broker(o);
    ASSERT_TRUE(broker_);
    ASSERT_FALSE(broker_->peer_address().empty());
    peer_port_ = static_cast<std::uint16_t>(
        std::stoi(broker_->peer_address().substr(broker_->peer_address().rfind(':') + 1)));
  }

  TempDir dir_;
  std::unique_ptr<broker::Broker> broker_;
  std::uint16_t peer_port_ = 0;
};

TEST_F(PeerListenerTest, ReplicateStoresEventsUnderTheKeysTheyCarryOnce) {
  RawConnection peer(peer_port_);
  ASSERT_EQ(peer.hello(true).error(), ErrorCode::kOk);
  SystemClock clock;
  // Replicas take the coordinator's keys as they are, even ones far outside the client
  // key-skew window (a coordinator may replicate late).
  const Key old_key = Key::make(clock.now_ms() - 10 * 60 * 1000, 0, 42);
  const Key new_key = Key::make(clock.now_ms(), 7, 42);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto r = peer.replicate("rep", 1, {{old_key, "old"}, {new_key, "new"}});
    ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
  }
  RawConnection client(broker_->client_port());
  client.hello();
  auto all = client.scan_all("rep", 1);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], std::make_pair(old_key, std::string("old")));
  EXPECT_EQ(all[1], std::make_pair(new_key, std::string("new")));
}

TEST_F(PeerListenerTest, DeliveredHintsAreStored) {
  RawConnection peer(peer_port_);
  ASSERT_EQ(peer.hello(true).error(), ErrorCode::kOk);
  SystemClock clock;
  const Key k = Key::make(clock.now_ms(), 0, 43);
  auto r = peer.replicate("hinted", 0, {{k, "late"}}, /*deliver_hints=*/true);
  ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
  RawConnection client(broker_->client_port());
  client.hello();
  auto all = client.scan_all("hinted", 0);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].second, "late");
}

TEST_F(PeerListenerTest, ReplicateWithoutKeysIsRefused) {
  RawConnection peer(peer_port_);
  peer.hello(true);
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(1);
  auto rep = req.initReplicate();
  rep.setStream("rep");
  rep.initEvents(1)[0].setPayload(protocol::data("no key"));
  auto r = peer.call(mb);
  EXPECT_EQ(r.error(), ErrorCode::kBadRequest);
  EXPECT_NE(r.message().find("16-byte key"), std::string::npos) << r.message();
}

TEST_F(PeerListenerTest, EachListenerTakesOnlyItsOwnRole) {
  RawConnection peer_on_client(broker_->client_port());
  auto a = peer_on_client.hello(true);
  EXPECT_EQ(a.error(), ErrorCode::kNotAllowed);
  EXPECT_TRUE(peer_on_client.closed_by_peer());

  RawConnection client_on_peer(peer_port_);
  auto b = client_on_peer.hello(false);
  EXPECT_EQ(b.error(), ErrorCode::kNotAllowed);
  EXPECT_TRUE(client_on_peer.closed_by_peer());
}

}  // namespace
}  // namespace alldata::testing
