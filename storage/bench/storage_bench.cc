// alldata-storage-bench: the write ceiling of the event store on this machine. Writer
// threads build EventBatches of small events and keep a few batches in flight each (like
// broker connections do), once with sync off and once with sync on, and the program prints
// events/s for each. Not installed; run it from the build folder.
//
//   alldata-storage-bench [--events N] [--threads T] [--batch B] [--payload BYTES]
//                         [--inflight K] [--sync off|on|both] [--path DIR] [--keep]
#include "alldata/storage/event_store.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>


namespace {

using alldata::ErrorCode;
using alldata::Key;
using alldata::Status;
using alldata::storage::EventBatch;
using alldata::storage::EventStore;
using alldata::storage::Options;

struct Config {
  std::uint64_t events = 2'000'000;
  unsigned threads = 2;
  std::size_t batch = 1000;
  std::size_t payload = 100;
  std::size_t inflight = 8;
  std::string path;
  bool keep = false;
  std::vector<bool> sync_modes{false, true};
};

// Counts a thread's batches in flight; waits while there are `limit` of them.
class InFlight {
 public:
  explicit InFlight(std::size_t limit) : limit_(limit) {}
  void acquire() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return n_ < limit_; });
    ++n_;
  }
  void release() {
    {
      std::lock_guard lk(mu_);
      --n_;
    }
    cv_.notify_all();
  }
  void wait_idle() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t limit_;
  std::size_t n_ = 0;
};

struct Result {
  double seconds = 0;
  double close_seconds = 0;
  std::uint64_t events = 0;
  std::uint64_t failed_batches = 0;
  std::uint64_t retried_batches = 0;
  alldata::storage::Stats stats;
};

Result run(const Config& cfg, bool sync, const std::string& path,
           const std::shared_ptr<spdlog::logger>& logger) {
  Options o;
  o.path = path;
  o.sync = sync;
  o.logger = logger;
  auto opened = EventStore::open(o);
  if (!opened) {
    std::fprintf(stderr, "open failed: %s\n", opened.error().to_string().c_str());
    std::exit(1);
  }
  std::unique_ptr<EventStore> store = std::move(*opened);

  // Incompressible payloads (compression would flatter a constant one): windows into a
  // block of pseudo-random bytes.
  std::string noise((1u << 20) + cfg.payload, '\0');
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (char& c : noise) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  const std::uint64_t per_thread = cfg.events / cfg.threads;
  const std::uint64_t base_ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> retried{0};

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < cfg.threads; ++t) {
    threads.emplace_back([&, t] {
      InFlight in_flight(cfg.inflight);
      bool overloaded = false;  // set only by an answer given on this thread
      std::uint64_t hlc = base_ms << 16;
      for (std::uint64_t done = 0; done < per_thread;) {
        const std::size_t n = std::min<std::uint64_t>(cfg.batch, per_thread - done);
        for (;;) {
          EventBatch batch("bench", t);
          batch.reserve(n, n * cfg.payload);
          for (std::size_t i = 0; i < n; ++i) {
            const std::size_t at = ((hlc + i) * 7919) % (noise.size() - cfg.payload);
            batch.add(Key::from_hlc(hlc + i, t + 1),
                      std::string_view(noise).substr(at, cfg.payload));
          }
          in_flight.acquire();
          store->write(std::move(batch), [&](Status s) {
            if (!s && s.error().code == ErrorCode::kOverloaded) {
              overloaded = true;  // answered before write() returns, on this thread
            } else if (!s) {
              ++failed;
            }
            in_flight.release();
          });
          if (!overloaded) break;
          // Back-pressure: let what is in flight finish, then send the same keys again.
          overloaded = false;
          ++retried;
          in_flight.wait_idle();
        }
        hlc += n;
        done += n;
      }
      in_flight.wait_idle();
    });
  }
  for (auto& th : threads) th.join();
  Result r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.events = per_thread * cfg.threads;
  r.failed_batches = failed.load();
  r.retried_batches = retried.load();
  r.stats = store->stats();
  const auto close_start = std::chrono::steady_clock::now();
  store.reset();
  r.close_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - close_start).count();
  return r;
}

bool parse_number(const char* text, std::uint64_t* out) {
  const char* end = text + std::strlen(text);
  const auto [p, err] = std::from_chars(text, end, *out);
  return err == std::errc() && p == end;
}

bool parse_args(int argc, char** argv, Config* cfg) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--keep") {
      cfg->keep = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    std::uint64_t n = 0;
    if (a == "--sync") {
      const std::string_view mode = v;
      if (mode == "off") {
        cfg->sync_modes = {false};
      } else if (mode == "on") {
        cfg->sync_modes = {true};
      } else if (mode == "both") {
        cfg->sync_modes = {false, true};
      } else {
        return false;
      }
    } else if (a == "--path") {
      cfg->path = v;
    } else if (!parse_number(v, &n)) {
      return false;
    } else if (a == "--events") {
      cfg->events = n;
    } else if (a == "--threads") {
      cfg->threads = static_cast<unsigned>(n);
    } else if (a == "--batch") {
      cfg->batch = n;
    } else if (a == "--payload") {
      cfg->payload = n;
    } else if (a == "--inflight") {
      cfg->inflight = n;
    } else {
      return false;
    }
  }
  return cfg->threads > 0 && cfg->batch > 0 && cfg->inflight > 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  if (!parse_args(argc, argv, &cfg)) {
    std::fprintf(stderr,
                 "usage: alldata-storage-bench [--events N] [--threads T] [--batch B]\n"
                 "                             [--payload BYTES] [--inflight K]\n"
                 "                             [--sync off|on|both] [--path DIR] [--keep]\n"
                 "Writes N events of BYTES payload in batches of B from T threads, each with\n"
                 "K batches in flight, with sync off and then on, and prints events/s.\n"
                 "Defaults: 2000000 events, 2 threads, 1000 per batch, 100 bytes, 8 in flight,\n"
                 "sync both, a fresh folder under $TMPDIR removed afterwards (--keep keeps it).\n");
    return 2;
  }
  std::filesystem::path root;
  if (cfg.path.empty()) {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "alldata-storage-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    root = tmpl;
  } else {
    root = cfg.path;
  }
  auto logger =
      std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_level(spdlog::level::warn);

  std::printf("%llu events of %zu bytes, batches of %zu, %u threads, %zu batches in flight each\n",
              static_cast<unsigned long long>(cfg.events), cfg.payload, cfg.batch, cfg.threads,
              cfg.inflight);
  int rc = 0;
  for (bool sync : cfg.sync_modes) {
    const auto path = root / (sync ? "sync-on" : "sync-off");
    const Result r = run(cfg, sync, path.string(), logger);
    const double eps = static_cast<double>(r.events) / r.seconds;
    std::printf(
        "sync %-3s: %10.0f events/s  %7.1f MB/s payload  (%.2f s; %llu group commits, %.1f "
        "batches each; close %.2f s; %llu failed, %llu retried)\n",
        sync ? "on" : "off", eps, eps * static_cast<double>(cfg.payload) / 1e6, r.seconds,
        static_cast<unsigned long long>(r.stats.group_commits),
        r.stats.group_commits ? static_cast<double>(r.stats.batches_written) /
                                    static_cast<double>(r.stats.group_commits)
                              : 0.0,
        r.close_seconds, static_cast<unsigned long long>(r.failed_batches),
        static_cast<unsigned long long>(r.retried_batches));
    std::fflush(stdout);
    if (r.failed_batches) rc = 1;
  }
  if (!cfg.keep) {
    std::error_code ec;
    if (cfg.path.empty()) {
      std::filesystem::remove_all(root, ec);
    } else {
      std::filesystem::remove_all(root / "sync-off", ec);
      std::filesystem::remove_all(root / "sync-on", ec);
    }
  }
  return rc;
}
