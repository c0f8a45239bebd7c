// `alldata repair`: one anti-entropy run on the broker named (Admin::repair): it compares
// every partition it holds a replica of with the other replicas and copies what either
// lacks. Shows the time spent on a terminal while it runs, then a summary.
#include "tool.h"

#include "alldata/client/admin.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

namespace alldata::tool {

namespace {

struct RepairOptions {
  ConnectOptions connect;
  std::string stream;
  std::string from;
  std::string to;
  int timeout_s = 3600;
  bool json = false;
};

// A time or key bound given as text, in ms; 0 when empty.
std::optional<std::uint64_t> time_bound(const std::string& text, const char* what) {
  if (text.empty()) return std::uint64_t{0};
  auto k = Key::parse(text);
  if (!k) {
    complain(what, k.error());
    return std::nullopt;
  }
  return k->time_ms();
}

std::string to_json(const client::RepairReport& r) {
  std::string out = "{";
  auto num = [&](const char* name, std::uint64_t v) {
    if (out.size() > 1) out.push_back(',');
    out += "\"" + std::string(name) + "\":" + std::to_string(v);
  };
  num("partitions", r.partitions);
  num("replica_pairs", r.pairs);
  num("replica_pairs_failed", r.pairs_failed);
  num("ranges_compared", r.ranges_compared);
  num("ranges_differed", r.ranges_differed);
  num("keys_listed", r.keys_listed);
  num("events_received", r.events_received);
  num("events_sent", r.events_sent);
  num("bytes_received", r.bytes_received);
  num("bytes_sent", r.bytes_sent);
  num("bytes_exchanged", r.bytes_exchanged);
  out += ",\"seconds\":" + std::to_string(r.seconds) + ",\"errors\":[";
  for (std::size_t i = 0; i < r.errors.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_json_string(out, r.errors[i]);
  }
  return out + "]}\n";
}

int run_repair(const RepairOptions& o) {
  auto bootstrap = bootstrap_or_complain(o.connect);
  if (!bootstrap) return 2;
  const auto from = time_bound(o.from, "--from");
  const auto to = time_bound(o.to, "--to");
  if (!from || !to) return 2;
  client::ClientConfig config;
  config.bootstrap = *bootstrap;
  config.client_id = o.connect.client_id;
  config.retry_timeout = std::chrono::seconds(5);
  config.request_timeout = std::chrono::seconds(o.timeout_s);
  config.logger = stderr_logger(o.connect.verbose);
  auto admin = client::Admin::connect(config);
  if (!admin) {
    complain("repair", admin.error());
    return 1;
  }
  // The broker answers when the run ends; meanwhile a terminal shows that it is running.
  std::atomic<bool> done{false};
  std::thread ticker([&] {
    if (!isatty(STDERR_FILENO)) return;
    const auto start = std::chrono::steady_clock::now();
    while (!done.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const auto s = std::chrono::duration_cast<std::chrono::seconds>(
          std::chrono::steady_clock::now() - start);
      std::fprintf(stderr, "\rrepairing on %s ... %llds ", (*admin)->broker().node_id.c_str(),
                   static_cast<long long>(s.count()));
    }
    std::fputs("\r\033[K", stderr);
  });
  auto report = (*admin)->repair(o.stream, *from, *to);
  done = true;
  ticker.join();
  if (!report) {
    complain("repair", report.error());
    return 1;
  }
  const auto& r = *report;
  if (o.json) {
    std::fputs(to_json(r).c_str(), stdout);
  } else {
    std::printf("repair on %s: %llu partitions, %llu replica pairs (%llu failed), %llu ranges "
                "compared, %llu differed, %llu keys listed\n"
                "received %llu events (%llu bytes), sent %llu events (%llu bytes), %llu bytes "
                "exchanged, %.2f s\n",
                (*admin)->broker().node_id.c_str(),
                static_cast<unsigned long long>(r.partitions),
                static_cast<unsigned long long>(r.pairs),
                static_cast<unsigned long long>(r.pairs_failed),
                static_cast<unsigned long long>(r.ranges_compared),
                static_cast<unsigned long long>(r.ranges_differed),
                static_cast<unsigned long long>(r.keys_listed),
                static_cast<unsigned long long>(r.events_received),
                static_cast<unsigned long long>(r.bytes_received),
                static_cast<unsigned long long>(r.events_sent),
                static_cast<unsigned long long>(r.bytes_sent),
                static_cast<unsigned long long>(r.bytes_exchanged), r.seconds);
    for (const auto& e : r.errors) std::printf("error: %s\n", e.c_str());
  }
  return r.pairs_failed > 0 ? 1 : 0;
}

}  // namespace

void register_repair(CLI::App& app, Runner& run) {
  auto o = std::make_shared<RepairOptions>();
  auto* cmd = app.add_subcommand(
      "repair",
      "Run anti-entropy repair on one broker (-b): it compares every partition it holds a "
      "replica of with each other live replica (digests per interval, then per sub-range, then "
      "keys) and copies to each side the events it lacks. Prints a summary; exit status 1 if "
      "a replica pair could not be compared.");
  add_connect_options(*cmd, o->connect);
  cmd->add_option("-s,--stream", o->stream, "Only this stream (default: every stream the broker holds)");
  cmd->add_option("--from", o->from, "TIME|KEY: from the interval holding this time (default: the oldest)");
  cmd->add_option("--to", o->to, "TIME|KEY: up to this time, exclusive (default: now)");
  cmd->add_option("--timeout", o->timeout_s, "Give up waiting for the broker after this many seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of the summary");
  cmd->callback([o, &run] { run = [o] { return run_repair(*o); }; });
}

}  // namespace alldata::tool
