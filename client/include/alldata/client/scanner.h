// The Scanner reads a key range of one stream back: every partition (one Scan request per
// partition, pipelined on one connection) merged into one stream in global key order, or a
// single partition (what a parallel batch job gives each of its workers). Reading is a
// synchronous pull in the caller's thread, in pages; cursor() says where to resume.
#pragma once

#include "alldata/client/types.h"
#include "alldata/protocol/error.h"
#include "alldata/protocol/key.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace alldata::client {

struct ScanOptions {
  std::string stream;
  // The key range [from, to). Key::at_time(t) turns a time into a bound; Key{} is the
  // beginning of time and Key::max() the end.
  Key from{};
  Key to = Key::max();
  // Read only this partition; without it every partition, merged in key order.
  std::optional<std::uint32_t> partition;
  // Page size asked of the broker per request (0 = the broker's default: 1000 events or
  // 1 MiB). The scanner keeps at most about two pages per partition in memory.
  std::uint32_t page_events = 0;
  std::uint32_t page_bytes = 0;
};

// Not thread-safe: one thread at a time. Lifecycle: open() connects; the object holds one
// connection until destroyed. Reads may lag writes: a range ending below the cluster's
// completeness watermark (Admin::metadata) holds everything that will ever be there.
class Scanner {
 public:
  // Connects to the first reachable bootstrap broker and checks the options.
  // Errors: kConnectionFailed (no broker reachable within config.retry_timeout),
  // kInvalidStream, kInvalidRange (from > to), kInvalidPartition.
  static Result<std::unique_ptr<Scanner>> open(ClientConfig config, ScanOptions options);

  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // The next event in key order, nullopt once the range is exhausted. Connection failures
  // and retriable broker errors are retried (on the next broker) within
  // config.retry_timeout; any other broker error is returned as is. After an error the
  // scanner stays failed: open a new one from cursor().
  Result<std::optional<Event>> next();

  // Up to `max_events` next events in key order; empty once the range is exhausted.
  Result<std::vector<Event>> next_page(std::size_t max_events = 1000);

  // Every event with a key below the cursor has been returned (and none at or above it):
  // a new Scanner with ScanOptions::from = cursor() and the same stream, `to` and
  // partition carries on exactly where this one stopped. Save it as Key::to_text().
  Key cursor() const;

  // The broker the scanner is connected to (its partition count and limits).
  const BrokerInfo& broker() const;

 private:
  class Impl;
  explicit Scanner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace alldata::client
