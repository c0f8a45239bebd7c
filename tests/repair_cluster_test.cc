// Anti-entropy in a real 3-broker cluster (in-process brokers, RF 3, loopback): events that
// reached one replica only (a half-done write) reach the others through `alldata repair`
// on demand and through the background runs; a second run finds nothing to do.
#include "alldata/client/client.h"
#include "alldata/storage/event_store.h"
#include "process_support.h"
#include "test_support.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>

namespace alldata::testing {
namespace {

constexpr std::uint32_t kPartitions = 4;
const std::string kStream = "events";

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

class RepairClusterTest : public ::testing::Test {
 protected:
  // `margin`: max-key-skew and produce-timeout (the watermark trails the clock by both).
  void start(std::chrono::milliseconds repair_interval, std::uint64_t max_hint_bytes = 1ull << 30,
             int brokers = 3, std::chrono::milliseconds margin = std::chrono::milliseconds(0)) {
    for (int i = 0; i < brokers; ++i) {
      options_.push_back(cluster_options(dir_.path(), i,
                                         i == 0 ? "" : brokers_[0]->gossip_address(), kPartitions));
      if (margin.count() > 0) {
        options_.back().max_key_skew = margin;
        options_.back().produce_timeout = margin;
      }
      options_.back().repair_interval = repair_interval;
      options_.back().max_hint_bytes_per_node = max_hint_bytes;
      brokers_.push_back(start_broker(options_.back()));
      ASSERT_TRUE(brokers_.back());
    }
    ASSERT_TRUE(all_normal()) << "the brokers did not all see each other";
  }

  bool all_normal() {
    return eventually([&] {
      for (auto& b : brokers_) {
        if (b && normal_members(b->client_port()) != static_cast<int>(brokers_.size())) return false;
      }
      return true;
    });
  }

  // QUORUM produce of n events through broker i, spread over the partitions.
  std::set<Key> produce(int i, int n) {
    RawConnection c(brokers_[i]->client_port());
    EXPECT_EQ(c.hello().error(), ErrorCode::kOk);
    std::set<Key> acked;
    for (int batch = 0; batch < n / 100; ++batch) {
      std::vector<TestEvent> events;
      for (int j = 0; j < 100; ++j) events.push_back({std::string(100, 'x'), std::nullopt});
      auto r = c.produce(kStream, static_cast<std::uint32_t>(batch % kPartitions), events,
                         wire::CommitLevel::QUORUM);
      EXPECT_EQ(r.error(), ErrorCode::kOk) << r.message();
      for (auto k : keys_of(r)) acked.insert(k);
    }
    return acked;
  }

  std::uint64_t hints_pending(int i) {
    auto admin = client::Admin::connect(client::ClientConfig{.bootstrap = {brokers_[i]->client_address()}});
    if (!admin) return ~std::uint64_t{0};
    auto m = (*admin)->metadata(false);
    if (!m) return ~std::uint64_t{0};
    std::uint64_t total = 0;
    for (const auto& member : m->members) total += member.pending_hints;
    return total;
  }

  // Stores `n` events per partition on broker i only, as a replica write would: the other
  // replicas lack them, as after a coordinator died mid-write.
  std::set<Key> store_only_on(int i, int n) {
    RawConnection peer(port_of(brokers_[i]->peer_address()));
    EXPECT_EQ(peer.hello(true).error(), ErrorCode::kOk);
    std::set<Key> keys;
    const std::uint64_t t = now_ms() - 2000;
    for (std::uint32_t p = 0; p < kPartitions; ++p) {
      std::vector<std::pair<Key, std::string>> events;
      for (int j = 0; j < n; ++j) {
        const Key k = Key::make(t + static_cast<std::uint64_t>(j), static_cast<std::uint16_t>(p), 0xfeed);
        events.emplace_back(k, "half-done " + std::to_string(j));
        keys.insert(k);
      }
      auto r = peer.replicate(kStream, p, events);
      EXPECT_EQ(r.error(), ErrorCode::kOk) << r.message();
    }
    return keys;
  }

  std::set<Key> held_by(int i) { return keys_held(brokers_[i]->client_port(), kStream, kPartitions); }

  // Member `id` as broker `via` sees it.
  std::optional<client::MemberInfo> member(int via, const std::string& id) {
    auto admin = client::Admin::connect(client::ClientConfig{.bootstrap = {brokers_[via]->client_address()}});
    if (!admin) return std::nullopt;
    auto m = (*admin)->metadata(false);
    if (!m) return std::nullopt;
    for (const auto& mi : m->members) {
      if (mi.node_id == id) return mi;
    }
    return std::nullopt;
  }

  // How many of `acked` a default `alldata scan` through broker i misses (or -1 if it failed).
  long missed_by_scan(int i, const std::set<Key>& acked, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"scan", "-s", kStream, "-b", brokers_[i]->client_address(), "--format", "jsonl"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_tool(args, dir_.path());
    if (r.status != 0) {
      ADD_FAILURE() << r.err;
      return -1;
    }
    const auto got = scanned_keys(r.out);
    long missed = 0;
    for (const auto& k : acked) missed += got.count(k.to_text()) == 0 ? 1 : 0;
    return missed;
  }

  TempDir dir_;
  std::vector<broker::BrokerOptions> options_;
  std::vector<std::unique_ptr<broker::Broker>> brokers_;
};

TEST_F(RepairClusterTest, RepairOnDemandCopiesWhatOnlyOneReplicaHeld) {
  start(std::chrono::milliseconds(0));  // no background runs
  const auto keys = store_only_on(0, 500);
  ASSERT_TRUE(held_by(1).empty());

  // `alldata repair` on node-1: it receives what node-0 alone held.
  auto r = run_tool({"repair", "-b", brokers_[1]->client_address(), "--json"}, dir_.path());
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("\"events_received\":" + std::to_string(keys.size())), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"partitions\":4"), std::string::npos) << r.out;
  EXPECT_EQ(held_by(1), keys);

  // On node-2 through the library: it receives the rest (node-1's run already pushed to it
  // the partitions where it compared with node-2 after node-0); then every replica holds
  // every event.
  const std::size_t node2_lacked = keys.size() - held_by(2).size();
  client::ClientConfig config;
  config.bootstrap = {brokers_[2]->client_address()};
  config.request_timeout = std::chrono::seconds(60);
  auto admin = client::Admin::connect(config);
  ASSERT_TRUE(admin) << admin.error().to_string();
  auto report = (*admin)->repair(kStream, 0, 0);
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_EQ(report->events_received, node2_lacked);
  EXPECT_EQ(report->pairs, 2u * kPartitions);
  EXPECT_EQ(report->pairs_failed, 0u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(held_by(i), keys) << "broker " << i;

  // Nothing left to do: one digest per interval and partition, no copies.
  report = (*admin)->repair(kStream, 0, 0);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->events_received + report->events_sent, 0u);
  EXPECT_EQ(report->ranges_differed, 0u);

  // The human summary.
  auto text = run_tool({"repair", "-b", brokers_[0]->client_address(), "-s", kStream}, dir_.path());
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("received 0 events"), std::string::npos) << text.out;
}

// A coordinator that dies with writes in flight leaves events on some owners only, and its
// memory of them is gone. Its lease in the store tells the next start that it died: every
// owner then repairs the times those writes could carry, with background repair off.
TEST_F(RepairClusterTest, ACoordinatorThatDiedHasEveryOwnerRepairWhatItHadInFlight) {
  start(std::chrono::milliseconds(0));
  const auto keys = store_only_on(0, 300);  // half-done writes of node-0
  // node-0 dies: a crash leaves the lease as it was last renewed (now), where a clean stop
  // clears it.
  brokers_[0]->stop();
  brokers_[0].reset();
  {
    storage::Options so;
    so.path = (std::filesystem::path(options_[0].data_dir) / "events").string();
    so.interval = options_[0].partition_interval;
    so.logger = spdlog::default_logger();
    auto store = storage::EventStore::open(so);
    ASSERT_TRUE(store) << store.error().to_string();
    ASSERT_TRUE((*store)->put_meta("coordinator.lease", std::to_string(now_ms())));
  }
  options_[0].seeds = {brokers_[1]->gossip_address()};
  brokers_[0] = start_broker(options_[0]);
  ASSERT_TRUE(brokers_[0]);
  for (int i = 1; i < 3; ++i) {
    EXPECT_TRUE(eventually([&] { return held_by(i) == keys; }, std::chrono::seconds(60)))
        << "node-" << i << " holds " << held_by(i).size() << " of " << keys.size();
  }
}

TEST_F(RepairClusterTest, BackgroundRepairBringsEveryReplicaUpToDate) {
  start(std::chrono::milliseconds(500));
  const auto keys = store_only_on(2, 300);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(eventually([&] { return held_by(i) == keys; }, std::chrono::seconds(30)))
        << "broker " << i << " holds " << held_by(i).size() << " of " << keys.size();
  }
}

// Copies past the hint bound are stored nowhere: the coordinator records them as repair
// debts, its watermark holds at them, and once the owner is back it is asked to repair
// those partitions. So the watermark passes the events only once every copy is there.
TEST_F(RepairClusterTest, HintsPastTheirBoundAreLeftToRepairAndTheWatermarkWaitsForIt) {
  start(std::chrono::milliseconds(0), 16 * 1024, 3, std::chrono::seconds(1));
  brokers_[2]->stop();
  brokers_[2].reset();
  // QUORUM writes go on with node-2 down; its hints stop at 16 KiB per holder.
  RawConnection c(brokers_[0]->client_port());
  ASSERT_EQ(c.hello().error(), ErrorCode::kOk);
  std::set<Key> acked;
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<TestEvent> events;
    for (int i = 0; i < 100; ++i) events.push_back({std::string(100, 'x'), std::nullopt});
    auto r = c.produce(kStream, static_cast<std::uint32_t>(batch % kPartitions), events,
                       wire::CommitLevel::QUORUM);
    ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
    for (auto k : keys_of(r)) acked.insert(k);
  }
  const std::uint64_t newest = acked.rbegin()->time_ms();
  auto watermark = [&] {
    auto admin = client::Admin::connect(client::ClientConfig{.bootstrap = {brokers_[0]->client_address()}});
    if (!admin) return std::uint64_t{0};
    auto m = (*admin)->metadata(false);
    return m ? m->watermark_ms : std::uint64_t{0};
  };
  // Past the margin (max-key-skew 1 s + produce-timeout 1 s) the watermark would have
  // passed the events; it holds below the oldest.
  ASSERT_TRUE(eventually([&] { return now_ms() > newest + 4000; }));
  EXPECT_LE(watermark(), acked.begin()->time_ms());

  brokers_[2] = start_broker(options_[2]);
  ASSERT_TRUE(brokers_[2]);
  ASSERT_TRUE(all_normal());
  // Hinted handoff brings what the bound let through; the debts bring the rest. The
  // watermark passes the events only once node-2 holds every one (no repair run is asked
  // for, and background repair is off).
  ASSERT_TRUE(eventually([&] { return watermark() > newest; }, std::chrono::seconds(60)));
  const auto held = held_by(2);
  std::size_t missing = 0;
  for (const auto& k : acked) missing += held.count(k) == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " events node-2 lacks once the watermark passed them";
}

// A broker back from an outage lacks what was written meanwhile until its hints arrive, and
// while the broker holding them is down in turn that lasts. The holder published that it
// owes node-2 events; scans read node-2 last, so a default scan still returns everything.
TEST_F(RepairClusterTest, AReplicaStillOwedHintsIsReadLastByScans) {
  start(std::chrono::milliseconds(0));  // no background repair
  brokers_[2]->stop();
  brokers_[2].reset();
  const auto acked = produce(0, 2000);
  ASSERT_TRUE(eventually([&] {
    auto m = member(1, "node-2");
    return m && m->incomplete_since_ms != 0 && m->incomplete_since_ms <= acked.begin()->time_ms();
  })) << "node-1 never learnt that node-2 is owed events";
  // Stop the broker that holds (most of) node-2's hints; scan through the other.
  const auto h0 = member(1, "node-0"), h1 = member(1, "node-1");
  ASSERT_TRUE(h0 && h1);
  const int holder = h0->pending_hints >= h1->pending_hints ? 0 : 1;
  const int other = 1 - holder;
  ASSERT_GT(holder == 0 ? h0->pending_hints : h1->pending_hints, 0u);
  brokers_[holder]->stop();
  brokers_[holder].reset();
  options_[2].seeds = {brokers_[other]->gossip_address()};
  brokers_[2] = start_broker(options_[2]);
  ASSERT_TRUE(brokers_[2]);
  ASSERT_TRUE(eventually([&] {
    auto m = member(other, "node-2");  // its new incarnation, not the suspect old one
    return m && m->client_address == brokers_[2]->client_address() && m->liveness == Liveness::kAlive &&
           m->lifecycle == Lifecycle::kNormal;
  }));
  // node-2 really lacks events (its own copy), yet the default scan misses none.
  const long lacked = missed_by_scan(other, acked, {"--replica", "node-2"});
  EXPECT_GT(lacked, 0) << "node-2 got its hints anyway: the test shows nothing";
  EXPECT_EQ(missed_by_scan(other, acked), 0) << "of " << acked.size() << " (node-2 lacks " << lacked << ")";
  EXPECT_EQ(missed_by_scan(2, acked), 0) << "through node-2 itself";
  auto json = run_tool({"cluster", "--json", "-b", brokers_[other]->client_address()}, dir_.path());
  EXPECT_NE(json.out.find("\"incomplete_since\":\""), std::string::npos) << json.out;

  // The holder returns and delivers: node-2 is complete and no longer marked.
  options_[holder].seeds = {brokers_[other]->gossip_address()};
  brokers_[holder] = start_broker(options_[holder]);
  ASSERT_TRUE(brokers_[holder]);
  EXPECT_TRUE(eventually([&] { return held_by(2) == acked; }));
  EXPECT_TRUE(eventually([&] {
    auto m = member(other, "node-2");
    return m && m->incomplete_since_ms == 0;
  }));
}

// `alldata scan --wait-complete` waits until the watermark reaches the end of the range
// (now, without --to), then scans; it fails after --wait-timeout when it cannot.
TEST_F(RepairClusterTest, ScanWaitCompleteWaitsForTheWatermark) {
  start(std::chrono::milliseconds(0), 1ull << 30, 3, std::chrono::seconds(1));
  const auto acked = produce(0, 1000);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(missed_by_scan(1, acked, {"--wait-complete"}), 0);
  // The margin is 2 s (max-key-skew 1 s + produce-timeout 1 s): it waited for it.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));

  const std::string later = std::to_string(now_ms() + 3'600'000);
  auto r = run_tool({"scan", "-s", kStream, "-b", brokers_[1]->client_address(), "--to", later,
                     "--wait-complete", "--wait-timeout", "1"},
                    dir_.path());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not complete up to"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "") << "nothing is scanned when the wait fails";
}

TEST_F(RepairClusterTest, ARemovedBrokersCopiesAreRestoredAndItsHintsGoToTheNewOwners) {
  start(std::chrono::hours(1), 1ull << 30, 4);  // background repair on (runs after changes)
  std::set<Key> acked = produce(0, 1200);
  brokers_[3]->stop();  // gone for good
  brokers_[3].reset();
  const auto more = produce(0, 800);  // hints for node-3 pile up
  acked.insert(more.begin(), more.end());

  auto self = run_tool({"cluster", "remove", "node-0", "-b", brokers_[0]->client_address()},
                       dir_.path());
  EXPECT_EQ(self.status, 1);
  EXPECT_NE(self.err.find("BadRequest"), std::string::npos) << self.err;
  auto r = run_tool({"cluster", "remove", "node-3", "-b", brokers_[1]->client_address()},
                    dir_.path());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("node-3 is removed"), std::string::npos) << r.out;

  // With node-3 out, the three others own every partition: each must hold every event,
  // and no hint may stay behind for the removed broker.
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(eventually([&] { return held_by(i) == acked; }, std::chrono::seconds(60)))
        << "node-" << i << " holds " << held_by(i).size() << " of " << acked.size();
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(eventually([&] { return hints_pending(i) == 0; }, std::chrono::seconds(30)))
        << "hints still pending on node-" << i;
  }
}

TEST_F(RepairClusterTest, ABadStreamNameIsRefused) {
  start(std::chrono::milliseconds(0));
  auto r = run_tool({"repair", "-b", brokers_[0]->client_address(), "-s", "bad name!"}, dir_.path());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("InvalidStream"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace alldata::testing
