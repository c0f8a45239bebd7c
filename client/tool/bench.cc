// `alldata bench produce`: K Producer instances on K threads send N records of a fixed
// size as fast as they can (or at --throughput), like Kafka's kafka-producer-perf-test,
// whose output format this copies: a progress line every 5 s and one final line with
// throughput and latency percentiles. Latency = ack time - send time per record, kept
// in one preallocated vector and sorted at the end.
#include "tool.h"

#include "alldata/client/producer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

namespace alldata::tool {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  ConnectOptions connect;
  std::uint64_t num_records = 0;
  std::uint32_t record_size = 0;
  std::string commit_level = "QUORUM";
  std::uint32_t producers = 1;
  std::string stream = "bench";
  int linger_ms = 5;
  std::size_t batch_bytes = 512 * 1024;
  double throughput = -1;
};

// Written by the producers' I/O threads (callbacks), read by the reporter.
struct BenchState {
  Clock::time_point start;
  std::vector<std::uint32_t> latency_us;  // per record; kFailed when it failed
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::uint64_t> window_count{0};
  std::atomic<std::uint64_t> window_latency_us{0};
  std::atomic<std::uint32_t> window_max_us{0};
  std::mutex error_mu;
  std::optional<Error> first_error;

  static constexpr std::uint32_t kFailed = UINT32_MAX;

  std::uint32_t now_us() const {
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  }
};

void print_window(BenchState& s, double seconds, std::uint32_t record_size) {
  const auto count = s.window_count.exchange(0);
  const auto latency = s.window_latency_us.exchange(0);
  const auto max = s.window_max_us.exchange(0);
  const double rate = seconds > 0 ? count / seconds : 0;
  std::printf("%llu records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, "
              "%.1f ms max latency.\n",
              static_cast<unsigned long long>(count), rate,
              rate * record_size / (1024.0 * 1024.0),
              count > 0 ? latency / 1000.0 / count : 0.0, max / 1000.0);
  std::fflush(stdout);
}

int run_bench(const BenchOptions& o) {
  auto maybe_config = producer_config_or_complain(o.connect, o.commit_level, o.linger_ms);
  if (!maybe_config) return 2;
  if (o.num_records == 0 || o.num_records >= BenchState::kFailed || o.producers == 0) {
    complain("bench", Error(ErrorCode::kBadRequest,
                            "--num-records must be 1..4294967294 and --producers at least 1"));
    return 2;
  }
  client::ProducerConfig config = std::move(*maybe_config);
  config.batch_bytes = o.batch_bytes;
  std::vector<std::unique_ptr<client::Producer>> producers;
  for (std::uint32_t i = 0; i < o.producers; ++i) {
    auto p = client::Producer::create(config);
    if (!p) {
      complain("bench", p.error());
      return 2;
    }
    producers.push_back(std::move(*p));
  }

  // Kafka's payload: random upper-case letters.
  std::string payload(o.record_size, 'A');
  std::mt19937 rng(12345);
  for (auto& c : payload) c = static_cast<char>('A' + rng() % 26);

  BenchState state;
  state.latency_us.assign(o.num_records, BenchState::kFailed);
  std::mutex report_mu;
  std::condition_variable report_cv;
  bool finished = false;
  state.start = Clock::now();

  std::thread reporter([&] {
    auto last = state.start;
    std::unique_lock lock(report_mu);
    while (!report_cv.wait_for(lock, std::chrono::seconds(5), [&] { return finished; })) {
      const auto now = Clock::now();
      print_window(state, std::chrono::duration<double>(now - last).count(), o.record_size);
      last = now;
    }
  });

  std::atomic<bool> stop_sending{false};
  std::vector<std::thread> senders;
  for (std::uint32_t k = 0; k < o.producers; ++k) {
    senders.emplace_back([&, k] {
      client::Producer& producer = *producers[k];
      const std::uint64_t begin = o.num_records * k / o.producers;
      const std::uint64_t end = o.num_records * (k + 1) / o.producers;
      const double rate = o.throughput > 0 ? o.throughput / o.producers : 0;
      BenchState* s = &state;
      for (std::uint64_t i = begin; i < end && !stop_sending.load(std::memory_order_relaxed);
           ++i) {
        if (rate > 0 && (i - begin) % 64 == 0) {
          const auto due = state.start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>((i - begin) / rate));
          std::this_thread::sleep_until(due);
        }
        const auto index = static_cast<std::uint32_t>(i);
        const std::uint32_t sent_us = s->now_us();
        auto r = producer.send(o.stream, payload, {}, [s, index, sent_us](const Result<Key>& r) {
          if (!r) {
            s->failed.fetch_add(1, std::memory_order_relaxed);
            std::lock_guard lock(s->error_mu);
            if (!s->first_error) s->first_error = r.error();
            return;
          }
          const std::uint32_t latency = s->now_us() - sent_us;
          s->latency_us[index] = latency;
          s->acked.fetch_add(1, std::memory_order_relaxed);
          s->window_count.fetch_add(1, std::memory_order_relaxed);
          s->window_latency_us.fetch_add(latency, std::memory_order_relaxed);
          std::uint32_t max = s->window_max_us.load(std::memory_order_relaxed);
          while (latency > max &&
                 !s->window_max_us.compare_exchange_weak(max, latency, std::memory_order_relaxed)) {
          }
        });
        if (!r) {
          s->failed.fetch_add(1, std::memory_order_relaxed);
          std::lock_guard lock(s->error_mu);
          if (!s->first_error) s->first_error = r.error();
          const auto c = r.error().code;
          if (c == ErrorCode::kConnectionFailed || c == ErrorCode::kBufferFull) {
            stop_sending = true;
          }
        }
      }
      (void)producer.flush();
    });
  }
  for (auto& t : senders) t.join();
  for (auto& p : producers) (void)p->close();
  const auto elapsed = std::chrono::duration<double>(Clock::now() - state.start).count();
  {
    std::lock_guard lock(report_mu);
    finished = true;
  }
  report_cv.notify_all();
  reporter.join();

  std::vector<std::uint32_t> latencies;
  latencies.reserve(state.acked.load());
  double total_us = 0;
  std::uint32_t max_us = 0;
  for (const auto l : state.latency_us) {
    if (l == BenchState::kFailed) continue;
    latencies.push_back(l);
    total_us += l;
    max_us = std::max(max_us, l);
  }
  std::sort(latencies.begin(), latencies.end());
  const std::size_t count = latencies.size();
  auto percentile_ms = [&](double p) -> long long {
    if (count == 0) return 0;
    const auto index = std::min(count - 1, static_cast<std::size_t>(p * count));
    return latencies[index] / 1000;
  };
  const double rate = elapsed > 0 ? count / elapsed : 0;
  std::printf("%zu records sent, %f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max "
              "latency, %lld ms 50th, %lld ms 95th, %lld ms 99th, %lld ms 99.9th.\n",
              count, rate, rate * o.record_size / (1024.0 * 1024.0),
              count > 0 ? total_us / 1000.0 / count : 0.0, max_us / 1000.0, percentile_ms(0.5),
              percentile_ms(0.95), percentile_ms(0.99), percentile_ms(0.999));
  std::fflush(stdout);
  const auto failed = state.failed.load();
  if (failed > 0) {
    std::fprintf(stderr, "%llu records failed; first error: %s\n",
                 static_cast<unsigned long long>(failed),
                 state.first_error ? state.first_error->to_string().c_str() : "?");
    return 1;
  }
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, Runner& run) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (kafka-producer-perf-test style output)");
  bench->require_subcommand(1);
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = bench->add_subcommand(
      "produce",
      "Send --num-records records of --record-size bytes with --producers producers (one "
      "thread each). Prints a progress line every 5 s and a final line with throughput and "
      "latency percentiles (latency = acknowledgement time - send time).");
  add_connect_options(*cmd, o->connect);
  cmd->add_option("--num-records", o->num_records, "Records to send in total")->required();
  cmd->add_option("--record-size", o->record_size, "Bytes per record")->required();
  cmd->add_option("--commit-level", o->commit_level, "ANY, ONE, QUORUM or ALL")
      ->capture_default_str();
  cmd->add_option("--producers", o->producers, "Producer instances, one thread each")
      ->capture_default_str();
  cmd->add_option("-s,--stream", o->stream, "Stream to write to")->capture_default_str();
  cmd->add_option("--linger-ms", o->linger_ms, "Producer linger")->capture_default_str();
  cmd->add_option("--batch-bytes", o->batch_bytes, "Producer batch size")->capture_default_str();
  cmd->add_option("--throughput", o->throughput,
                  "Records/sec to aim for in total (-1 = as fast as possible)")
      ->capture_default_str();
  cmd->callback([o, &run] { run = [o] { return run_bench(*o); }; });
}

}  // namespace alldata::tool
