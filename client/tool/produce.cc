// `alldata produce`: one event per input line (stdin or files), through one Producer.
// Memory stays bounded however long the input is: the producer's buffer applies
// back-pressure to the reading loop. Exits non-zero unless every event was acknowledged.
#include "tool.h"

#include "alldata/client/producer.h"
#include "alldata/protocol/duration.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

namespace alldata::tool {

namespace {

struct ProduceOptions {
  ConnectOptions connect;
  std::string stream;
  std::string partition_key;
  bool has_partition_key = false;
  std::string commit_level = "QUORUM";
  std::string acks_path;
  std::vector<std::string> files;
  int linger_ms = 5;
  std::string delivery_timeout = "50s";
};

// Outcome counters. Callbacks run on the producer's one I/O thread; send() errors come
// from the reading thread; the mutex guards the error table both write.
struct Outcomes {
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> failed{0};
  std::FILE* acks = nullptr;
  std::mutex mu;
  std::map<ErrorCode, std::pair<std::uint64_t, std::string>> errors;

  void record(const Error& e) {
    failed.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mu);
    auto& slot = errors[e.code];
    if (slot.first++ == 0) slot.second = e.to_string();
  }
};

int run_produce(const ProduceOptions& o) {
  auto maybe_config = producer_config_or_complain(o.connect, o.commit_level, o.linger_ms);
  if (!maybe_config) return 2;
  auto delivery = parse_duration(o.delivery_timeout);
  if (!delivery) {
    complain("--delivery-timeout", delivery.error());
    return 2;
  }
  client::ProducerConfig config = std::move(*maybe_config);
  config.delivery_timeout = *delivery;
  config.request_timeout = std::min(config.request_timeout, *delivery / 2);
  auto producer = client::Producer::create(config);
  if (!producer) {
    complain("produce", producer.error());
    return 2;
  }

  Outcomes out;
  if (!o.acks_path.empty()) {
    out.acks = std::fopen(o.acks_path.c_str(), "w");
    if (out.acks == nullptr) {
      std::perror(("alldata: cannot write " + o.acks_path).c_str());
      return 2;
    }
    static char acks_buffer[1 << 16];
    std::setvbuf(out.acks, acks_buffer, _IOFBF, sizeof acks_buffer);
  }

  // Progress on a terminal, once a second.
  std::atomic<std::uint64_t> sent{0};
  std::mutex progress_mu;
  std::condition_variable progress_cv;
  bool done = false;
  std::thread progress;
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  if (tty) {
    progress = std::thread([&] {
      std::unique_lock lock(progress_mu);
      while (!progress_cv.wait_for(lock, std::chrono::seconds(1), [&] { return done; })) {
        std::fprintf(stderr, "\r%llu sent, %llu acknowledged, %llu failed ",
                     static_cast<unsigned long long>(sent.load()),
                     static_cast<unsigned long long>(out.acked.load()),
                     static_cast<unsigned long long>(out.failed.load()));
      }
    });
  }

  client::SendOptions send_options;
  if (o.has_partition_key) send_options.partition_key = o.partition_key;
  std::vector<std::string> files = o.files;
  if (files.empty()) files.push_back("-");
  char* line = nullptr;
  std::size_t capacity = 0;
  std::uint64_t line_no = 0;
  std::optional<Error> stopped;  // sending stopped; the rest of the input is only counted
  std::uint64_t not_sent = 0;
  int exit_code = 0;
  for (const auto& path : files) {
    std::FILE* in = path == "-" ? stdin : std::fopen(path.c_str(), "r");
    if (in == nullptr) {
      std::perror(("alldata: cannot read " + path).c_str());
      exit_code = 2;
      break;
    }
    ssize_t n;
    while ((n = ::getline(&line, &capacity, in)) >= 0) {
      std::string_view payload(line, static_cast<std::size_t>(n));
      if (!payload.empty() && payload.back() == '\n') payload.remove_suffix(1);
      const std::uint64_t number = ++line_no;
      if (stopped) {
        ++not_sent;
        continue;
      }
      Outcomes* outcomes = &out;
      auto key = (*producer)->send(o.stream, payload, send_options,
                                   [outcomes, number](const Result<Key>& r) {
                                     if (!r) {
                                       outcomes->record(r.error());
                                       return;
                                     }
                                     outcomes->acked.fetch_add(1, std::memory_order_relaxed);
                                     if (outcomes->acks != nullptr) {
                                       std::fprintf(outcomes->acks, "%llu %s\n",
                                                    static_cast<unsigned long long>(number),
                                                    r->to_text().c_str());
                                     }
                                   });
      sent.fetch_add(1, std::memory_order_relaxed);
      if (!key) {
        out.record(key.error());
        // With no broker reachable, sends fail at once (and work again once one is back);
        // a full buffer means a stuck cluster: stop sending, count the rest of the input.
        const auto c = key.error().code;
        if (c == ErrorCode::kBufferFull || c == ErrorCode::kClosed) stopped = key.error();
      }
    }
    if (in != stdin) std::fclose(in);
  }
  std::free(line);
  auto closed = (*producer)->close();
  (void)closed;  // every failure already reached a callback and the table
  if (tty) {
    {
      std::lock_guard lock(progress_mu);
      done = true;
    }
    progress_cv.notify_all();
    progress.join();
    std::fputs("\r\033[K", stderr);
  }
  if (out.acks != nullptr && std::fclose(out.acks) != 0) {
    std::perror(("alldata: cannot write " + o.acks_path).c_str());
    exit_code = 2;
  }
  const auto acked = out.acked.load();
  const auto failed = out.failed.load() + not_sent;
  std::fprintf(stderr, "%llu events acknowledged, %llu not acknowledged\n",
               static_cast<unsigned long long>(acked), static_cast<unsigned long long>(failed));
  for (const auto& [code, entry] : out.errors) {
    std::fprintf(stderr, "  %llu x %s\n", static_cast<unsigned long long>(entry.first),
                 entry.second.c_str());
  }
  if (not_sent > 0) {
    std::fprintf(stderr, "  %llu x not sent: sending stopped after %s\n",
                 static_cast<unsigned long long>(not_sent),
                 std::string(to_string(stopped->code)).c_str());
  }
  if (failed > 0) return 1;
  return exit_code;
}

}  // namespace

void register_produce(CLI::App& app, Runner& run) {
  auto o = std::make_shared<ProduceOptions>();
  auto* cmd = app.add_subcommand(
      "produce",
      "Append one event per input line (stdin, or the given files) to a stream.\n"
      "The trailing newline is not stored. Exits 1 unless every event was acknowledged.");
  add_connect_options(*cmd, o->connect);
  cmd->add_option("-s,--stream", o->stream, "Stream to append to")->required();
  auto* key_option = cmd->add_option("--partition-key", o->partition_key,
                                     "Partition key for every event (default: sticky round "
                                     "robin over the partitions)");
  cmd->add_option("--commit-level", o->commit_level, "ANY, ONE, QUORUM or ALL")
      ->capture_default_str();
  cmd->add_option("--acks", o->acks_path,
                  "Write '<input line number> <key>' for each acknowledged event to FILE");
  cmd->add_option("--linger-ms", o->linger_ms, "How long a batch waits for more events")
      ->capture_default_str();
  cmd->add_option("--delivery-timeout", o->delivery_timeout,
                  "Give up on an event after this long (e.g. 30s, 2m)")
      ->capture_default_str();
  cmd->add_option("files", o->files, "Input files ('-' = stdin; default stdin)");
  cmd->callback([o, key_option, &run] {
    o->has_partition_key = key_option->count() > 0;
    run = [o] { return run_produce(*o); };
  });
}

}  // namespace alldata::tool
