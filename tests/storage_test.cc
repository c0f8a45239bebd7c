// EventStore against a real RocksDB in a fresh temporary folder per test: what is stored,
// what scans return, and which errors writes get.
#include "alldata/storage/event_store.h"
#include "storage_test_support.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>


namespace alldata::storage {
namespace {

using namespace std::chrono_literals;

TEST_F(EventStoreTest, EventsOfDifferentHoursLandInTheirOwnIntervals) {
  open();
  // One batch spanning three hours, written out of order.
  const Key a = Key::make(kT0 + 10 * 60'000, 0, 1);              // 05:10
  const Key b = Key::make(kT0 + kHour + 20 * 60'000, 0, 1);      // 06:20
  const Key c = Key::make(kT0 + 2 * kHour + 30 * 60'000, 3, 1);  // 07:30
  ASSERT_TRUE(write(batch_of("clicks", 0, {c, a, b})));

  const auto events = scan_all("clicks", 0);
  ASSERT_EQ(keys_of(events), (std::vector<Key>{a, b, c}));
  EXPECT_EQ(events[1].payload, payload_for(b));
  EXPECT_EQ(store_->stats().intervals, 3u);
  EXPECT_EQ(store_->stats().events_written, 3u);

  store_.reset();  // RocksDB allows one process at a time
  std::vector<std::string> cfs;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), options().path, &cfs).ok());
  std::sort(cfs.begin(), cfs.end());
  EXPECT_EQ(cfs, (std::vector<std::string>{"default", "i-20261128T050000Z", "i-20261128T060000Z",
                                           "i-20261128T070000Z"}));
}

TEST_F(EventStoreTest, RangeIsFromInclusiveToExclusive) {
  open();
  const auto keys = keys_at(kT0 + 1000, 10, 1);  // ten consecutive milliseconds
  ASSERT_TRUE(write(batch_of("s", 0, keys)));

  EXPECT_EQ(keys_of(scan_all("s", 0, keys[3], keys[7])),
            (std::vector<Key>{keys[3], keys[4], keys[5], keys[6]}));
  // Just past a key excludes it as `from`; its successor as `to` includes it.
  EXPECT_EQ(keys_of(scan_all("s", 0, keys[3].successor(), keys[7].successor())),
            (std::vector<Key>{keys[4], keys[5], keys[6], keys[7]}));
  // Time bounds: at_time(t) is the first key of millisecond t.
  EXPECT_EQ(keys_of(scan_all("s", 0, Key::at_time(kT0 + 1002), Key::at_time(kT0 + 1004))),
            (std::vector<Key>{keys[2], keys[3]}));
  EXPECT_TRUE(scan_all("s", 0, keys[5], keys[5]).empty());
  EXPECT_TRUE(scan_all("s", 0, keys[6], keys[5]).empty());
  EXPECT_EQ(scan_all("s", 0).size(), 10u);
}

TEST_F(EventStoreTest, RangeBoundsHoldAcrossIntervals) {
  open();
  const Key last_of_hour = Key::make(kT0 + kHour - 1, 65535, ~std::uint64_t{0});
  const Key first_of_next = Key::make(kT0 + kHour, 0, 0);
  ASSERT_TRUE(write(batch_of("s", 0, {last_of_hour, first_of_next})));

  EXPECT_EQ(keys_of(scan_all("s", 0, Key(), first_of_next)), (std::vector<Key>{last_of_hour}));
  EXPECT_EQ(keys_of(scan_all("s", 0, first_of_next)), (std::vector<Key>{first_of_next}));
  EXPECT_EQ(keys_of(scan_all("s", 0, Key::at_time(kT0 + kHour))),
            (std::vector<Key>{first_of_next}));
}

TEST_F(EventStoreTest, PartitionsAndStreamsAreIsolated) {
  open();
  const auto keys = keys_at(kT0, 5, 10);
  ASSERT_TRUE(write(batch_of("orders", 0, {keys[0], keys[1]})));
  ASSERT_TRUE(write(batch_of("orders", 1, {keys[2]})));
  ASSERT_TRUE(write(batch_of("payments", 0, {keys[3], keys[4]})));
  ASSERT_TRUE(write(batch_of("orders2", 0, {keys[4]})));

  EXPECT_EQ(keys_of(scan_all("orders", 0)), (std::vector<Key>{keys[0], keys[1]}));
  EXPECT_EQ(keys_of(scan_all("orders", 1)), (std::vector<Key>{keys[2]}));
  EXPECT_TRUE(scan_all("orders", 2).empty());
  EXPECT_EQ(keys_of(scan_all("payments", 0)), (std::vector<Key>{keys[3], keys[4]}));
  EXPECT_EQ(keys_of(scan_all("orders2", 0)), (std::vector<Key>{keys[4]}));
  EXPECT_EQ(store_->streams(), (std::vector<std::string>{"orders", "orders2", "payments"}));
}

TEST_F(EventStoreTest, PagingResumesWithoutLossOrDuplication) {
  open();
  // 1000 events over three hours, in batches that each stay in one hour.
  std::vector<Key> all;
  for (int hour = 0; hour < 3; ++hour) {
    auto keys = keys_at(kT0 + hour * kHour + 5, 300 + hour * 50, 997);
    ASSERT_TRUE(write(batch_of("s", 4, keys)));
    all.insert(all.end(), keys.begin(), keys.end());
  }
  ASSERT_EQ(all.size(), 1050u);

  for (std::size_t page_events : {1u, 7u, 350u, 1050u, 5000u}) {
    std::size_t pages = 0;
    EXPECT_EQ(keys_of(scan_all("s", 4, Key(), Key::max(), page_events, 1u << 20, &pages)), all)
        << "pages of " << page_events;
    // A last page that is exactly full still knows it is the last one.
    EXPECT_EQ(pages, (all.size() + page_events - 1) / page_events) << "pages of " << page_events;
  }
  // Byte bound: a page stops once its payloads reach max_bytes.
  const std::size_t payload = payload_for(all[0]).size();
  std::size_t pages = 0;
  EXPECT_EQ(keys_of(scan_all("s", 4, Key(), Key::max(), 100000, 10 * payload, &pages)), all);
  EXPECT_EQ(pages, all.size() / 10);
  // A sub-range, in small pages.
  EXPECT_EQ(keys_of(scan_all("s", 4, all[100], all[900], 13)),
            std::vector<Key>(all.begin() + 100, all.begin() + 900));
}

TEST_F(EventStoreTest, HeadersAndBinaryPayloadsRoundTrip) {
  open();
  const std::string binary("\0\x01\xff\x80 zero inside", 17);
  const std::string large(300'000, 'x');  // bigger than a page arena chunk
  const std::vector<HeaderView> headers{
      {"content-type", "application/json"}, {"empty", ""}, {"", "no name"}, {"bin", binary}};
  EventBatch b("h", 0);
  const auto keys = keys_at(kT0, 4, 1);
  b.add(keys[0], "with headers", headers);
  b.add(keys[1], "");
  b.add(keys[2], binary, std::span(headers).subspan(3));
  b.add(keys[3], large);
  ASSERT_TRUE(write(std::move(b)));

  const auto events = scan_all("h", 0, Key(), Key::max(), 2);
  ASSERT_EQ(events.size(), 4u);
  const std::vector<std::pair<std::string, std::string>> expected_headers{
      {"content-type", "application/json"}, {"empty", ""}, {"", "no name"}, {"bin", binary}};
  EXPECT_EQ(events[0], (Event{keys[0], "with headers", expected_headers}));
  EXPECT_EQ(events[1], (Event{keys[1], "", {}}));
  EXPECT_EQ(events[2], (Event{keys[2], binary, {{"bin", binary}}}));
  EXPECT_EQ(events[3], (Event{keys[3], large, {}}));
}

TEST_F(EventStoreTest, ScanPageViewsSurviveMovingThePage) {
  open();
  EventBatch b("m", 0);
  const HeaderView h{"k", "v"};
  const auto keys = keys_at(kT0, 200, 1);
  for (const auto& k : keys) b.add(k, payload_for(k), std::span(&h, 1));
  ASSERT_TRUE(write(std::move(b)));

  ScanQuery q;
  q.stream = "m";
  auto page = store_->scan(q);
  ASSERT_TRUE(page);
  ScanPage moved = std::move(*page);
  ASSERT_EQ(moved.events.size(), 200u);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(moved.events[i].payload, payload_for(keys[i]));
    ASSERT_EQ(moved.events[i].headers.size(), 1u);
    EXPECT_EQ(moved.events[i].headers[0].value, "v");
  }
}

TEST_F(EventStoreTest, PageBytesCountHeadersNotJustPayloads) {
  open();
  // Empty payloads with 10 KiB of headers each: a page bound on payload bytes alone would
  // never stop, and one answer could grow without limit.
  EventBatch b("h", 0);
  const std::string big(10 * 1024, 'h');
  const HeaderView header{"blob", big};
  const auto keys = keys_at(kT0, 50, 1);
  for (const auto& k : keys) b.add(k, "", std::span(&header, 1));
  ASSERT_TRUE(write(std::move(b)));

  ScanQuery q;
  q.stream = "h";
  q.max_events = 1000;
  q.max_bytes = 100 * 1024;
  auto page = store_->scan(q);
  ASSERT_TRUE(page) << page.error().to_string();
  EXPECT_FALSE(page->done);
  EXPECT_EQ(page->events.size(), 10u) << "10 events of 10 KiB reach 100 KiB";
  EXPECT_EQ(page->next_from, keys[9].successor());
}

TEST_F(EventStoreTest, UnknownStreamGivesEmptyDonePage) {
  open();
  ScanQuery q;
  q.stream = "nobody";
  auto page = store_->scan(q);
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->events.empty());
  EXPECT_TRUE(page->done);
}

TEST_F(EventStoreTest, EmptyStreamNameIsRefused) {
  open();
  const Status s = write(batch_of("", 0, keys_at(kT0, 1, 1)));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidStream);
  EXPECT_TRUE(store_->streams().empty());
}

TEST_F(EventStoreTest, RestartReopensEveryIntervalAndKeepsDataAndStreams) {
  open();
  std::vector<Key> a_keys;
  for (int hour = 0; hour < 4; ++hour) {
    auto keys = keys_at(kT0 + hour * kHour, 10, 1000);
    ASSERT_TRUE(write(batch_of("a", 0, keys)));
    a_keys.insert(a_keys.end(), keys.begin(), keys.end());
  }
  ASSERT_TRUE(write(batch_of("b", 3, keys_at(kT0, 1, 1))));

  open();  // closes the first store, then opens the folder again
  EXPECT_EQ(store_->stats().intervals, 4u);
  EXPECT_EQ(store_->streams(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(keys_of(scan_all("a", 0)), a_keys);
  EXPECT_EQ(scan_all("b", 3).size(), 1u);

  // Stream ids survive too: new streams after a restart do not collide with old ones.
  ASSERT_TRUE(write(batch_of("c", 0, keys_at(kT0 + 1, 1, 1))));
  EXPECT_EQ(scan_all("c", 0).size(), 1u);
  EXPECT_EQ(keys_of(scan_all("a", 0)), a_keys);
}

TEST_F(EventStoreTest, ReopenWithDifferentIntervalIsRefused) {
  open();
  ASSERT_TRUE(write(batch_of("s", 0, keys_at(kT0, 1, 1))));
  store_.reset();

  Options o = options();
  o.interval = std::chrono::hours(24);
  auto r = EventStore::open(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kBadRequest);
  EXPECT_NE(r.error().message.find("3600000"), std::string::npos) << r.error().message;

  open();  // the original interval still opens, data intact
  EXPECT_EQ(scan_all("s", 0).size(), 1u);
}

TEST_F(EventStoreTest, IntervalThatIsNotWholeSecondsIsRefused) {
  Options o = options();
  o.interval = std::chrono::milliseconds(1500);
  auto r = EventStore::open(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kBadRequest);
}

TEST_F(EventStoreTest, SyncOnAndOffBothStore) {
  for (bool sync : {true, false}) {
    SCOPED_TRACE(sync ? "sync on" : "sync off");
    Options o = options();
    o.sync = sync;
    o.path = (dir_ / (sync ? "sync" : "nosync")).string();
    open(o);
    const auto keys = keys_at(kT0, 100, 3);
    ASSERT_TRUE(write(batch_of("s", 0, keys)));
    EXPECT_EQ(keys_of(scan_all("s", 0)), keys);
    open(o);
    EXPECT_EQ(keys_of(scan_all("s", 0)), keys);
  }
}

TEST_F(EventStoreTest, RetriedIdenticalKeyIsStoredOnce) {
  open();
  const auto keys = keys_at(kT0, 20, 1);
  ASSERT_TRUE(write(batch_of("s", 0, keys)));
  ASSERT_TRUE(write(batch_of("s", 0, keys)));  // the retry
  // ... and a duplicate inside one batch.
  ASSERT_TRUE(write(batch_of("s", 0, {keys[3], keys[3]})));
  EXPECT_EQ(keys_of(scan_all("s", 0)), keys);
}

TEST_F(EventStoreTest, SealedIntervalRefusesNormalWritesButAcceptsRepairWrites) {
  Options o = options();
  o.seal_after = std::chrono::minutes(30);
  open(o);
  const auto old_keys = keys_at(kT0 + 10, 5, 1000);          // hour 05
  const auto new_keys = keys_at(kT0 + kHour + 10, 2, 1000);  // hour 06
  ASSERT_TRUE(write(batch_of("s", 0, old_keys)));
  ASSERT_TRUE(write(batch_of("s", 1, {old_keys[0]})));
  ASSERT_TRUE(write(batch_of("s", 0, new_keys)));

  // Hour 05 ends at 06:00; it is sealed from 06:30 on, hour 06 from 07:30 on.
  auto sealed = store_->seal_old_intervals(kT0 + kHour + 30 * 60'000 - 1);
  ASSERT_TRUE(sealed);
  EXPECT_EQ(*sealed, 0u);
  sealed = store_->seal_old_intervals(kT0 + kHour + 30 * 60'000);
  ASSERT_TRUE(sealed) << sealed.error().to_string();
  EXPECT_EQ(*sealed, 1u);
  EXPECT_EQ(store_->stats().sealed_intervals, 1u);
  sealed = store_->seal_old_intervals(kT0 + kHour + 30 * 60'000);
  ASSERT_TRUE(sealed);
  EXPECT_EQ(*sealed, 0u);  // already sealed

  auto digest_of = [](const std::vector<Key>& keys) {
    std::uint64_t x = 0;
    for (const auto& k : keys) x ^= XXH64(k.data(), Key::kSize, 0);
    return x;
  };
  auto d = store_->digest("s", 0, kT0);
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ(**d, (IntervalDigest{kT0, 5, digest_of(old_keys)}));
  d = store_->digest("s", 1, kT0);
  ASSERT_TRUE(d && d->has_value());
  EXPECT_EQ(**d, (IntervalDigest{kT0, 1, digest_of({old_keys[0]})}));
  d = store_->digest("s", 2, kT0);  // sealed, nothing stored: the empty digest
  ASSERT_TRUE(d && d->has_value());
  EXPECT_EQ(**d, (IntervalDigest{kT0, 0, 0}));
  d = store_->digest("s", 0, kT0 + kHour);  // not sealed
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->has_value());

  // A normal write into the sealed hour fails as a whole and names the interval.
  const Key late = Key::make(kT0 + 50 * 60'000, 0, 9);
  const Key fresh = Key::make(kT0 + kHour + 50 * 60'000, 0, 9);
  Status s = write(batch_of("s", 0, {fresh, late}));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kIntervalSealed);
  EXPECT_NE(s.error().message.find("i-20261128T050000Z"), std::string::npos) << s.error().message;
  EXPECT_EQ(keys_of(scan_all("s", 0)),
            (std::vector<Key>{old_keys[0], old_keys[1], old_keys[2], old_keys[3], old_keys[4],
                              new_keys[0], new_keys[1]}));

  // A repair write passes and keeps the digest current; a repaired duplicate counts once.
  EventBatch repair = batch_of("s", 0, {late, old_keys[2], late});
  repair.set_repair(true);
  ASSERT_TRUE(write(std::move(repair)));
  d = store_->digest("s", 0, kT0);
  ASSERT_TRUE(d && d->has_value());
  std::vector<Key> with_late = old_keys;
  with_late.push_back(late);
  EXPECT_EQ(**d, (IntervalDigest{kT0, 6, digest_of(with_late)}));
  EXPECT_EQ(scan_all("s", 0, Key(), Key::at_time(kT0 + kHour)).size(), 6u);

  // Sealing is durable.
  open(o);
  EXPECT_EQ(store_->stats().sealed_intervals, 1u);
  s = write(batch_of("s", 0, {Key::make(kT0 + 55 * 60'000, 0, 9)}));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kIntervalSealed);
  d = store_->digest("s", 0, kT0);
  ASSERT_TRUE(d && d->has_value());
  EXPECT_EQ((*d)->count, 6u);
}

TEST_F(EventStoreTest, SealedIntervalFailsOnlyItsOwnBatchInAGroup) {
  Options o = options();
  o.seal_after = std::chrono::milliseconds(0);
  open(o);
  ASSERT_TRUE(write(batch_of("s", 0, keys_at(kT0, 1, 1))));
  ASSERT_TRUE(store_->seal_old_intervals(kT0 + kHour));

  // Queue many batches at once so that they share group commits; every other one is late.
  constexpr int kBatches = 200;
  std::mutex mu;
  std::condition_variable cv;
  int completed = 0;
  std::vector<ErrorCode> codes(kBatches, ErrorCode::kInternal);
  for (int i = 0; i < kBatches; ++i) {
    const std::uint64_t t = (i % 2 == 0) ? kT0 + kHour + i : kT0 + i;
    store_->write(batch_of(i % 3 == 0 ? "s" : "t", 0, {Key::make(t, 0, 1)}), [&, i](Status s) {
      std::lock_guard lk(mu);
      codes[i] = s ? ErrorCode::kOk : s.error().code;
      ++completed;
      cv.notify_all();
    });
  }
  std::unique_lock lk(mu);
  ASSERT_TRUE(cv.wait_for(lk, kDeadline, [&] { return completed == kBatches; }));
  for (int i = 0; i < kBatches; ++i) {
    EXPECT_EQ(codes[i], i % 2 == 0 ? ErrorCode::kOk : ErrorCode::kIntervalSealed) << i;
  }
  lk.unlock();
  EXPECT_EQ(scan_all("s", 0, Key::at_time(kT0 + kHour)).size() +
                scan_all("t", 0, Key::at_time(kT0 + kHour)).size(),
            static_cast<std::size_t>(kBatches / 2));
}

TEST_F(EventStoreTest, OverloadedWhenQueueBoundIsHit) {
  Options o = options();
  o.max_queued_bytes = 1;  // smaller than any batch: refused at once, deterministically
  open(o);
  std::optional<Status> result;
  store_->write(batch_of("s", 0, keys_at(kT0, 1, 1)), [&](Status s) { result = std::move(s); });
  ASSERT_TRUE(result.has_value()) << "an overloaded write completes on the caller's thread";
  ASSERT_FALSE(*result);
  EXPECT_EQ(result->error().code, ErrorCode::kOverloaded);
  EXPECT_EQ(store_->stats().queued_bytes, 0u);
  EXPECT_TRUE(scan_all("s", 0).empty());
}

TEST_F(EventStoreTest, ConcurrentWritersFromFourThreadsAreAllStored) {
  open();
  constexpr int kThreads = 4;
  constexpr int kBatchesPerThread = 50;
  constexpr int kEventsPerBatch = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatchesPerThread; ++b) {
        EventBatch batch("shared", static_cast<std::uint32_t>(t % 2));
        for (int e = 0; e < kEventsPerBatch; ++e) {
          const Key k = Key::make(kT0 + b * kEventsPerBatch + e, static_cast<std::uint16_t>(e),
                                  static_cast<std::uint64_t>(t));
          batch.add(k, payload_for(k));
        }
        if (!write(*store_, std::move(batch))) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);

  for (std::uint32_t p = 0; p < 2; ++p) {
    const auto events = scan_all("shared", p, Key(), Key::max(), 777);
    EXPECT_EQ(events.size(), static_cast<std::size_t>(2 * kBatchesPerThread * kEventsPerBatch));
    EXPECT_TRUE(std::is_sorted(events.begin(), events.end(),
                               [](const Event& a, const Event& b) { return a.key < b.key; }));
    const auto keys = keys_of(events);
    const std::set<Key> unique(keys.begin(), keys.end());
    EXPECT_EQ(unique.size(), events.size());
  }
  const Stats stats = store_->stats();
  EXPECT_EQ(stats.events_written,
            static_cast<std::uint64_t>(kThreads * kBatchesPerThread * kEventsPerBatch));
  EXPECT_EQ(stats.batches_written, static_cast<std::uint64_t>(kThreads * kBatchesPerThread));
  EXPECT_LE(stats.group_commits, stats.batches_written);
  EXPECT_EQ(stats.queued_bytes, 0u);
}

TEST_F(EventStoreTest, CloseWritesEverythingAlreadyQueued) {
  open();
  constexpr int kBatches = 300;
  std::atomic<int> ok{0};
  std::atomic<int> completed{0};
  for (int i = 0; i < kBatches; ++i) {
    store_->write(batch_of("q", 0, keys_at(kT0 + i * 10, 10, 1)), [&](Status s) {
      if (s) ++ok;
      ++completed;
    });
  }
  store_.reset();  // blocks until the queue is drained
  EXPECT_EQ(completed.load(), kBatches);
  EXPECT_EQ(ok.load(), kBatches);
  open();
  EXPECT_EQ(scan_all("q", 0).size(), static_cast<std::size_t>(kBatches * 10));
}

TEST_F(EventStoreTest, MetaRoundTripsAndSurvivesRestart) {
  open();
  auto missing = store_->get_meta("keygen.hwm");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(store_->put_meta("keygen.hwm", "12345"));
  ASSERT_TRUE(store_->put_meta("keygen.hwm", "12346"));
  open();
  auto value = store_->get_meta("keygen.hwm");
  ASSERT_TRUE(value);
  EXPECT_EQ(value->value_or(""), "12346");
  // Meta never shows up as a stream.
  EXPECT_TRUE(store_->streams().empty());
}

TEST_F(EventStoreTest, EmptyBatchSucceedsWithoutCreatingTheStream) {
  open();
  ASSERT_TRUE(write(EventBatch("ghost", 0)));
  EXPECT_TRUE(store_->streams().empty());
}

TEST_F(EventStoreTest, FolderInUseIsRefused) {
  open();
  auto second = EventStore::open(options());
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::kStorageError);
  EXPECT_NE(second.error().message.find("lock"), std::string::npos) << second.error().message;
}

TEST_F(EventStoreTest, OpenWithoutLoggerIsRefused) {
  Options o = options();
  o.logger = nullptr;
  auto r = EventStore::open(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kBadRequest);
}

}  // namespace
}  // namespace alldata::storage
