// alldata-broker: runs one AllData broker until SIGTERM or SIGINT, then stops it cleanly
// (stop accepting, answer what is in flight, close storage: nothing acknowledged is lost).
#include "alldata/broker/broker.h"
#include "alldata/protocol/duration.h"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

namespace {

using alldata::broker::BrokerOptions;

// CLI11 validator-and-converter for durations such as 200ms, 1s, PT1H.
struct DurationOption {
  std::string text;
  std::chrono::milliseconds* out;
};

bool apply_duration(const std::string& name, const std::string& text, std::chrono::milliseconds& out) {
  if (text.empty()) return true;
  auto d = alldata::parse_duration(text);
  if (!d || d->count() <= 0) {
    std::cerr << "alldata-broker: --" << name << ": "
              << (d ? std::string("must be positive") : d.error().message) << "\n";
    return false;
  }
  out = *d;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  BrokerOptions o;
  CLI::App app{"alldata-broker: runs one AllData broker (an append-only event store node)."};
  app.set_config("--config", "", "Read options from a TOML/INI file (keys are the long option names)");
  std::string sync = "on", interval = "PT1H", idle = "10m", write_timeout = "30s",
              produce_timeout = "30s", skew = "60s", hello_timeout = "5s", evict_idle_after = "10s";
  std::string log_file, log_level = "info";
  app.add_option("--data-dir", o.data_dir, "Folder for this broker's data (created if missing)")
      ->required();
  app.add_option("--client-listen", o.client_listen, "HOST:PORT for clients; port 0 = any free port")
      ->capture_default_str();
  app.add_option("--peer-listen", o.peer_listen,
                 "HOST:PORT for other brokers (replication, hints); port 0 = any free port");
  std::string gossip_interval = "1s", replica_timeout = "5s", seeds;
  app.add_option("--gossip-listen", o.gossip_listen,
                 "HOST:PORT for membership (UDP, and TCP on the same port); makes this broker a cluster "
                 "member (needs --peer-listen)");
  app.add_option("--seeds", seeds,
                 "Membership HOST:PORT of brokers to join through, comma-separated (the same list on every broker)");
  app.add_option("--cluster-name", o.cluster_name, "Brokers of another cluster name are refused")
      ->capture_default_str();
  app.add_option("--zone", o.zone, "Zone of this broker, for placement")->capture_default_str();
  app.add_option("--region", o.region, "Region of this broker, for placement")->capture_default_str();
  app.add_option("--replication-factor", o.replication_factor, "Copies of every event (cluster-wide)")
      ->capture_default_str();
  app.add_option("--other-zone-replicas", o.other_zone_replicas,
                 "Of those copies, how many in distinct other zones")->capture_default_str();
  app.add_option("--other-region-replicas", o.other_region_replicas,
                 "Of those copies, how many in distinct other regions")->capture_default_str();
  std::string reap_after = "24h";
  app.add_option("--gossip-interval", gossip_interval,
                 "Membership protocol period (one probe per period; other timers scale with it)")
      ->capture_default_str();
  app.add_option("--reap-after", reap_after,
                 "Forget dead, left and removed members after this (left and removed node ids are then refused for 7 days)")
      ->capture_default_str();
  app.add_option("--max-members", o.max_members, "Members at most (and refused node ids at most)")
      ->capture_default_str();
  app.add_option("--replica-timeout", replica_timeout,
                 "A replica write taking longer is replaced by a hint on the next broker")
      ->capture_default_str();
  std::string repair_interval = "10m";
  app.add_option("--repair-interval", repair_interval,
                 "Run anti-entropy repair this often in the background (0: only on demand)")
      ->capture_default_str();
  app.add_option("--repair-bytes-per-sec", o.repair_bytes_per_sec,
                 "Copy at most this many event bytes per second during repair (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-hint-bytes-per-node", o.max_hint_bytes_per_node,
                 "Hints held for one other broker, in bytes at most; past it the copy is left to "
                 "repair (0: no bound)")
      ->capture_default_str();
  app.add_option("--node-id", o.node_id, "Name of this broker (default: the stored one, or new)");
  app.add_option("--replace", o.replace,
                 "NODE_ID: take over the node id of a broker lost for good, with an empty --data-dir: "
                 "refused unless the seeds know NODE_ID and hold it dead; its partitions are pulled "
                 "from the other replicas before this broker owns them");
  app.add_option("--sync", sync, "on: acknowledge after the WAL is fsynced; off: after write()")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--partition-interval", interval,
                 "Length of a storage interval, ISO-8601 (PT1H, PT15M, P1D) or 1h, 15m")
      ->capture_default_str();
  app.add_option("--partitions", o.partitions, "Partitions per stream")->capture_default_str();
  app.add_option("--ready-file", o.ready_file,
                 "Write 'client=HOST:PORT' here once listening (for scripts and tests)");
  app.add_option("--log-file", log_file, "Log here instead of stderr");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--max-frame-bytes", o.max_frame_bytes, "Refuse frames longer than this")
      ->capture_default_str();
  app.add_option("--max-event-bytes", o.max_event_bytes, "Refuse events (payload + headers) larger than this")
      ->capture_default_str();
  app.add_option("--nesting-limit", o.nesting_limit, "Cap'n Proto nesting limit for requests")
      ->capture_default_str();
  app.add_option("--max-in-flight", o.max_in_flight, "Requests in progress per connection")
      ->capture_default_str();
  app.add_option("--max-connection-buffer-bytes", o.max_connection_buffer_bytes,
                 "Bytes one connection may hold (requests in progress, unsent answers, scan "
                 "pages being read); past it the broker waits for the client to read")
      ->check(CLI::Range(std::uint64_t{1} << 20, std::uint64_t{1} << 34))
      ->capture_default_str();
  app.add_option("--max-connections", o.max_connections,
                 "Sessions (connections past hello) at most; one more replaces the session idle "
                 "the longest (idle --evict-idle-after or more) or is refused")
      ->capture_default_str();
  app.add_option("--evict-idle-after", evict_idle_after,
                 "A session idle this long may lose its slot to a new one past --max-connections")
      ->capture_default_str();
  app.add_option("--max-pending-connections", o.max_pending_connections,
                 "Connections not past hello at most; one more closes the oldest of them")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--hello-timeout", hello_timeout, "Close connections that send no hello this long")
      ->capture_default_str();
  app.add_option("--idle-timeout", idle, "Close connections idle this long")->capture_default_str();
  app.add_option("--write-timeout", write_timeout, "Drop clients that take no data this long")
      ->capture_default_str();
  app.add_option("--produce-timeout", produce_timeout, "Default timeout of a produce")
      ->capture_default_str();
  app.add_option("--max-key-skew", skew, "Refuse client keys this far from the broker's clock")
      ->capture_default_str();
  std::string min_free = "auto";
  app.add_option("--min-free-disk-bytes", min_free,
                 "Refuse writes while the data folder's file system has less free space than "
                 "this (reads go on; writes resume once there is room); auto: 5% of it, at "
                 "most 1 GiB; 0: no check")
      ->capture_default_str();
  app.add_option("--io-threads", o.io_threads, "Threads serving connections")->capture_default_str();
  app.add_option("--storage-threads", o.storage_threads, "Threads for storage reads")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  o.sync = sync == "on";
  if (min_free != "auto") {
    try {
      std::size_t used = 0;
      o.min_free_disk_bytes = std::stoull(min_free, &used);
      if (used != min_free.size()) throw std::invalid_argument(min_free);
    } catch (const std::exception&) {
      std::cerr << "alldata-broker: --min-free-disk-bytes: '" << min_free << "' is not a number of bytes or auto\n";
      return 2;
    }
  }
  for (std::size_t start = 0; start < seeds.size();) {
    auto comma = seeds.find(',', start);
    if (comma == std::string::npos) comma = seeds.size();
    if (comma > start) o.seeds.push_back(seeds.substr(start, comma - start));
    start = comma + 1;
  }
  if (!apply_duration("partition-interval", interval, o.partition_interval) ||
      !apply_duration("idle-timeout", idle, o.idle_timeout) ||
      !apply_duration("hello-timeout", hello_timeout, o.hello_timeout) ||
      !apply_duration("evict-idle-after", evict_idle_after, o.evict_idle_after) ||
      !apply_duration("write-timeout", write_timeout, o.write_timeout) ||
      !apply_duration("produce-timeout", produce_timeout, o.produce_timeout) ||
      !apply_duration("max-key-skew", skew, o.max_key_skew) ||
      !apply_duration("gossip-interval", gossip_interval, o.gossip_interval) ||
      !apply_duration("reap-after", reap_after, o.reap_after) ||
      !apply_duration("replica-timeout", replica_timeout, o.replica_timeout) ||
      (repair_interval == "0" ? (o.repair_interval = std::chrono::milliseconds(0), false)
                              : !apply_duration("repair-interval", repair_interval, o.repair_interval))) {
    return 2;
  }

  spdlog::sink_ptr sink;
  try {
    if (log_file.empty()) {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file);
    }
  } catch (const spdlog::spdlog_ex& e) {
    std::cerr << "alldata-broker: cannot open log: " << e.what() << "\n";
    return 2;
  }
  auto logger = std::make_shared<spdlog::logger>("broker", sink);
  logger->set_level(spdlog::level::from_str(log_level));
  logger->flush_on(spdlog::level::info);

  std::signal(SIGPIPE, SIG_IGN);
  // Registered before any broker thread starts; the handler runs on this (main) thread.
  boost::asio::io_context signals_io;
  boost::asio::signal_set signals(signals_io, SIGINT, SIGTERM);

  auto broker = alldata::broker::Broker::start(o, logger);
  if (!broker) {
    logger->error("cannot start: {}", broker.error().to_string());
    return 1;
  }
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    logger->info("signal {} received: stopping", signo);
    (*broker)->stop();
  });
  // After a decommission the broker has left the cluster: the process ends (status 0).
  (*broker)->on_exit_request([&] { boost::asio::post(signals_io, [&] { signals.cancel(); }); });
  signals_io.run();
  (*broker)->stop();  // idempotent: returns once stopped
  return 0;
}
