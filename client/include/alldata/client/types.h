// Value types shared by the Producer, Scanner and Admin: commit levels, headers, events
// read back, and the connection settings every client object takes. Plain data, copyable;
// nothing here touches the network.
#pragma once

#include "alldata/protocol/commit_level.h"
#include "alldata/protocol/error.h"
#include "alldata/protocol/key.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
}

namespace alldata::client {

// How many replicas must hold a write before the broker acknowledges it: the protocol's
// CommitLevel (alldata/protocol/commit_level.h), with to_string() and parse_commit_level().
using alldata::CommitLevel;
using alldata::parse_commit_level;
using alldata::to_string;

// How many replicas of each partition a Scanner reads (see ScanOptions::consistency):
// ONE = one live replica, switching to the next on failure; QUORUM = floor(RF/2)+1
// replicas merged by key with duplicates removed (an event on any quorum of replicas is seen
// even if one replica lags).
enum class ReadConsistency : std::uint8_t { kOne = 0, kQuorum = 1 };

// "one", "quorum".
std::string_view to_string(ReadConsistency consistency) noexcept;
// Case-insensitive inverse of to_string(); kBadRequest naming the accepted words otherwise.
Result<ReadConsistency> parse_read_consistency(std::string_view text);

// An event header: a name and opaque bytes.
struct Header {
  std::string name;
  std::string value;

  friend bool operator==(const Header&, const Header&) = default;
};

// One event as read back by a Scanner.
struct Event {
  Key key;                     // unique in the cluster; byte order is time order
  std::uint32_t partition = 0; // the stream partition it is stored in
  std::string payload;         // opaque bytes
  std::vector<Header> headers;
};

// Splits "host:port[,host:port...]" and checks each address (a host, or [v6] in brackets,
// and a port 1..65535). kBadRequest on an empty list or a malformed address.
Result<std::vector<std::string>> parse_broker_list(std::string_view text);

// Connection settings of a Scanner or an Admin.
struct ClientConfig {
  // "host:port" of brokers to try, in order; any broker serves any request.
  std::vector<std::string> bootstrap;
  // Free text the broker puts in its logs.
  std::string client_id = "alldata-client";
  // Deadline for opening a session with one broker: name resolution, the TCP connect and
  // the hello exchange together (a broker that accepts but does not answer is given up
  // on as soon as one that refuses).
  std::chrono::milliseconds connect_timeout{10'000};
  // Deadline for one request's answer; past it the connection is dropped and, if the
  // retry budget allows, the request is sent again on the next broker.
  std::chrono::milliseconds request_timeout{30'000};
  // How long connection failures and retriable broker errors are retried, with back-off,
  // before the caller sees them. 0 = never retry.
  std::chrono::milliseconds retry_timeout{30'000};
  // Where the client logs connection changes (warn and info). nullptr = no logging.
  std::shared_ptr<spdlog::logger> logger;
};

// What a broker says about itself when a session starts (the hello answer).
struct BrokerInfo {
  std::string address;           // the "host:port" this client connected to
  std::string node_id;
  std::uint32_t protocol_version = 0;
  std::uint32_t partitions = 0;  // partitions per stream in the cluster
  std::uint32_t max_frame_bytes = 0;
  std::uint32_t max_event_bytes = 0;
  std::uint32_t max_key_skew_ms = 0;
  std::uint64_t origin = 0;      // the broker's origin id in keys it makes
};

}  // namespace alldata::client
