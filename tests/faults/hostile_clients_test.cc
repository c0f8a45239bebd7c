// Hostile clients against a real `alldata-broker` process, with its memory read from /proc:
// clients that pipeline scans and never read the answers, and hundreds of sockets that
// never say hello. The broker's peak RSS must stay within the connections' bounds plus its
// base, and a healthy client must be served all the while. Prints what it measured.
#include "process_support.h"
#include "test_support.h"

namespace alldata::testing {
namespace {

using namespace std::chrono_literals;

// A field of /proc/PID/status in bytes (VmRSS, VmHWM), 0 if unreadable.
std::uint64_t proc_status_bytes(pid_t pid, const std::string& field) {
  std::stringstream ss(read_file("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

std::uint64_t mib(std::uint64_t bytes) { return bytes >> 20; }

// Waits until the broker's RSS has not grown for `quiet` (or `limit` passed).
void wait_rss_settled(pid_t pid, std::chrono::milliseconds quiet, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  auto last_growth = std::chrono::steady_clock::now();
  std::uint64_t peak = proc_status_bytes(pid, "VmRSS");
  while (std::chrono::steady_clock::now() < deadline &&
         std::chrono::steady_clock::now() - last_growth < quiet) {
    std::this_thread::sleep_for(100ms);
    const std::uint64_t now = proc_status_bytes(pid, "VmRSS");
    if (now > peak + (1u << 20)) {
      peak = now;
      last_growth = std::chrono::steady_clock::now();
    }
  }
}

class HostileClientsTest : public ::testing::Test {
 protected:
  bool start(std::vector<std::string> extra) {
    broker_ = std::make_unique<BrokerProcess>(dir_.path() / "broker", std::move(extra));
    return broker_->start();
  }
  std::uint16_t port() const { return port_of(broker_->address()); }

  // A new client says hello, writes one event and reads it back, within `limit`.
  void expect_served(std::chrono::milliseconds limit) {
    const auto t0 = std::chrono::steady_clock::now();
    expect_serves(port(), "served-" + std::to_string(++probe_));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, limit);
  }

  TempDir dir_;
  std::unique_ptr<BrokerProcess> broker_;
  int probe_ = 0;
};

TEST_F(HostileClientsTest, ClientsThatNeverReadTheirScansCostAtMostTheirBound) {
  constexpr std::uint64_t kBound = 32u << 20;  // --max-connection-buffer-bytes (the default)
  constexpr int kClients = 6;
  ASSERT_TRUE(start({"--max-connection-buffer-bytes", std::to_string(kBound)}));
  // 48 MiB in one partition, so every client could ask for all of it many times over.
  {
    RawConnection w(port());
    ASSERT_EQ(w.hello().error(), ErrorCode::kOk);
    const std::string payload(512u << 10, 'x');
    for (int batch = 0; batch < 12; ++batch) {
      std::vector<TestEvent> events(8, TestEvent{payload, {}});
      auto r = w.produce("big", 0, events);
      ASSERT_EQ(r.error(), ErrorCode::kOk) << r.message();
    }
  }
  const std::uint64_t base = proc_status_bytes(broker_->pid(), "VmHWM");

  // Each client pipelines 128 scans of the whole partition (pages as large as the broker
  // allows) and reads nothing: unbounded, that is 6 x 128 x 8 MiB.
  std::vector<std::unique_ptr<RawConnection>> greedy;
  for (int i = 0; i < kClients; ++i) {
    auto c = std::make_unique<RawConnection>(port());
    ASSERT_EQ(c->hello().error(), ErrorCode::kOk);
    c->send_bytes(pipelined_scans("big", 128, 64u << 20, 100));
    greedy.push_back(std::move(c));
  }
  for (int i = 0; i < 3; ++i) expect_served(5s);
  wait_rss_settled(broker_->pid(), 3s, 20s);
  for (int i = 0; i < 2; ++i) expect_served(5s);

  const std::uint64_t peak = proc_status_bytes(broker_->pid(), "VmHWM");
  const std::uint64_t allowed = base + kClients * kBound * 3 / 2 + (64u << 20);
  std::printf("non-reading clients: %d x 128 pipelined scans; broker peak RSS %llu MiB "
              "(base %llu MiB, allowed %llu MiB = base + %d x 1.5 x %llu MiB + 64 MiB)\n",
              kClients, static_cast<unsigned long long>(mib(peak)),
              static_cast<unsigned long long>(mib(base)),
              static_cast<unsigned long long>(mib(allowed)), kClients,
              static_cast<unsigned long long>(mib(kBound)));
  EXPECT_LT(peak, allowed);
  EXPECT_TRUE(broker_->running());
}

TEST_F(HostileClientsTest, SilentSocketsNeitherLockClientsOutNorStay) {
  ASSERT_TRUE(start({"--max-connections", "300", "--hello-timeout", "2s"}));
  const std::uint64_t base = proc_status_bytes(broker_->pid(), "VmHWM");
  std::vector<std::unique_ptr<RawConnection>> silent;
  for (int i = 0; i < 600; ++i) silent.push_back(std::make_unique<RawConnection>(port(), 10s));
  for (int i = 0; i < 3; ++i) expect_served(2s);
  // Every silent socket is closed once the hello timeout passes.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(silent.back()->read());
  EXPECT_FALSE(silent.back()->timed_out()) << "a silent socket was still open after 10 s";
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  int closed = 0;
  for (auto& s : silent) closed += s->closed_by_peer();
  EXPECT_EQ(closed, 600);
  const std::uint64_t peak = proc_status_bytes(broker_->pid(), "VmHWM");
  std::printf("600 silent sockets against --max-connections 300: healthy clients served; "
              "all closed %lld ms after the last one opened; broker peak RSS %llu MiB "
              "(base %llu MiB)\n",
              static_cast<long long>(waited.count()), static_cast<unsigned long long>(mib(peak)),
              static_cast<unsigned long long>(mib(base)));
  EXPECT_LT(peak, base + (64u << 20));
  expect_served(2s);
}

}  // namespace
}  // namespace alldata::testing
