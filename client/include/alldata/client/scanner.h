// The Scanner reads a key range of one stream back: every partition merged into one stream
// in global key order, or a single partition (what a parallel batch job gives each of its
// workers). In a cluster it asks the bootstrap broker where each partition lives (metadata
// replica sets) and reads each partition from one live replica (or a quorum of replicas,
// merged), with one connection per broker shared by the partitions it serves, switching to
// the next replica when one fails. Reading is a synchronous pull in the caller's thread, in
// pages; cursor() says where to resume.
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
  // kOne: each partition from one replica (live ones first, in the cluster's preference
  // order); on a connection failure or a retriable error the partition carries on from its
  // own cursor on the next replica. kQuorum: each partition from floor(RF/2)+1 distinct
  // replicas at once, merged by key with duplicates removed, so an event stored on a quorum
  // of replicas is returned even if one replica lags; it fails when fewer replicas answer.
  ReadConsistency consistency = ReadConsistency::kOne;
  // Non-empty: a node id (as in Admin::metadata().members). Every partition is read from
  // that broker's own copy only, with no failover to other replicas: for checking one
  // replica. Excludes kQuorum. kBadRequest when the cluster has no such member.
  std::string replica;
};

// Not thread-safe: one thread at a time. Lifecycle: open() connects to a bootstrap broker
// and asks it for the stream's replica sets; the object holds at most one connection per
// broker it reads from until destroyed. A broker without replica sets (or a single broker)
// serves every partition itself, as its replica set is just itself. Reads may lag writes: a range ending below the cluster's
// completeness watermark (Admin::metadata) holds everything that will ever be there.
class Scanner {
 public:
  // Connects to the first reachable bootstrap broker, asks it for the stream's replica sets,
  // and checks the options. Errors: kConnectionFailed (no broker reachable within
  // config.retry_timeout), kInvalidStream, kInvalidRange (from > to), kInvalidPartition,
  // kBadRequest (unknown `replica`, or `replica` with kQuorum).
  static Result<std::unique_ptr<Scanner>> open(ClientConfig config, ScanOptions options);

  ~Scanner();
  Scanner(const Scanner&) = delete;
  Scanner& operator=(const Scanner&) = delete;

  // The next event in key order, nullopt once the range is exhausted. Connection failures
  // and retriable broker errors move the partition to its next replica; once every replica
  // of a partition failed, they are tried again with back-off until config.retry_timeout
  // has passed since the partition's first failure, then the error (the last failure's code)
  // names the partition and each replica tried with its failure. Any other broker error is
  // returned as is. After an error the scanner stays failed: open a new one from cursor().
  Result<std::optional<Event>> next();

  // Up to `max_events` next events in key order; empty once the range is exhausted.
  Result<std::vector<Event>> next_page(std::size_t max_events = 1000);

  // Every event with a key below the cursor has been returned (and none at or above it):
  // a new Scanner with ScanOptions::from = cursor() and the same stream, `to` and
  // partition carries on exactly where this one stopped. Save it as Key::to_text().
  Key cursor() const;

  // The bootstrap broker that answered the metadata (its partition count and limits).
  const BrokerInfo& broker() const;

 private:
  class Impl;
  explicit Scanner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace alldata::client
