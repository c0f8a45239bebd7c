// Everything a user can set on a broker. `alldata-broker` fills this from flags and an
// optional config file; tests fill it directly.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace alldata::broker {

struct BrokerOptions {
  // Folder for the broker's RocksDB instance and its identity; created if missing.
  std::string data_dir;
  // host:port for clients; port 0 lets the OS choose (see Broker::client_endpoint()).
  std::string client_listen = "127.0.0.1:7400";
  // host:port for other brokers (replication, hints); empty = no peer listener.
  std::string peer_listen;
  // host:port for membership (UDP datagrams, and TCP for full-state exchanges, on the same
  // port number); empty = a single broker (no cluster). A cluster member needs peer_listen.
  std::string gossip_listen;
  // Membership addresses of brokers to join through. Every seed is retried (1 s doubling to
  // 30 rounds) until reached, so groups that started apart merge; give every broker the
  // same list, and a few brokers (3 or 5) as seeds.
  std::vector<std::string> seeds;
  // Brokers of another cluster name are refused.
  std::string cluster_name = "alldata";
  // Where this broker runs, for placement: replicas go to distinct zones and regions.
  std::string zone = "zone-1";
  std::string region = "region-1";
  // Copies of every event (cluster-wide: members with another value are refused).
  std::uint32_t replication_factor = 3;
  // Of those copies, how many in distinct other zones, and in distinct other regions.
  std::uint32_t other_zone_replicas = 0;
  std::uint32_t other_region_replicas = 0;
  // The membership protocol period: one probe per period; every other membership timer
  // (probe timeout, gossip, suspicion, push-pull) is a multiple of it (broker/README.md).
  std::chrono::milliseconds gossip_interval = std::chrono::seconds(1);
  // Dead, left and removed members are dropped from the member list after this; the node
  // ids of left and removed ones are then refused for a week.
  std::chrono::milliseconds reap_after = std::chrono::hours(24);
  // Members (and, separately, refused node ids) at most.
  std::uint32_t max_members = 10000;
  // One replica write may take this long before a hint on the next broker replaces it.
  std::chrono::milliseconds replica_timeout = std::chrono::seconds(5);
  // Anti-entropy repair runs this often in the background (0: only on demand), copying at
  // most this many event bytes per second (0: no limit). broker/README.md, "Anti-entropy".
  std::chrono::milliseconds repair_interval = std::chrono::minutes(10);
  // Hints this broker holds for one other broker, in bytes at most; past it a copy for that
  // broker goes to the next one of the failover order, or is left to repair (0: no bound).
  std::uint64_t max_hint_bytes_per_node = 1ull << 30;
  std::uint64_t repair_bytes_per_sec = 64u << 20;
  // Stable name of the broker; empty = the one stored in data_dir, or a new one.
  std::string node_id;
  // Take over the node id of a broker that is dead for good (its disk or machine lost):
  // needs an empty data_dir and seeds; refused unless the cluster knows that id and holds
  // it dead. The broker then pulls that id's partitions before it owns them.
  std::string replace;
  // Acknowledge writes only after the WAL is fsynced (on by default).
  bool sync = true;
  // Length of one storage interval (one RocksDB column family).
  std::chrono::milliseconds partition_interval = std::chrono::hours(1);
  // Partitions per stream.
  std::uint32_t partitions = 16;
  // Frames longer than this are refused before anything is allocated.
  std::uint32_t max_frame_bytes = 16u << 20;
  // Cap'n Proto nesting limit for decoding requests (traversal limit follows frame size).
  int nesting_limit = 16;
  // One event's payload plus headers may not exceed this.
  std::uint32_t max_event_bytes = 1u << 20;
  // Requests a connection may have in progress; more wait (TCP back-pressure).
  std::uint32_t max_in_flight = 128;
  // Bytes one connection may hold: requests read and not yet answered, answers not yet
  // taken by the client, and room reserved for scan pages being read. Past it the broker
  // reads no more requests and starts no more scan pages on that connection, so a client
  // that never reads its answers costs at most this (plus one frame and one page).
  std::uint64_t max_connection_buffer_bytes = 32u << 20;
  // A connection with nothing to do for this long is closed.
  std::chrono::milliseconds idle_timeout = std::chrono::minutes(10);
  // A connection that has not completed hello this long after it was accepted is closed.
  std::chrono::milliseconds hello_timeout = std::chrono::seconds(5);
  // A client that does not take a response for this long is disconnected.
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  // Default produce timeout when a request gives none.
  std::chrono::milliseconds produce_timeout = std::chrono::seconds(30);
  // Client keys more than this from the broker's clock are refused.
  std::chrono::milliseconds max_key_skew = std::chrono::seconds(60);
  // Sessions (connections past hello) at once, on the client and peer listeners together.
  // A hello past it takes the place of the session idle the longest (idle for
  // evict_idle_after at least, client sessions before peer ones) or is refused with
  // `overloaded`.
  std::uint32_t max_connections = 10000;
  std::chrono::milliseconds evict_idle_after = std::chrono::seconds(10);
  // Connections not past hello yet, at once; one more closes the oldest of them. Each also
  // lives at most hello_timeout, so idle or silent sockets never lock sessions out.
  std::uint32_t max_pending_connections = 1000;
  // Threads running connections (each its own io_context) and threads for storage reads.
  std::uint32_t io_threads = 2;
  std::uint32_t storage_threads = 2;
  // Bytes of produce data queued for the storage writer; past it produce answers Overloaded.
  std::uint64_t max_write_queue_bytes = 256u << 20;
  // While the data folder's file system has less free space than this, writes (produce,
  // replicas, hints, repair) are refused with a "disk full" storage error and reads go on;
  // writes resume by themselves once there is room. kAutoMinFreeDisk: 5% of the file
  // system, at most 1 GiB. 0: no check.
  static constexpr std::uint64_t kAutoMinFreeDisk = UINT64_MAX;
  std::uint64_t min_free_disk_bytes = kAutoMinFreeDisk;
  // If set, written (atomically) once the broker listens: "client=HOST:PORT\n", then
  // "peer=HOST:PORT\n" when there is a peer listener, "gossip=HOST:PORT\n" in a cluster.
  std::string ready_file;
};

}  // namespace alldata::broker
