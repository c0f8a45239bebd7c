// `alldata scan`: a key range of a stream to stdout, in key order: raw payload lines or
// JSON lines with key, time, stream, partition, payload (and headers).
#include "interrupt.h"
#include "tool.h"

#include "alldata/client/admin.h"
#include "alldata/client/scanner.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace alldata::tool {

namespace {

struct ScanCliOptions {
  ConnectOptions connect;
  std::string stream;
  std::string from;
  std::string to;
  std::string format = "raw";
  std::uint32_t partition = 0;
  bool has_partition = false;
  std::uint64_t limit = 0;
  std::uint32_t page_events = 0;
  bool print_cursor = false;
  std::string consistency = "one";
  std::string replica;
  bool wait_complete = false;
  int wait_timeout_s = 600;
};

void format_jsonl(std::string& out, const std::string& stream, const client::Event& e) {
  out += "{\"key\":";
  append_json_string(out, e.key.to_text());
  out += ",\"time\":";
  append_json_string(out, format_time_ms(e.key.time_ms()));
  out.push_back(',');
  append_json_bytes(out, "stream", stream);
  out += ",\"partition\":";
  out += std::to_string(e.partition);
  out.push_back(',');
  append_json_bytes(out, "payload", e.payload);
  if (!e.headers.empty()) {
    out += ",\"headers\":[";
    for (std::size_t i = 0; i < e.headers.size(); ++i) {
      if (i > 0) out.push_back(',');
      out.push_back('{');
      append_json_bytes(out, "name", e.headers[i].name);
      out.push_back(',');
      append_json_bytes(out, "value", e.headers[i].value);
      out.push_back('}');
    }
    out.push_back(']');
  }
  out += "}\n";
}

std::uint64_t wall_now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// The time a scan ending at `to` needs the watermark to reach.
std::uint64_t needed_watermark(const Key& to) {
  return to == Key::at_time(to.time_ms()) ? to.time_ms() : to.time_ms() + 1;
}

// Waits until the cluster is complete up to `to` (a progress line on a terminal).
int wait_complete(const ScanCliOptions& o, const std::vector<std::string>& bootstrap, const Key& to) {
  auto admin = client::Admin::connect(admin_config(o.connect, bootstrap));
  if (!admin) {
    complain("scan --wait-complete", admin.error());
    return 1;
  }
  const std::uint64_t want = needed_watermark(to);
  const bool tty = isatty(STDERR_FILENO) != 0;
  bool shown = false;
  auto reached = (*admin)->wait_complete(want, std::chrono::seconds(o.wait_timeout_s), [&](std::uint64_t w) {
    if (!tty || w >= want) return;
    const std::string where = w == 0 ? std::string("not known yet")
                                     : format_time_ms(w) + ", " + std::to_string((want - w + 999) / 1000) +
                                           " s to go";
    std::fprintf(stderr, "\r\033[Kwaiting until the cluster is complete up to %s: watermark %s",
                 format_time_ms(want).c_str(), where.c_str());
    shown = true;
  });
  if (shown) std::fputs("\r\033[K", stderr);
  if (!reached) {
    complain("scan --wait-complete", reached.error());
    return 1;
  }
  if (o.connect.verbose) {
    std::fprintf(stderr, "alldata: the cluster is complete up to %s\n", format_time_ms(want).c_str());
  }
  return 0;
}

int run_scan(const ScanCliOptions& o) {
  auto bootstrap = bootstrap_or_complain(o.connect);
  if (!bootstrap) return 2;
  if (o.format != "raw" && o.format != "jsonl") {
    complain("--format", Error(ErrorCode::kBadRequest, "use raw or jsonl"));
    return 2;
  }
  client::ScanOptions options;
  options.stream = o.stream;
  if (!o.from.empty()) {
    auto k = Key::parse(o.from);
    if (!k) {
      complain("--from", k.error());
      return 2;
    }
    options.from = *k;
  }
  if (!o.to.empty()) {
    auto k = Key::parse(o.to);
    if (!k) {
      complain("--to", k.error());
      return 2;
    }
    options.to = *k;
  } else if (o.wait_complete) {
    options.to = Key::at_time(wall_now_ms());  // complete up to now: wait for it
  }
  if (o.has_partition) options.partition = o.partition;
  options.page_events = o.page_events;
  auto consistency = client::parse_read_consistency(o.consistency);
  if (!consistency) {
    complain("--consistency", consistency.error());
    return 2;
  }
  options.consistency = *consistency;
  options.replica = o.replica;
  if (!o.replica.empty() && options.consistency == client::ReadConsistency::kQuorum) {
    complain("--replica", Error(ErrorCode::kBadRequest,
                                "reads one broker's copy; it cannot be combined with "
                                "--consistency quorum"));
    return 2;
  }
  if (o.wait_complete) {
    if (options.to == Key::max()) {
      complain("--wait-complete", Error(ErrorCode::kBadRequest, "needs an end: --to TIME|KEY"));
      return 2;
    }
    if (int code = wait_complete(o, *bootstrap, options.to); code != 0) return code;
  }
  client::ClientConfig config;
  config.bootstrap = *bootstrap;
  config.client_id = o.connect.client_id;
  config.logger = stderr_logger(o.connect.verbose);
  // Ctrl-C ends the scan after the page in hand: what was printed is whole, and the cursor
  // (with --print-cursor) resumes right after it.
  InterruptWatch interrupt;
  auto scanner = client::Scanner::open(config, options);
  if (!scanner) {
    complain("scan", scanner.error());
    return 1;
  }
  static char stdout_buffer[1 << 20];
  std::setvbuf(stdout, stdout_buffer, _IOFBF, sizeof stdout_buffer);
  const bool raw = o.format == "raw";
  std::string out;
  std::uint64_t printed = 0;
  int code = 0;
  for (;;) {
    if (interrupt.interrupted()) {
      code = InterruptWatch::kExitStatus;
      break;
    }
    std::size_t want = 1000;
    if (o.limit != 0) want = static_cast<std::size_t>(std::min<std::uint64_t>(want, o.limit - printed));
    if (want == 0) break;
    auto page = (*scanner)->next_page(want);
    if (!page) {
      std::fflush(stdout);
      complain("scan", page.error());
      code = 1;
      break;
    }
    if (page->empty()) break;
    out.clear();
    for (const auto& e : *page) {
      if (raw) {
        out += e.payload;
        out.push_back('\n');
      } else {
        format_jsonl(out, o.stream, e);
      }
    }
    printed += page->size();
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) {
      std::perror("alldata: writing stdout");
      return 1;
    }
  }
  if (std::fflush(stdout) != 0) {
    std::perror("alldata: writing stdout");
    code = 1;
  }
  if (o.print_cursor) {
    std::fprintf(stderr, "cursor: %s\n", (*scanner)->cursor().to_text().c_str());
  }
  return code;
}

}  // namespace

void register_scan(CLI::App& app, Runner& run) {
  auto o = std::make_shared<ScanCliOptions>();
  auto* cmd = app.add_subcommand(
      "scan",
      "Print the events of a stream in the key range [from, to), in key order.\n"
      "TIME|KEY is a key (2026-11-28T06:29:43.123Z-00000-0123456789abcdef), a time\n"
      "(2026-11-28T06:29:43.123Z, 2026-11-28T06:29:43Z, 2026-11-28) or unix milliseconds.\n"
      "In a cluster each partition is read from its replicas (see --consistency, --replica),\n"
      "whichever broker -b names.");
  add_connect_options(*cmd, o->connect);
  cmd->add_option("-s,--stream", o->stream, "Stream to read")->required();
  cmd->add_option("--from", o->from, "TIME|KEY: first key (inclusive; default: the beginning)");
  cmd->add_option("--to", o->to, "TIME|KEY: end (exclusive; default: the end of time)");
  cmd->add_option("--format", o->format,
                  "raw: each payload as one line; jsonl: one JSON object per event with key, "
                  "time, stream, partition, payload (base64 plus payload_encoding when the "
                  "payload is not UTF-8) and headers")
      ->check(CLI::IsMember({"raw", "jsonl"}))
      ->capture_default_str();
  auto* partition = cmd->add_option("--partition", o->partition,
                                    "Read only this partition (default: all, merged)");
  cmd->add_option("--limit", o->limit, "Stop after this many events (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--page-events", o->page_events,
                  "Events per page asked of the broker (0 = the broker's default)");
  cmd->add_option("--consistency", o->consistency,
                  "one: read each partition from one live replica, switching to the next "
                  "replica if it fails; quorum: read each partition from floor(RF/2)+1 "
                  "replicas and merge them by key, each event once (an event on a quorum of "
                  "replicas is seen even if one replica lags)")
      ->transform(CLI::IsMember({"one", "quorum"}, CLI::ignore_case))
      ->capture_default_str();
  cmd->add_option("--replica", o->replica,
                  "NODE_ID: read every partition only from this broker's own copy, with no "
                  "failover (to check one replica; see `alldata cluster` for node ids)");
  cmd->add_flag("--wait-complete", o->wait_complete,
                "Before reading, wait until the cluster's completeness watermark reaches --to "
                "(default with this flag: now), so the scan returns every event that will "
                "ever be acknowledged in the range (about 90 s behind the clock with default "
                "settings; a progress line on a terminal)");
  cmd->add_option("--wait-timeout", o->wait_timeout_s,
                  "SECONDS: how long --wait-complete waits before it fails (exit 1)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--print-cursor", o->print_cursor,
                "At the end, print to stderr the key to resume from with --from");
  cmd->callback([o, partition, &run] {
    o->has_partition = partition->count() > 0;
    run = [o] { return run_scan(*o); };
  });
}

}  // namespace alldata::tool
