// Tests of the client library that need no real broker: batching and the sticky
// partitioner, config checks, the scan merge, and the Producer, Scanner and Admin against
// a small in-process fake broker (in-memory store, fault injection) on a loopback port
// chosen by the OS. End-to-end tests against alldata-broker live with the broker tests.
#include "alldata/client/client.h"
#include "client_support.h"

#include "alldata/protocol/partitioner.h"
#include "alldata/protocol/wire.h"
#include "client_wire.h"
#include "produce_accumulator.h"
#include "scan_merge.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace alldata::client {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using asio::ip::tcp;
using detail::ProduceAccumulator;
using detail::ScanMerger;
using detail::SteadyClock;

// ----------------------------------------------------------------------------- fake broker

// What every fake broker of one test shares: the stored events, deduplicated by key as a
// real cluster stores a retried write once.
struct FakeStore {
  std::mutex mu;
  std::uint32_t partitions = 4;
  std::map<std::string, std::map<std::uint32_t, std::map<Key, Event>>> streams;
  std::uint64_t produce_requests = 0;

  std::vector<Event> all(const std::string& stream) {
    std::lock_guard lock(mu);
    std::vector<Event> out;
    for (auto& [p, events] : streams[stream]) {
      for (auto& [k, e] : events) out.push_back(e);
    }
    std::sort(out.begin(), out.end(), [](const Event& a, const Event& b) { return a.key < b.key; });
    return out;
  }
};

class FakeBroker {
 public:
  explicit FakeBroker(std::shared_ptr<FakeStore> store, std::string node_id = "fake-1")
      : store_(std::move(store)), node_id_(std::move(node_id)),
        acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(ioc_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~FakeBroker() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    ioc_.stop();
    thread_.join();
  }

  std::string address() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }

  // Fault injection, each for the next N produce requests.
  std::atomic<int> fail_produces{0};  // answer with fail_code, store nothing
  wire::ErrorCode fail_code = wire::ErrorCode::OVERLOADED;
  std::atomic<int> drop_after_store{0};  // store, then close the connection unanswered
  std::atomic<bool> ignore_produces{false};  // store nothing, never answer
  std::atomic<int> connections{0};

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(detail::kAsTuple);
      if (ec) co_return;
      ++connections;
      asio::co_spawn(ioc_, serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    for (;;) {
      auto frame = co_await detail::read_frame(socket, "client");
      if (!frame) co_return;
      std::string out;
      bool close = false;
      {
        auto reader = protocol::make_reader(*frame);
        auto request = reader.getRoot<wire::Request>();
        capnp::MallocMessageBuilder message;
        auto response = message.initRoot<wire::Response>();
        response.setCorrelationId(request.getCorrelationId());
        bool answer = true;
        switch (request.which()) {
          case wire::Request::HELLO: {
            auto h = response.initHello();
            h.setProtocolVersion(1);
            h.setNodeId(node_id_);
            h.setPartitions(store_->partitions);
            h.setMaxFrameBytes(16u << 20);
            h.setMaxEventBytes(1u << 20);
            h.setMaxKeySkewMs(60000);
            h.setOrigin(42);
            break;
          }
          case wire::Request::PRODUCE:
            answer = produce(request.getProduce(), response, close);
            break;
          case wire::Request::SCAN:
            scan(request.getScan(), response);
            break;
          case wire::Request::METADATA: {
            auto m = response.initMetadata();
            m.setNodeId(node_id_);
            m.setPartitions(store_->partitions);
            m.setReplicationFactor(3);
            m.setIntervalMs(3600000);
            auto members = m.initMembers(1);
            members[0].setNodeId(node_id_);
            members[0].setClientAddress(address());
            members[0].setLive(true);
            auto streams = m.initStreams(1);
            streams.set(0, "demo");
            m.setWatermarkMs(1234);
            m.setVersion("fake");
            m.setSync(true);
            break;
          }
          default:
            response.setError(wire::ErrorCode::UNKNOWN_REQUEST);
        }
        if (answer) protocol::append_frame(message, out);
      }
      if (close) co_return;
      if (!out.empty()) {
        auto [ec, n] = co_await asio::async_write(socket, asio::buffer(out), detail::kAsTuple);
        if (ec) co_return;
      }
    }
  }

  bool produce(wire::Produce::Reader p, wire::Response::Builder response, bool& close) {
    if (ignore_produces) return false;
    if (fail_produces > 0) {
      --fail_produces;
      response.setError(fail_code);
      response.setMessage("injected failure");
      return true;
    }
    const std::string stream(protocol::view(p.getStream()));
    if (stream.find('/') != std::string::npos) {
      response.setError(wire::ErrorCode::INVALID_STREAM);
      response.setMessage("illegal character in stream name");
      return true;
    }
    std::string keys;
    {
      std::lock_guard lock(store_->mu);
      ++store_->produce_requests;
      auto& partition = store_->streams[stream][p.getPartition()];
      for (auto e : p.getEvents()) {
        Key key = e.getKey().size() == 16 ? Key::from_raw(e.getKey().begin())
                                           : Key::make(1, ++broker_counter_, 42);
        Event ev;
        ev.key = key;
        ev.partition = p.getPartition();
        ev.payload = std::string(protocol::view(e.getPayload()));
        for (auto h : e.getHeaders()) {
          ev.headers.push_back({std::string(protocol::view(h.getName())),
                                std::string(protocol::view(h.getValue()))});
        }
        partition.emplace(key, std::move(ev));  // a retry is stored once
        keys.append(key.view());
      }
    }
    if (drop_after_store > 0) {
      --drop_after_store;
      close = true;
      return false;
    }
    auto r = response.initProduce();
    r.setKeys(protocol::data(keys));
    r.setPartition(p.getPartition());
    r.setReplicas(1);
    return true;
  }

  void scan(wire::Scan::Reader s, wire::Response::Builder response) {
    const std::string stream(protocol::view(s.getStream()));
    if (stream.find('/') != std::string::npos) {
      response.setError(wire::ErrorCode::INVALID_STREAM);
      response.setMessage("illegal character in stream name");
      return;
    }
    if (s.getPartition() >= store_->partitions) {
      response.setError(wire::ErrorCode::INVALID_PARTITION);
      return;
    }
    const Key from = *protocol::key_or(s.getFrom(), Key{});
    const Key to = *protocol::key_or(s.getTo(), Key::max());
    const std::uint32_t max_events = s.getMaxEvents() != 0 ? s.getMaxEvents() : 1000;
    std::vector<Event> page;
    bool done = true;
    {
      std::lock_guard lock(store_->mu);
      auto& events = store_->streams[stream][s.getPartition()];
      for (auto it = events.lower_bound(from); it != events.end() && it->first < to; ++it) {
        if (page.size() == max_events) {
          done = false;
          break;
        }
        page.push_back(it->second);
      }
    }
    auto r = response.initScan();
    auto list = r.initEvents(static_cast<unsigned>(page.size()));
    for (std::size_t i = 0; i < page.size(); ++i) {
      list[i].setKey(protocol::data(page[i].key.view()));
      list[i].setPayload(protocol::data(page[i].payload));
      list[i].setPartition(s.getPartition());
      auto hs = list[i].initHeaders(static_cast<unsigned>(page[i].headers.size()));
      for (std::size_t j = 0; j < page[i].headers.size(); ++j) {
        hs[j].setName(page[i].headers[j].name);
        hs[j].setValue(protocol::data(page[i].headers[j].value));
      }
    }
    r.setDone(done);
    if (!done) r.setNextFrom(protocol::data(page.back().key.successor().view()));
  }

  std::shared_ptr<FakeStore> store_;
  std::string node_id_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::uint16_t broker_counter_ = 0;
};

// A loopback address where nothing listens (bound once by the OS, then released).
std::string dead_address() {
  asio::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = a.local_endpoint().port();
  a.close();
  return "127.0.0.1:" + std::to_string(port);
}

ProducerConfig fast_config(std::vector<std::string> bootstrap) {
  ProducerConfig c;
  c.bootstrap = std::move(bootstrap);
  c.linger = 1ms;
  c.request_timeout = 2s;
  c.delivery_timeout = 10s;
  c.retry_backoff = 10ms;
  c.retry_backoff_max = 50ms;
  return c;
}

ClientConfig client_config(std::vector<std::string> bootstrap) {
  ClientConfig c;
  c.bootstrap = std::move(bootstrap);
  c.request_timeout = 2s;
  c.retry_timeout = 2s;
  return c;
}

std::vector<Event> scan_all(const std::string& address, ScanOptions options) {
  return testing::scan_all(client_config({address}), std::move(options));
}

// ----------------------------------------------------------------------------- accumulator

class ProduceAccumulatorTest : public ::testing::Test {
 protected:
  std::size_t append(ProduceAccumulator& acc, std::optional<std::uint32_t> keyed,
                     std::vector<ProduceAccumulator::BatchPtr>& closed,
                     SteadyClock::time_point now = SteadyClock::time_point{}) {
    const std::string payload(100, 'x');
    return acc.append("s", keyed, 4, CommitLevel::kQuorum, Key::make(1, 0, 1), payload, {}, {},
                      100, now, closed)
        .partition;
  }
};

TEST_F(ProduceAccumulatorTest, StickyPartitionHoldsUntilItsBatchCloses) {
  ProduceAccumulator acc(/*batch_bytes=*/1500, 1h, /*seed=*/7);
  std::vector<ProduceAccumulator::BatchPtr> closed;
  const std::uint32_t first = acc.sticky_partition("s", 4);
  std::vector<std::uint32_t> seen;
  for (int i = 0; i < 40; ++i) seen.push_back(static_cast<std::uint32_t>(append(acc, {}, closed)));
  // Events stay on one partition until its batch is full, then move to the next one.
  ASSERT_FALSE(closed.empty());
  const std::size_t per_batch = closed.front()->event_count;
  EXPECT_GT(per_batch, 5u);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i], (first + i / per_batch) % 4) << "event " << i;
  }
  for (const auto& b : closed) {
    EXPECT_EQ(b->event_count, per_batch);
    EXPECT_LE(b->wire_bytes, 1500u);
  }
}

TEST_F(ProduceAccumulatorTest, KeyedEventsKeepTheirPartitionAndDoNotMoveTheStickyOne) {
  ProduceAccumulator acc(1 << 20, 1h, 7);
  std::vector<ProduceAccumulator::BatchPtr> closed;
  const std::uint32_t sticky = acc.sticky_partition("s", 4);
  const std::uint32_t other = (sticky + 1) % 4;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(append(acc, other, closed), other);
  EXPECT_EQ(acc.sticky_partition("s", 4), sticky);
  EXPECT_EQ(acc.open_batches(), 1u);
}

TEST_F(ProduceAccumulatorTest, LingerClosesOldBatchesAndMovesTheStickyPartition) {
  ProduceAccumulator acc(1 << 20, 5ms, 7);
  std::vector<ProduceAccumulator::BatchPtr> closed;
  const auto t0 = SteadyClock::now();
  const auto p0 = append(acc, {}, closed, t0);
  EXPECT_EQ(acc.next_expiry(), t0 + 5ms);
  acc.close_expired(t0 + 4ms, closed);
  EXPECT_TRUE(closed.empty());
  acc.close_expired(t0 + 5ms, closed);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0]->event_count, 1u);
  EXPECT_EQ(append(acc, {}, closed, t0 + 6ms), (p0 + 1) % 4);
  acc.close_all(closed);
  EXPECT_EQ(closed.size(), 2u);
  EXPECT_EQ(acc.open_batches(), 0u);
  EXPECT_FALSE(acc.next_expiry());
}

// ----------------------------------------------------------------------------- config

TEST(ProducerConfigTest, RejectsBadSettingsWithBadRequest) {
  auto expect_bad = [](ProducerConfig c, const char* what) {
    auto p = Producer::create(std::move(c));
    ASSERT_FALSE(p) << what;
    EXPECT_EQ(p.error().code, ErrorCode::kBadRequest) << what;
  };
  ProducerConfig ok = fast_config({"127.0.0.1:7400"});
  expect_bad(fast_config({}), "no bootstrap");
  expect_bad(fast_config({"localhost"}), "no port");
  expect_bad(fast_config({"localhost:0"}), "port 0");
  expect_bad(fast_config({"::1:7400"}), "v6 without brackets");
  auto c = ok;
  c.delivery_timeout = c.request_timeout;  // < linger + request_timeout
  expect_bad(c, "delivery timeout");
  c = ok;
  c.buffer_memory = c.batch_bytes - 1;
  expect_bad(c, "buffer below batch");
  c = ok;
  c.max_in_flight = 0;
  expect_bad(c, "max in flight");
  EXPECT_TRUE(Producer::create(ok));
}

TEST(ClientTypesTest, ParsesBrokerListsAndCommitLevels) {
  auto list = parse_broker_list("127.0.0.1:7400, [::1]:7410,host.example:1");
  ASSERT_TRUE(list);
  EXPECT_EQ(*list, (std::vector<std::string>{"127.0.0.1:7400", "[::1]:7410", "host.example:1"}));
  EXPECT_FALSE(parse_broker_list(""));
  EXPECT_FALSE(parse_broker_list("a:1,b"));
  EXPECT_EQ(*parse_commit_level("quorum"), CommitLevel::kQuorum);
  EXPECT_EQ(*parse_commit_level("ALL"), CommitLevel::kAll);
  EXPECT_FALSE(parse_commit_level("two"));
}

// ----------------------------------------------------------------------------- scan merge

Event ev(std::uint64_t t, std::uint32_t partition) {
  Event e;
  e.key = Key::make(t, 0, partition);
  e.partition = partition;
  e.payload = std::to_string(t);
  return e;
}

TEST(ScanMergerTest, MergesPartitionsInGlobalKeyOrder) {
  ScanMerger m(3);
  EXPECT_TRUE(m.blocked());
  m.add(0, {ev(1, 0), ev(4, 0)}, false);
  m.add(1, {ev(2, 1)}, true);
  EXPECT_TRUE(m.blocked());  // slot 2 has told nothing yet
  EXPECT_FALSE(m.pop());
  m.add(2, {ev(3, 2), ev(9, 2)}, false);
  std::vector<std::uint64_t> order;
  while (auto e = m.pop()) order.push_back(e->second.key.time_ms());
  // After 1, 2, 3, 4 slot 0 ran dry without being done: the merge must wait for it.
  EXPECT_EQ(order, (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_TRUE(m.blocked());
  m.add(0, {ev(5, 0)}, true);
  while (auto e = m.pop()) order.push_back(e->second.key.time_ms());
  EXPECT_EQ(order, (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 9}));
  EXPECT_TRUE(m.blocked());  // slot 2 is not done
  m.add(2, {}, true);
  EXPECT_TRUE(m.finished());
}

TEST(ScanMergerTest, EmptyDonePagesFinishTheMerge) {
  ScanMerger m(2);
  m.add(0, {}, true);
  m.add(1, {}, true);
  EXPECT_FALSE(m.blocked());
  EXPECT_TRUE(m.finished());
  EXPECT_FALSE(m.pop());
}

// ----------------------------------------------------------------------------- producer

TEST(ProducerTest, UnreachableBrokerFailsWithConnectionFailedWithinTheDeliveryTimeout) {
  ProducerConfig c;
  c.bootstrap = {dead_address()};
  c.linger = 0ms;
  c.request_timeout = 300ms;
  c.delivery_timeout = 800ms;
  c.max_block = 5s;
  c.retry_backoff = 20ms;
  c.retry_backoff_max = 100ms;
  auto producer = Producer::create(c);
  ASSERT_TRUE(producer);
  const auto start = SteadyClock::now();
  auto sent = (*producer)->send("demo", "hello");
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code, ErrorCode::kConnectionFailed) << sent.error().to_string();
  EXPECT_LT(SteadyClock::now() - start, 3s);
  // Later sends fail at once instead of blocking again.
  const auto again = SteadyClock::now();
  auto second = (*producer)->send("demo", "hello");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kConnectionFailed);
  EXPECT_LT(SteadyClock::now() - again, 100ms);
}

TEST(ProducerTest, ProducedEventsScanBackInKeyOrderWithTheirKeys) {
  auto store = std::make_shared<FakeStore>();
  FakeBroker broker(store);
  auto producer = *Producer::create(fast_config({broker.address()}));
  std::vector<Key> keys;
  std::atomic<int> acked{0};
  for (int i = 0; i < 2000; ++i) {
    auto key = producer->send("demo", "event-" + std::to_string(i), {},
                              [&](const Result<Key>& r) { acked += r ? 1 : 0; });
    ASSERT_TRUE(key) << key.error().to_string();
    keys.push_back(*key);
  }
  ASSERT_TRUE(producer->flush());
  EXPECT_EQ(acked, 2000);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  auto events = scan_all(broker.address(), ScanOptions{.stream = "demo", .page_events = 37});
  ASSERT_EQ(events.size(), 2000u);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(events[i].payload, "event-" + std::to_string(i));
    EXPECT_EQ(events[i].key, keys[i]);
  }
  std::set<std::uint32_t> partitions;
  for (const auto& e : events) partitions.insert(e.partition);
  EXPECT_GT(partitions.size(), 0u);
  auto stats = producer->stats();
  EXPECT_EQ(stats.sent, 2000u);
  EXPECT_EQ(stats.acknowledged, 2000u);
  EXPECT_EQ(stats.buffered_bytes, 0u);
}

TEST(ProducerTest, PartitionKeyAndHeadersReachTheBroker) {
  auto store = std::make_shared<FakeStore>();
  FakeBroker broker(store);
  auto producer = *Producer::create(fast_config({broker.address()}));
  const std::vector<Header> headers{{"type", "click"}, {"bin", std::string("\0\xff", 2)}};
  for (std::string user : {"alice", "bob", "carol", "dave", "erin"}) {
    SendOptions o;
    o.partition_key = user;
    o.headers = headers;
    ASSERT_TRUE(producer->send("clicks", user, o));
  }
  ASSERT_TRUE(producer->flush());
  auto events = store->all("clicks");
  ASSERT_EQ(events.size(), 5u);
  for (const auto& e : events) {
    EXPECT_EQ(e.partition, protocol::partition_for_key(e.payload, 4)) << e.payload;
    EXPECT_EQ(e.headers, headers);
  }
}

TEST(ProducerTest, RetriableErrorsAreRetriedWithTheSameKeys) {
  auto store = std::make_shared<FakeStore>();
  FakeBroker broker(store);
  broker.fail_produces = 3;
  auto producer = *Producer::create(fast_config({broker.address()}));
  auto f = producer->send_async("demo", "one");
  auto r = f.get();
  ASSERT_TRUE(r) << r.error().to_string();
  auto events = store->all("demo");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].key, *r);
  EXPECT_GE(producer->stats().retries, 3u);
}

TEST(ProducerTest, FailoverResendsUnackedBatchesWithTheSameKeysAndStoresThemOnce) {
  auto store = std::make_shared<FakeStore>();
  FakeBroker first(store, "fake-1");
  FakeBroker second(store, "fake-2");
  first.drop_after_store = 1000;  // stores, then hangs up without answering
  auto producer = *Producer::create(fast_config({first.address(), second.address()}));
  std::atomic<int> acked{0};
  for (int i = 0; i < 500; ++i) {
    ASSERT_TRUE(producer->send("demo", std::to_string(i), {},
                               [&](const Result<Key>& r) { acked += r ? 1 : 0; }));
  }
  ASSERT_TRUE(producer->flush());
  EXPECT_EQ(acked, 500);
  EXPECT_EQ(store->all("demo").size(), 500u);  // every resend carried the stored keys
  EXPECT_GE(second.connections, 1);
  EXPECT_EQ(producer->broker()->node_id, "fake-2");
}

TEST(ProducerTest, NonRetriableBrokerErrorReachesCallbackAndFlush) {
  auto store = std::make_shared<FakeStore>();
  FakeBroker broker(store);
  broker.fail_produces = 1;
  broker.fail_code = wire::ErrorCode::KEY_SKEW;
  auto producer = *Producer::create(fast_config({broker.address()}));
  std::promise<Error> failed;
  ASSERT_TRUE(producer->send("demo", "x", {}, [&](const Result<Key>& r) {
    if (!r) failed.set_value(r.error());
  }));
  auto flushed = producer->flush();
  ASSERT_FALSE(flushed);
  EXPECT_EQ(flushed.error().code, ErrorCode::kKeySkew);
  auto e = failed.get_future().get();
  EXPECT_EQ(e.code, ErrorCode::kKeySkew);
  EXPECT_NE(e.message.find("injected failure"), std::string::npos);
  EXPECT_EQ(producer->stats().failed, 1u);
  // A broker error on the stream name comes back the same way.
  auto bad = producer->send_async("bad/stream", "x").get();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidStream);
}

TEST(ProducerTest, FullBufferBlocksThenFailsWithBufferFull) {
  auto store = std::make_shared<FakeStore>();
  FakeBroker broker(store);
  broker.ignore_produces = true;
  auto c = fast_config({broker.address()});
  c.batch_bytes = 4096;
  c.buffer_memory = 16 * 1024;
  c.max_block = 200ms;
  auto producer = *Producer::create(c);
  const std::string payload(500, 'x');
  Result<Key> r = Key{};
  int accepted = 0;
  while (r && accepted < 1000) {
    r = producer->send("demo", payload);
    if (r) ++accepted;
  }
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kBufferFull) << r.error().to_string();
  EXPECT_GT(accepted, 10);
  EXPECT_LT(accepted, 40);
  EXPECT_LE(producer->stats().buffered_bytes, c.buffer_memory);
  // close() gives up on what the silent broker never answered.
  auto closed = producer->close(100ms);
  EXPECT_FALSE(closed);
}

TEST(ProducerTest, SendAfterCloseFailsWithClosed) {
  auto store = std::make_shared<FakeStore>();
  FakeBroker broker(store);
  auto producer = *Producer::create(fast_config({broker.address()}));
  ASSERT_TRUE(producer->send("demo", "before"));
  EXPECT_TRUE(producer->close());
  EXPECT_EQ(store->all("demo").size(), 1u);  // close() flushed it
  auto r = producer->send("demo", "after");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kClosed);
  EXPECT_TRUE(producer->close());  // idempotent
}

// ----------------------------------------------------------------------------- scanner, admin

class ScannerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto producer = *Producer::create(fast_config({broker_.address()}));
    for (int i = 0; i < 300; ++i) {
      keys_.push_back(*producer->send("demo", std::to_string(i)));
    }
    ASSERT_TRUE(producer->close());
  }

  std::shared_ptr<FakeStore> store_ = std::make_shared<FakeStore>();
  FakeBroker broker_{store_};
  std::vector<Key> keys_;
};

TEST_F(ScannerTest, RangeBoundsAreInclusiveExclusive) {
  auto events = scan_all(broker_.address(),
                         ScanOptions{.stream = "demo", .from = keys_[10], .to = keys_[20]});
  ASSERT_EQ(events.size(), 10u);
  EXPECT_EQ(events.front().key, keys_[10]);
  EXPECT_EQ(events.back().key, keys_[19]);
}

TEST_F(ScannerTest, CursorResumesExactlyWhereTheScanStopped) {
  auto scanner = *Scanner::open(client_config({broker_.address()}),
                                ScanOptions{.stream = "demo", .page_events = 16});
  auto page = *scanner->next_page(123);
  ASSERT_EQ(page.size(), 123u);
  const Key cursor = scanner->cursor();
  EXPECT_EQ(cursor, page.back().key.successor());
  auto text = cursor.to_text();
  auto rest = scan_all(broker_.address(), ScanOptions{.stream = "demo", .from = *Key::parse(text)});
  ASSERT_EQ(rest.size(), 300u - 123u);
  EXPECT_EQ(rest.front().key, keys_[123]);
}

TEST_F(ScannerTest, SinglePartitionModeReadsOnlyThatPartition) {
  std::size_t total = 0;
  for (std::uint32_t p = 0; p < 4; ++p) {
    auto events = scan_all(broker_.address(), ScanOptions{.stream = "demo", .partition = p});
    for (const auto& e : events) EXPECT_EQ(e.partition, p);
    EXPECT_TRUE(std::is_sorted(events.begin(), events.end(),
                               [](const Event& a, const Event& b) { return a.key < b.key; }));
    total += events.size();
  }
  EXPECT_EQ(total, 300u);
}

TEST_F(ScannerTest, BrokerAndOptionErrorsAreTyped) {
  auto cfg = client_config({broker_.address()});
  auto bad_partition = Scanner::open(cfg, ScanOptions{.stream = "demo", .partition = 9});
  ASSERT_FALSE(bad_partition);
  EXPECT_EQ(bad_partition.error().code, ErrorCode::kInvalidPartition);
  auto bad_range = Scanner::open(cfg, ScanOptions{.stream = "demo", .from = keys_[5], .to = keys_[1]});
  ASSERT_FALSE(bad_range);
  EXPECT_EQ(bad_range.error().code, ErrorCode::kInvalidRange);
  auto scanner = *Scanner::open(cfg, ScanOptions{.stream = "bad/stream"});
  auto r = scanner->next();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidStream);
  EXPECT_NE(r.error().message.find(broker_.address()), std::string::npos);
}

TEST(AdminTest, MetadataIsTyped) {
  auto store = std::make_shared<FakeStore>();
  FakeBroker broker(store);
  auto admin = Admin::connect(client_config({dead_address(), broker.address()}));
  ASSERT_TRUE(admin) << admin.error().to_string();
  auto m = (*admin)->metadata();
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_EQ(m->node_id, "fake-1");
  EXPECT_EQ(m->partitions, 4u);
  EXPECT_EQ(m->replication_factor, 3u);
  EXPECT_EQ(m->interval, std::chrono::hours(1));
  ASSERT_EQ(m->members.size(), 1u);
  EXPECT_TRUE(m->members[0].live);
  EXPECT_EQ(m->streams, std::vector<std::string>{"demo"});
  EXPECT_EQ(m->watermark_ms, 1234u);
  EXPECT_TRUE(m->sync);
}

TEST(AdminTest, UnreachableClusterIsConnectionFailed) {
  auto c = client_config({dead_address()});
  c.retry_timeout = 300ms;
  auto admin = Admin::connect(c);
  ASSERT_FALSE(admin);
  EXPECT_EQ(admin.error().code, ErrorCode::kConnectionFailed);
}

}  // namespace
}  // namespace alldata::client
