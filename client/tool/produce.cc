// `alldata produce`: one event per input line (stdin or files), through one Producer.
// Memory stays bounded however long the input is: the producer's buffer applies
// back-pressure to the reading loop. Exits non-zero unless every event was acknowledged;
// Ctrl-C stops reading, gives what is in flight a few seconds, and exits 130.
#include "interrupt.h"
#include "line_input.h"
#include "tool.h"

#include "alldata/client/producer.h"
#include "alldata/protocol/duration.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

// How long events in flight may still be acknowledged after Ctrl-C.
constexpr std::chrono::seconds kInterruptGrace{5};

// The --acks file, written with write(2) in blocks of whole lines only, so that whatever
// ends the process (a second Ctrl-C, kill -9) leaves it ending at the end of a line.
// Thread-safe.
class AckLog {
 public:
  ~AckLog() { close(); }
  // False (errno set) if the file cannot be created.
  bool open(const std::string& path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return fd_ >= 0;
  }
  bool is_open() const { return fd_ >= 0; }
  void add(std::uint64_t line, const Key& key) {
    std::lock_guard lock(mu_);
    pending_ += std::to_string(line);
    pending_ += ' ';
    pending_ += key.to_text();
    pending_ += '\n';
    if (pending_.size() >= kBlockBytes) write_out();
  }
  // Writes what is left and closes; false (errno set) if any write failed.
  bool close() {
    std::lock_guard lock(mu_);
    if (fd_ < 0) return !failed_;
    write_out();
    if (::close(fd_) != 0 && !failed_) {
      failed_ = true;
      error_ = errno;
    }
    fd_ = -1;
    errno = error_;
    return !failed_;
  }

 private:
  static constexpr std::size_t kBlockBytes = 64u << 10;
  void write_out() {
    std::size_t done = 0;
    while (done < pending_.size() && !failed_) {
      const ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failed_ = true;
        error_ = errno;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    pending_.clear();
  }
  int fd_ = -1;
  std::mutex mu_;
  std::string pending_;
  bool failed_ = false;
  int error_ = 0;
};

// Outcome counters. Callbacks run on the producer's one I/O thread; send() errors come
// from the reading thread; the mutex guards the error table both write.
struct Outcomes {
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> unknown{0};  // in flight when Ctrl-C's grace ran out
  const std::atomic<bool>* interrupted = nullptr;
  AckLog acks;
  std::mutex mu;
  std::map<ErrorCode, std::pair<std::uint64_t, std::string>> errors;

  void record(const Error& e) {
    if (e.code == ErrorCode::kClosed && interrupted != nullptr && interrupted->load()) {
      unknown.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    failed.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mu);
    auto& slot = errors[e.code];
    if (slot.first++ == 0) slot.second = e.to_string();
  }
};

// Sends every line of `in` as one event; counts lines in `line_no`. Sets `stopped` when
// the producer refuses more (a stuck cluster, or closed by Ctrl-C).
void send_lines(LineInput& in, client::Producer& producer, const ProduceOptions& o,
                const client::SendOptions& send_options, Outcomes& out,
                std::atomic<std::uint64_t>& sent, std::uint64_t& line_no,
                std::optional<Error>& stopped) {
  while (auto payload = in.next()) {
    const std::uint64_t number = ++line_no;
    Outcomes* outcomes = &out;
    auto key = producer.send(o.stream, *payload, send_options,
                             [outcomes, number](const Result<Key>& r) {
                               if (!r) {
                                 outcomes->record(r.error());
                                 return;
                               }
                               outcomes->acked.fetch_add(1, std::memory_order_relaxed);
                               if (outcomes->acks.is_open()) outcomes->acks.add(number, *r);
                             });
    if (!key && key.error().code == ErrorCode::kClosed && out.interrupted->load()) {
      --line_no;  // Ctrl-C closed the producer: this line was not sent
      return;
    }
    sent.fetch_add(1, std::memory_order_relaxed);
    if (!key) {
      out.record(key.error());
      // With no broker reachable, sends fail at once (and work again once one is back);
      // a full buffer means a stuck cluster: stop sending, count the rest of the input.
      const auto c = key.error().code;
      if (c == ErrorCode::kBufferFull || c == ErrorCode::kClosed) {
        stopped = key.error();
        return;
      }
    }
  }
}

// Counts the lines left in `in` (sending stopped): they were not sent.
std::uint64_t count_rest(LineInput& in) {
  std::uint64_t n = 0;
  while (in.next()) ++n;
  return n;
}

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

  Outcomes out;
  if (!o.acks_path.empty() && !out.acks.open(o.acks_path)) {
    std::perror(("alldata: cannot write " + o.acks_path).c_str());
    return 2;
  }
  // Before any thread starts, so that every thread leaves Ctrl-C to the watcher.
  InterruptWatch interrupt;
  const std::atomic<bool>* interrupted = &interrupt.flag();
  out.interrupted = interrupted;
  auto producer = client::Producer::create(config);
  if (!producer) {
    complain("produce", producer.error());
    return 2;
  }
  // Ctrl-C: stop reading; events in flight get a few seconds (a send() blocked on a full
  // buffer returns at once), then whatever is left is unknown.
  interrupt.on_first([&p = **producer] { p.close(kInterruptGrace); });

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
  std::uint64_t line_no = 0;
  std::optional<Error> stopped;  // sending stopped; the rest of the input is only counted
  std::uint64_t not_sent = 0;
  int exit_code = 0;
  for (const auto& path : files) {
    const int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::perror(("alldata: cannot read " + path).c_str());
      exit_code = 2;
      break;
    }
    LineInput in(fd, *interrupted);
    if (!stopped) send_lines(in, **producer, o, send_options, out, sent, line_no, stopped);
    if (stopped && !interrupted->load()) not_sent += count_rest(in);
    if (in.error() != 0) {
      std::fprintf(stderr, "alldata: cannot read %s: %s\n", path.c_str(), std::strerror(in.error()));
      exit_code = 2;
    }
    if (fd != STDIN_FILENO) ::close(fd);
    if (interrupted->load()) break;
  }
  auto closed = (*producer)->close(interrupted->load() ? kInterruptGrace
                                                       : std::chrono::milliseconds::max());
  (void)closed;  // every failure already reached a callback and the table
  interrupt.finish();  // its callback used the producer
  if (tty) {
    {
      std::lock_guard lock(progress_mu);
      done = true;
    }
    progress_cv.notify_all();
    progress.join();
    std::fputs("\r\033[K", stderr);
  }
  if (!out.acks.close()) {
    std::perror(("alldata: cannot write " + o.acks_path).c_str());
    exit_code = 2;
  }
  const auto acked = out.acked.load();
  const auto unknown = out.unknown.load();
  const auto failed = out.failed.load() + not_sent;
  std::fprintf(stderr, "%llu events acknowledged, %llu not acknowledged\n",
               static_cast<unsigned long long>(acked),
               static_cast<unsigned long long>(failed + unknown));
  for (const auto& [code, entry] : out.errors) {
    std::fprintf(stderr, "  %llu x %s\n", static_cast<unsigned long long>(entry.first),
                 entry.second.c_str());
  }
  if (not_sent > 0) {
    std::fprintf(stderr, "  %llu x not sent: sending stopped after %s\n",
                 static_cast<unsigned long long>(not_sent),
                 std::string(to_string(stopped->code)).c_str());
  }
  if (unknown > 0) {
    std::fprintf(stderr,
                 "  %llu x unknown: still in flight %lld s after Ctrl-C (each may or may not "
                 "be stored)\n",
                 static_cast<unsigned long long>(unknown),
                 static_cast<long long>(kInterruptGrace.count()));
  }
  if (interrupted->load()) {
    std::fprintf(stderr, "interrupted after %llu input lines\n",
                 static_cast<unsigned long long>(line_no));
    return InterruptWatch::kExitStatus;
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
