// The EventStore test fixture: a fresh temporary folder per test, a real RocksDB, writes
// that wait with a deadline, and scans that check that pages join up.
#pragma once

#include "alldata/storage/event_store.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace alldata::storage {

using namespace std::chrono_literals;

constexpr auto kDeadline = 30s;
constexpr std::uint64_t kHour = 3'600'000;

// 2026-11-28T05:00:00Z
inline const std::uint64_t kT0 = parse_time_ms("2026-11-28T05:00:00Z").value();

struct Event {
  Key key;
  std::string payload;
  std::vector<std::pair<std::string, std::string>> headers;

  friend bool operator==(const Event&, const Event&) = default;
};

inline std::string payload_for(const Key& key) { return "payload " + key.to_text(); }

inline EventBatch batch_of(std::string_view stream, std::uint32_t partition,
                    const std::vector<Key>& keys) {
  EventBatch b(stream, partition);
  for (const auto& k : keys) b.add(k, payload_for(k));
  return b;
}

inline std::vector<Key> keys_at(std::uint64_t first_ms, std::size_t n, std::uint64_t step_ms,
                         std::uint64_t origin = 7) {
  std::vector<Key> keys;
  for (std::size_t i = 0; i < n; ++i) keys.push_back(Key::make(first_ms + i * step_ms, 0, origin));
  return keys;
}

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "alldata-storage-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    logger_ = std::make_shared<spdlog::logger>("storage-test",
                                               std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger_->set_level(spdlog::level::warn);
  }

  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Options options() const {
    Options o;
    o.path = (dir_ / "db").string();
    o.logger = logger_;
    return o;
  }

  void open(Options o) {
    store_.reset();
    auto r = EventStore::open(std::move(o));
    ASSERT_TRUE(r) << r.error().to_string();
    store_ = std::move(*r);
  }
  void open() { open(options()); }

  // Writes and waits for the completion, with a deadline.
  static Status write(EventStore& store, EventBatch batch) {
    auto promise = std::make_shared<std::promise<Status>>();
    auto future = promise->get_future();
    store.write(std::move(batch), [promise](Status s) { promise->set_value(std::move(s)); });
    if (future.wait_for(kDeadline) != std::future_status::ready) {
      return Error(ErrorCode::kTimeout, "write did not complete in time");
    }
    return future.get();
  }
  Status write(EventBatch batch) { return write(*store_, std::move(batch)); }

  // Reads [from, to) page by page; checks that pages join up.
  std::vector<Event> scan_all(std::string_view stream, std::uint32_t partition, Key from = Key(),
                              Key to = Key::max(), std::size_t page_events = 1000,
                              std::size_t page_bytes = 1u << 20, std::size_t* pages = nullptr) {
    std::vector<Event> out;
    ScanQuery q;
    q.stream = std::string(stream);
    q.partition = partition;
    q.from = from;
    q.to = to;
    q.max_events = page_events;
    q.max_bytes = page_bytes;
    for (std::size_t n = 1;; ++n) {
      auto page = store_->scan(q);
      EXPECT_TRUE(page) << page.error().to_string();
      if (!page) return out;
      EXPECT_LE(page->events.size(), page_events);
      for (const auto& e : page->events) {
        EXPECT_EQ(e.partition, partition);
        Event copy{e.key, std::string(e.payload), {}};
        for (const auto& h : e.headers) copy.headers.emplace_back(h.name, h.value);
        out.push_back(std::move(copy));
      }
      if (page->done) {
        if (pages) *pages = n;
        return out;
      }
      EXPECT_FALSE(page->events.empty()) << "a page that is not done must make progress";
      q.from = page->next_from;
      if (n > 1'000'000) {
        ADD_FAILURE() << "scan does not end";
        return out;
      }
    }
  }

  static std::vector<Key> keys_of(const std::vector<Event>& events) {
    std::vector<Key> keys;
    for (const auto& e : events) keys.push_back(e.key);
    return keys;
  }

  std::filesystem::path dir_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<EventStore> store_;
};

}  // namespace alldata::storage
