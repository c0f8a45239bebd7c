// Anti-entropy over the peer protocol between two real brokers (in-process, loopback): the
// driver compares their copies of a partition through PeerReplica (digest and fetchRange
// requests, repair writes as deliverHints) and prints what it cost. Identical copies must
// cost less than 1% of the data's bytes; a copy missing 10% must receive exactly those
// events. ALLDATA_REPAIR_EVENTS sets the size (default 200,000; the closing note of issue
// 7 used 1,000,000).
#include "alldata/broker/peer_client.h"
#include "repair/peer_replica.h"
#include "repair/range_repair.h"
#include "test_support.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>

namespace alldata::testing {
namespace {

namespace asio = boost::asio;
using broker::PeerClient;
using broker::repair::PeerReplica;
using broker::repair::RepairStats;

std::size_t event_count() {
  const char* v = std::getenv("ALLDATA_REPAIR_EVENTS");
  return v != nullptr ? static_cast<std::size_t>(std::strtoull(v, nullptr, 10)) : 200'000;
}

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

class RepairNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      auto o = test_options((dir_.path() / ("b" + std::to_string(i))).string());
      o.peer_listen = "127.0.0.1:0";
      o.node_id = "node-" + std::to_string(i);
      brokers_.push_back(start_broker(o));
      ASSERT_TRUE(brokers_.back());
    }
    client_ = std::make_unique<PeerClient>(io_.get_executor(),
                                           broker::PeerClientOptions{.self_node_id = "driver"},
                                           *log_);
  }
  void TearDown() override {
    client_->close();
    io_.restart();
    io_.run_for(std::chrono::seconds(1));
  }

  // Produces `keys` (with 100-byte payloads) to broker i's partition 0, 1,000 per request.
  std::uint64_t put(int i, const std::vector<Key>& keys) {
    RawConnection c(brokers_[i]->client_port());
    EXPECT_EQ(c.hello().error(), ErrorCode::kOk);
    std::uint64_t bytes = 0;
    for (std::size_t at = 0; at < keys.size(); at += 1000) {
      std::vector<TestEvent> events;
      for (std::size_t j = at; j < std::min(keys.size(), at + 1000); ++j) {
        std::string payload(100, 'a' + static_cast<char>(j % 26));
        bytes += payload.size() + Key::kSize;
        events.push_back({std::move(payload), keys[j]});
      }
      auto r = c.produce("s", 0, events);
      EXPECT_EQ(r.error(), ErrorCode::kOk) << r.message();
    }
    return bytes;
  }

  std::set<Key> held(int i) {
    RawConnection c(brokers_[i]->client_port());
    c.hello();
    std::set<Key> out;
    for (auto& [k, v] : c.scan_all("s", 0)) out.insert(k);
    return out;
  }

  struct Outcome {
    RepairStats stats;
    std::uint64_t wire_bytes = 0;  // every request and answer, both peers
    double seconds = 0;
  };

  Outcome repair() {
    PeerReplica a(*client_, "node-0", brokers_[0]->peer_address(), std::chrono::seconds(30));
    PeerReplica b(*client_, "node-1", brokers_[1]->peer_address(), std::chrono::seconds(30));
    const std::uint64_t now = now_ms();
    const auto started = std::chrono::steady_clock::now();
    // Named: the coroutine starts later and holds references to its arguments.
    const std::string stream = "s";
    const broker::repair::RepairLimits limits;
    const broker::repair::Throttle no_throttle;
    auto f = asio::co_spawn(io_,
                            broker::repair::repair_partition(a, b, stream, 0, 0, now + 3'600'000,
                                                             3'600'000, limits, no_throttle),
                            asio::use_future);
    io_.restart();
    while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      if (io_.run_one_for(std::chrono::seconds(120)) == 0) break;
    }
    EXPECT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    auto r = f.get();
    EXPECT_TRUE(r) << r.error().to_string();
    return Outcome{r ? *r : RepairStats{},
                   a.bytes_sent() + a.bytes_received() + b.bytes_sent() + b.bytes_received(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()};
  }

  // n distinct keys over the last few seconds (within the brokers' key skew), three origins.
  static std::vector<Key> recent_keys(std::size_t n) {
    const std::uint64_t start = now_ms() - 5000;
    std::vector<Key> keys;
    for (std::size_t i = 0; i < n; ++i) {
      keys.push_back(
          Key::make(start + i * 4000 / n, static_cast<std::uint16_t>(i % 60000), 1 + i % 3));
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
  }

  TempDir dir_;
  std::vector<std::unique_ptr<broker::Broker>> brokers_;
  std::shared_ptr<spdlog::logger> log_ = test_logger();
  asio::io_context io_;
  std::unique_ptr<PeerClient> client_;
};

TEST_F(RepairNetTest, IdenticalReplicasExchangeLessThanOnePercentOfTheirBytes) {
  const auto keys = recent_keys(event_count());
  const std::uint64_t data_bytes = put(0, keys);
  put(1, keys);
  const Outcome o = repair();
  EXPECT_EQ(o.stats.events_to_a + o.stats.events_to_b, 0u);
  EXPECT_EQ(o.stats.ranges_differed, 0u);
  EXPECT_LT(o.wire_bytes * 100, data_bytes) << o.wire_bytes << " bytes for " << data_bytes;
  std::printf("identical replicas of %zu events (%llu bytes): %llu bytes exchanged, %llu ranges "
              "compared\n",
              keys.size(), static_cast<unsigned long long>(data_bytes),
              static_cast<unsigned long long>(o.wire_bytes),
              static_cast<unsigned long long>(o.stats.ranges_compared));
}

TEST_F(RepairNetTest, AReplicaMissingTenPercentReceivesThoseEventsOverThePeerProtocol) {
  const auto keys = recent_keys(event_count());
  std::vector<Key> partial;
  std::size_t missing = 0;
  std::mt19937 random(11);
  for (const auto& k : keys) {
    if (random() % 10 == 0) {
      ++missing;
    } else {
      partial.push_back(k);
    }
  }
  const std::uint64_t data_bytes = put(0, keys);
  put(1, partial);
  const Outcome o = repair();
  const double seconds = o.seconds;
  EXPECT_EQ(o.stats.events_to_b, missing);
  EXPECT_EQ(o.stats.events_to_a, 0u);
  const std::set<Key> all(keys.begin(), keys.end());
  EXPECT_EQ(held(1), all);
  std::printf("replica missing %zu of %zu events: %llu events (%llu bytes) copied, %llu bytes "
              "exchanged in all (data %llu bytes), %llu ranges compared, %llu differed, %llu keys "
              "listed, %.2f s (%.0f events/s copied)\n",
              missing, keys.size(), static_cast<unsigned long long>(o.stats.events_to_b),
              static_cast<unsigned long long>(o.stats.bytes_to_b),
              static_cast<unsigned long long>(o.wire_bytes),
              static_cast<unsigned long long>(data_bytes),
              static_cast<unsigned long long>(o.stats.ranges_compared),
              static_cast<unsigned long long>(o.stats.ranges_differed),
              static_cast<unsigned long long>(o.stats.keys_listed), seconds,
              static_cast<double>(o.stats.events_to_b) / seconds);
  EXPECT_EQ(repair().stats.events_to_b, 0u);  // done: nothing left to copy
}

TEST_F(RepairNetTest, AContiguousGapCostsAboutWhatIsMissing) {
  // A broker that was down for a while misses one stretch of time, not random events.
  const auto keys = recent_keys(event_count());
  const std::size_t gap_from = keys.size() * 6 / 10;
  const std::size_t gap_to = keys.size() * 7 / 10;
  std::vector<Key> partial(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(gap_from));
  partial.insert(partial.end(), keys.begin() + static_cast<std::ptrdiff_t>(gap_to), keys.end());
  const std::uint64_t data_bytes = put(0, keys);
  put(1, partial);
  const Outcome o = repair();
  const double seconds = o.seconds;
  EXPECT_EQ(o.stats.events_to_b, gap_to - gap_from);
  // The driver relays every copied event twice (fetched from one, stored on the other), each
  // time with Cap'n Proto's framing of an Event (about 1.4 x its record bytes at 100-byte
  // payloads); the digests and the key listings of the gap's edges come on top.
  EXPECT_LT(o.wire_bytes, 3 * o.stats.bytes_to_b + data_bytes / 20)
      << o.wire_bytes << " bytes exchanged, " << o.stats.bytes_to_b << " copied";
  std::printf("replica missing a contiguous %zu of %zu events: %llu events (%llu bytes) copied, "
              "%llu bytes exchanged in all, %llu keys listed, %.2f s (%.0f events/s, %.1f MB/s "
              "copied)\n",
              gap_to - gap_from, keys.size(), static_cast<unsigned long long>(o.stats.events_to_b),
              static_cast<unsigned long long>(o.stats.bytes_to_b),
              static_cast<unsigned long long>(o.wire_bytes),
              static_cast<unsigned long long>(o.stats.keys_listed), seconds,
              static_cast<double>(o.stats.events_to_b) / seconds,
              static_cast<double>(o.stats.bytes_to_b) / seconds / 1e6);
}

TEST_F(RepairNetTest, RepairRequestsAreRefusedOnAClientSession) {
  RawConnection c(brokers_[0]->client_port());
  ASSERT_EQ(c.hello().error(), ErrorCode::kOk);
  capnp::MallocMessageBuilder mb;
  auto req = mb.initRoot<wire::Request>();
  req.setCorrelationId(7);
  req.initDigest().setStream("s");
  EXPECT_EQ(c.call(mb).error(), ErrorCode::kNotAllowed);
}

}  // namespace
}  // namespace alldata::testing
