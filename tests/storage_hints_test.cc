// Hints in the event store: durable, invisible to scans, deleted only when delivered,
// bounded per target, with a lower bound of their event times overall and per target.
#include "alldata/storage/event_store.h"
#include "storage_test_support.h"

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace alldata::storage {
namespace {

Status write_hint(EventStore& store, std::string_view target, EventBatch batch) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  store.write_hint(target, std::move(batch),
                   [promise](Status s) { promise->set_value(std::move(s)); });
  if (future.wait_for(kDeadline) != std::future_status::ready) {
    return Error(ErrorCode::kTimeout, "write_hint did not complete in time");
  }
  return future.get();
}

// Every hint held for `target`, as events per "stream/partition".
std::map<std::string, std::vector<Event>> all_hints(EventStore& store, std::string_view target) {
  std::map<std::string, std::vector<Event>> out;
  auto page = store.read_hints(target, 1'000'000);
  EXPECT_TRUE(page) << page.error().to_string();
  if (!page) return out;
  EXPECT_TRUE(page->done);
  for (const auto& b : page->batches) {
    EXPECT_TRUE(b.repair()) << "delivered hints may land in sealed intervals";
    auto& events = out[b.stream() + "/" + std::to_string(b.partition())];
    b.for_each([&](const Key& k, std::string_view payload, std::span<const HeaderView> hs) {
      Event e{k, std::string(payload), {}};
      for (const auto& h : hs) e.headers.emplace_back(h.name, h.value);
      events.push_back(std::move(e));
    });
  }
  return out;
}

TEST_F(EventStoreTest, HintsAreDurableAcrossRestartAndInvisibleToScans) {
  open();
  const auto keys = keys_at(kT0, 5, 1000);
  EventBatch b = batch_of("orders", 3, keys);
  const HeaderView header{"trace", "abc"};
  b.add(Key::make(kT0 + 10'000, 0, 7), "with header", std::span(&header, 1));
  ASSERT_TRUE(write_hint(*store_, "broker-2", std::move(b)));
  EXPECT_TRUE(scan_all("orders", 3).empty()) << "hints are not this broker's events";
  EXPECT_EQ(store_->pending_hints(), (std::map<std::string, std::uint64_t>{{"broker-2", 6}}));

  open();  // restart
  EXPECT_EQ(store_->pending_hints(), (std::map<std::string, std::uint64_t>{{"broker-2", 6}}));
  const auto hints = all_hints(*store_, "broker-2");
  ASSERT_EQ(hints.size(), 1u);
  const auto& events = hints.at("orders/3");
  ASSERT_EQ(events.size(), 6u);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(events[i].key, keys[i]);
    EXPECT_EQ(events[i].payload, payload_for(keys[i]));
  }
  EXPECT_EQ(events[5].payload, "with header");
  EXPECT_EQ(events[5].headers, (std::vector<std::pair<std::string, std::string>>{{"trace", "abc"}}));
  EXPECT_TRUE(store_->streams().empty()) << "hints do not create local streams";
}

TEST_F(EventStoreTest, HintsAreDeletedOnlyWhenAsked) {
  open();
  const auto keys = keys_at(kT0, 10, 1);
  ASSERT_TRUE(write_hint(*store_, "b1", batch_of("s", 0, keys)));
  // Reading does not delete.
  auto page = store_->read_hints("b1", 4);
  ASSERT_TRUE(page) << page.error().to_string();
  EXPECT_EQ(page->events, 4u);
  EXPECT_FALSE(page->done);
  EXPECT_EQ(all_hints(*store_, "b1").at("s/0").size(), 10u);

  // The owner confirmed the first page: only those go.
  ASSERT_EQ(page->batches.size(), 1u);
  ASSERT_TRUE(store_->delete_hints("b1", page->batches[0]));
  EXPECT_EQ(store_->pending_hints().at("b1"), 6u);
  const auto rest = all_hints(*store_, "b1").at("s/0");
  ASSERT_EQ(rest.size(), 6u);
  EXPECT_EQ(rest.front().key, keys[4]);

  // Deleting again, or keys never hinted, changes nothing.
  ASSERT_TRUE(store_->delete_hints("b1", page->batches[0]));
  ASSERT_TRUE(store_->delete_hints("b1", batch_of("s", 0, keys_at(kT0 + 5000, 3, 1))));
  EXPECT_EQ(store_->pending_hints().at("b1"), 6u);

  ASSERT_TRUE(store_->delete_hints("b1", batch_of("s", 0, keys)));
  EXPECT_TRUE(store_->pending_hints().empty());
  auto empty = store_->read_hints("b1", 100);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->batches.empty());
  EXPECT_TRUE(empty->done);

  open();  // the deletes are durable too
  EXPECT_TRUE(store_->pending_hints().empty());
}

TEST_F(EventStoreTest, HintPagesResumeAfterTheLastOneRead) {
  open();
  const auto keys = keys_at(kT0, 30, 1);
  ASSERT_TRUE(write_hint(*store_, "b1", batch_of("s", 0, keys)));
  std::vector<Key> seen;
  std::string resume;
  for (int pages = 0; pages < 10; ++pages) {
    auto page = store_->read_hints("b1", 7, resume);
    ASSERT_TRUE(page) << page.error().to_string();
    for (const auto& b : page->batches) {
      b.for_each([&](const Key& k, std::string_view, std::span<const HeaderView>) {
        seen.push_back(k);
      });
      // Delivered: deleted. The next page must not need to walk over them again.
      ASSERT_TRUE(store_->delete_hints("b1", b));
    }
    if (page->done) break;
    resume = page->resume_after;
  }
  EXPECT_EQ(seen, keys);
  EXPECT_TRUE(store_->pending_hints().empty());
}

TEST_F(EventStoreTest, HintsForOneTargetAreBoundedInBytes) {
  Options o = options();
  o.max_hint_bytes_per_target = 4000;
  open(o);
  // batch_of() makes ~60-byte values; hint keys are 1 + 2 + 1 + 4 + 16 + target bytes.
  const auto first = keys_at(kT0, 30, 1);
  ASSERT_TRUE(write_hint(*store_, "b1", batch_of("s", 0, first)));
  const std::uint64_t held = store_->pending_hint_bytes("b1");
  EXPECT_GT(held, 30u * 80);
  EXPECT_LE(held, 4000u);
  // Past the bound: refused whole, nothing stored; other targets are not affected.
  const Status over = write_hint(*store_, "b1", batch_of("s", 0, keys_at(kT0 + 1000, 30, 1)));
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kOverloaded);
  EXPECT_NE(over.error().message.find("b1"), std::string::npos) << over.error().message;
  EXPECT_EQ(store_->pending_hints().at("b1"), 30u);
  EXPECT_TRUE(write_hint(*store_, "b2", batch_of("s", 0, keys_at(kT0 + 1000, 30, 1))));
  // A retry of what is held adds nothing, so it passes.
  EXPECT_TRUE(write_hint(*store_, "b1", batch_of("s", 0, first)));
  // Delivered hints free their bytes; the count survives a restart.
  auto page = store_->read_hints("b1", 10);
  ASSERT_TRUE(page);
  ASSERT_TRUE(store_->delete_hints("b1", page->batches[0]));
  EXPECT_LT(store_->pending_hint_bytes("b1"), held);
  const std::uint64_t now_held = store_->pending_hint_bytes("b1");
  open(o);
  EXPECT_EQ(store_->pending_hint_bytes("b1"), now_held);
}

TEST_F(EventStoreTest, OldestHintTimeBoundsEveryPendingHint) {
  open();
  EXPECT_FALSE(store_->oldest_hint_ms());
  const auto late = keys_at(kT0 + 60'000, 3, 1);
  const auto early = keys_at(kT0, 2, 1);
  ASSERT_TRUE(write_hint(*store_, "b1", batch_of("s", 0, late)));
  EXPECT_EQ(store_->oldest_hint_ms(), std::optional<std::uint64_t>(kT0 + 60'000));
  ASSERT_TRUE(write_hint(*store_, "b2", batch_of("s", 1, early)));
  EXPECT_EQ(store_->oldest_hint_ms(), std::optional<std::uint64_t>(kT0));

  // Delivering the early ones leaves a bound that is still below every pending hint...
  ASSERT_TRUE(store_->delete_hints("b2", batch_of("s", 1, early)));
  ASSERT_TRUE(store_->oldest_hint_ms());
  EXPECT_LE(*store_->oldest_hint_ms(), kT0 + 60'000);
  // ...and exact again after a restart.
  open();
  EXPECT_EQ(store_->oldest_hint_ms(), std::optional<std::uint64_t>(kT0 + 60'000));
  ASSERT_TRUE(store_->delete_hints("b1", batch_of("s", 0, late)));
  EXPECT_FALSE(store_->oldest_hint_ms()) << "no hint pending";
}

TEST_F(EventStoreTest, OldestHintTimeIsKeptPerTarget) {
  open();
  EXPECT_TRUE(store_->oldest_hint_ms_by_target().empty());
  ASSERT_TRUE(write_hint(*store_, "b1", batch_of("s", 0, keys_at(kT0 + 60'000, 3, 1))));
  ASSERT_TRUE(write_hint(*store_, "b2", batch_of("s", 1, keys_at(kT0 + 5'000, 2, 1))));
  ASSERT_TRUE(write_hint(*store_, "b1", batch_of("s", 2, keys_at(kT0 + 30'000, 2, 1))));
  const std::map<std::string, std::uint64_t> want = {{"b1", kT0 + 30'000}, {"b2", kT0 + 5'000}};
  EXPECT_EQ(store_->oldest_hint_ms_by_target(), want);
  open();  // recounted from the hints themselves
  EXPECT_EQ(store_->oldest_hint_ms_by_target(), want);
  ASSERT_TRUE(store_->delete_hints("b2", batch_of("s", 1, keys_at(kT0 + 5'000, 2, 1))));
  EXPECT_EQ(store_->oldest_hint_ms_by_target(), (std::map<std::string, std::uint64_t>{{"b1", kT0 + 30'000}}));
}

TEST_F(EventStoreTest, HintsAreIsolatedPerTarget) {
  open();
  // "b1" is a prefix of "b10": their hints must not mix.
  ASSERT_TRUE(write_hint(*store_, "b1", batch_of("s", 0, keys_at(kT0, 3, 1))));
  ASSERT_TRUE(write_hint(*store_, "b10", batch_of("s", 0, keys_at(kT0 + 100, 2, 1))));
  ASSERT_TRUE(write_hint(*store_, "b10", batch_of("t", 7, keys_at(kT0, 4, 1))));
  EXPECT_EQ(store_->pending_hints(),
            (std::map<std::string, std::uint64_t>{{"b1", 3}, {"b10", 6}}));
  const auto b1 = all_hints(*store_, "b1");
  ASSERT_EQ(b1.size(), 1u);
  EXPECT_EQ(b1.at("s/0").size(), 3u);
  const auto b10 = all_hints(*store_, "b10");
  ASSERT_EQ(b10.size(), 2u);
  EXPECT_EQ(b10.at("s/0").size(), 2u);
  EXPECT_EQ(b10.at("t/7").size(), 4u);

  // Deleting b1's hints leaves b10's, even for the same keys.
  ASSERT_TRUE(store_->delete_hints("b10", batch_of("s", 0, keys_at(kT0, 3, 1))));
  EXPECT_EQ(store_->pending_hints().at("b1"), 3u);
  ASSERT_TRUE(store_->delete_hints("b1", batch_of("s", 0, keys_at(kT0, 3, 1))));
  EXPECT_EQ(store_->pending_hints(), (std::map<std::string, std::uint64_t>{{"b10", 6}}));
  EXPECT_TRUE(all_hints(*store_, "b1").empty());
  EXPECT_TRUE(all_hints(*store_, "nobody").empty());
}

TEST_F(EventStoreTest, RetriedHintIsStoredAndCountedOnce) {
  open();
  const auto keys = keys_at(kT0, 4, 1);
  ASSERT_TRUE(write_hint(*store_, "b2", batch_of("s", 1, keys)));
  ASSERT_TRUE(write_hint(*store_, "b2", batch_of("s", 1, keys)));
  EXPECT_EQ(store_->pending_hints().at("b2"), 4u);
  EXPECT_EQ(all_hints(*store_, "b2").at("s/1").size(), 4u);
}

TEST_F(EventStoreTest, HintsIgnoreSealedIntervalsAndBadTargetsAreRefused) {
  open();
  // Events in an interval that is long sealed would be refused by write(); a hint is not.
  ASSERT_TRUE(write(batch_of("s", 0, keys_at(kT0, 1, 1))));
  auto sealed = store_->seal_old_intervals(kT0 + 10 * kHour);
  ASSERT_TRUE(sealed);
  ASSERT_TRUE(write_hint(*store_, "b3", batch_of("s", 0, keys_at(kT0 + 5, 2, 1))));
  EXPECT_EQ(store_->pending_hints().at("b3"), 2u);

  EXPECT_EQ(write_hint(*store_, "", batch_of("s", 0, keys_at(kT0, 1, 1))).error().code,
            ErrorCode::kBadRequest);
  EXPECT_EQ(write_hint(*store_, std::string(256, 'x'), batch_of("s", 0, keys_at(kT0, 1, 1)))
                .error()
                .code,
            ErrorCode::kBadRequest);
  EXPECT_EQ(write_hint(*store_, "b3", batch_of("", 0, keys_at(kT0, 1, 1))).error().code,
            ErrorCode::kInvalidStream);
}

}  // namespace
}  // namespace alldata::storage
