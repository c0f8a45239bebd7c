// `alldata dev`: a local cluster of `alldata-broker` processes on 127.0.0.1 for trying
// things out, data under one folder. Each broker gets DIR/broker-<i> as its data folder
// and log (broker.log), and tells us it is ready by writing `client=HOST:PORT` to a
// ready file. Ctrl-C or SIGTERM stops them all with SIGTERM and waits for them.
#include "tool.h"

#include "alldata/client/admin.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace alldata::tool {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct DevOptions {
  int brokers = 3;
  std::string zones;   // comma-separated; broker i gets zone i mod count
  std::string regions;
  int replication_factor = 3;
  std::string dir = "./alldata-dev";
  int base_port = 7400;
  std::string broker_bin;
  int ready_timeout_s = 30;
  std::vector<std::string> broker_args;
};

struct BrokerProcess {
  int index = 0;
  pid_t pid = -1;
  fs::path dir;
  fs::path log;
  fs::path ready;
  std::string client_address;
  bool exited = false;
  int status = 0;
};

bool executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// The broker program: --broker-bin, $ALLDATA_BROKER_BIN, next to this executable, the
// build tree's broker/ (from client/), then PATH.
std::optional<fs::path> find_broker(const std::string& flag) {
  if (!flag.empty()) return executable(flag) ? std::optional<fs::path>(flag) : std::nullopt;
  if (const char* env = std::getenv("ALLDATA_BROKER_BIN"); env != nullptr && *env != '\0') {
    if (executable(env)) return fs::path(env);
  }
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path here = self.parent_path();
    for (const fs::path& candidate :
         {here / "alldata-broker", here.parent_path() / "broker" / "alldata-broker"}) {
      if (executable(candidate)) return candidate;
    }
  }
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream dirs(path);
    std::string d;
    while (std::getline(dirs, d, ':')) {
      if (!d.empty() && executable(fs::path(d) / "alldata-broker")) {
        return fs::path(d) / "alldata-broker";
      }
    }
  }
  return std::nullopt;
}

std::string status_text(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  }
  return "stopped";
}

// The last `lines` lines of a log, indented, for error reports.
std::string tail(const fs::path& log, int lines) {
  std::ifstream in(log);
  std::vector<std::string> all;
  std::string line;
  while (std::getline(in, line)) all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > static_cast<std::size_t>(lines) ? all.size() - lines : 0;
       i < all.size(); ++i) {
    out += "    " + all[i] + "\n";
  }
  return out;
}

pid_t spawn(const fs::path& bin, const std::vector<std::string>& args, const fs::path& log,
            const sigset_t& original_mask) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child: own process group (a terminal's Ctrl-C reaches only `alldata dev`, which then
  // stops the brokers in order), die with the parent, log to the broker's file.
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  ::sigprocmask(SIG_SETMASK, &original_mask, nullptr);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
  }
  if (null >= 0) ::dup2(null, STDIN_FILENO);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(bin.c_str(), argv.data());
  std::fprintf(stderr, "alldata dev: cannot run %s: %s\n", bin.c_str(), std::strerror(errno));
  ::_exit(127);
}

// Reads `key=VALUE` (client, peer, gossip) from a ready file; empty when not there (yet).
std::string read_ready(const fs::path& ready, const std::string& key = "client") {
  std::ifstream in(ready);
  std::string line;
  std::string value;
  bool complete = false;
  while (std::getline(in, line)) {
    if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
    if (line.rfind("client=", 0) == 0) complete = true;
  }
  return complete ? value : std::string();
}

bool reap(BrokerProcess& b) {
  if (b.exited || b.pid <= 0) return b.exited;
  int status = 0;
  const pid_t r = ::waitpid(b.pid, &status, WNOHANG);
  if (r == b.pid) {
    b.exited = true;
    b.status = status;
  }
  return b.exited;
}

// SIGTERM to every broker still running, then wait for each (SIGKILL after `grace`).
void stop_all(std::vector<BrokerProcess>& brokers, std::chrono::seconds grace) {
  for (auto& b : brokers) {
    if (!reap(b)) ::kill(b.pid, SIGTERM);
  }
  const auto deadline = Clock::now() + grace;
  for (auto& b : brokers) {
    while (!reap(b) && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!b.exited) {
      std::fprintf(stderr, "alldata dev: broker-%d did not stop within %llds; killing it\n",
                   b.index, static_cast<long long>(grace.count()));
      ::kill(b.pid, SIGKILL);
      ::waitpid(b.pid, &b.status, 0);
      b.exited = true;
    }
  }
}

int run_dev(const DevOptions& o) {
  if (o.brokers < 1) {
    complain("--brokers", Error(ErrorCode::kBadRequest, "at least 1"));
    return 2;
  }
  if (o.base_port < 0 || o.base_port + 10 * (o.brokers - 1) > 65535) {
    complain("--base-port", Error(ErrorCode::kBadRequest, "ports must stay within 1..65535"));
    return 2;
  }
  const auto bin = find_broker(o.broker_bin);
  if (!bin) {
    std::fprintf(stderr,
                 "alldata dev: cannot find the alldata-broker program (looked at --broker-bin, "
                 "$ALLDATA_BROKER_BIN, next to this program and on PATH)\n");
    return 2;
  }
  std::error_code ec;
  const fs::path root = fs::absolute(o.dir, ec);
  fs::create_directories(root, ec);
  if (ec) {
    std::fprintf(stderr, "alldata dev: cannot create %s: %s\n", root.c_str(),
                 ec.message().c_str());
    return 2;
  }

  // Signals are taken synchronously (sigtimedwait) by this thread only.
  sigset_t wanted, original;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGINT);
  sigaddset(&wanted, SIGTERM);
  sigaddset(&wanted, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &wanted, &original);

  auto split = [](const std::string& list) {
    std::vector<std::string> out;
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (!item.empty()) out.push_back(item);
    }
    return out;
  };
  const auto zones = split(o.zones);
  const auto regions = split(o.regions);

  std::vector<BrokerProcess> brokers;
  std::string seed;  // broker-0's gossip address, once it is ready
  const auto deadline = Clock::now() + std::chrono::seconds(o.ready_timeout_s);
  // Starts broker i: client port base+10i, peer base+10i+1, gossip base+10i+2 (or all 0).
  auto start = [&](int i) -> bool {
    BrokerProcess b;
    b.index = i;
    b.dir = root / ("broker-" + std::to_string(i));
    fs::create_directories(b.dir, ec);
    b.log = b.dir / "broker.log";
    b.ready = b.dir / "ready";
    fs::remove(b.ready, ec);
    auto port = [&](int offset) {
      return "127.0.0.1:" + std::to_string(o.base_port == 0 ? 0 : o.base_port + 10 * i + offset);
    };
    std::vector<std::string> args = {"--data-dir",      b.dir.string(),
                                     "--client-listen", port(0),
                                     "--node-id",       "broker-" + std::to_string(i),
                                     "--ready-file",    b.ready.string(),
                                     "--peer-listen",   port(1),
                                     "--gossip-listen", port(2),
                                     "--replication-factor", std::to_string(o.replication_factor)};
    if (!zones.empty()) args.insert(args.end(), {"--zone", zones[i % zones.size()]});
    if (!regions.empty()) args.insert(args.end(), {"--region", regions[i % regions.size()]});
    if (!seed.empty()) args.insert(args.end(), {"--seeds", seed});
    for (const auto& a : o.broker_args) args.push_back(a);
    b.pid = spawn(*bin, args, b.log, original);
    if (b.pid < 0) {
      std::perror("alldata dev: fork");
      return false;
    }
    brokers.push_back(std::move(b));
    return true;
  };
  // Waits until broker b wrote its ready file; 0, or the exit code to return.
  auto wait_ready = [&](BrokerProcess& b) -> int {
    for (;;) {
      b.client_address = read_ready(b.ready);
      if (!b.client_address.empty()) return 0;
      std::string problem;
      if (reap(b)) {
        problem = "broker-" + std::to_string(b.index) + " " + status_text(b.status) +
                  " before it was ready";
      } else if (Clock::now() >= deadline) {
        problem = "broker-" + std::to_string(b.index) + " was not ready within " +
                  std::to_string(o.ready_timeout_s) + " s";
      }
      if (!problem.empty()) {
        std::fprintf(stderr, "alldata dev: %s; its log is %s:\n%s", problem.c_str(),
                     b.log.c_str(), tail(b.log, 20).c_str());
        return 1;
      }
      timespec wait{0, 50'000'000};
      siginfo_t info;
      const int sig = ::sigtimedwait(&wanted, &info, &wait);
      if (sig == SIGINT || sig == SIGTERM) {
        std::fprintf(stderr, "alldata dev: stopping\n");
        return 130;
      }
    }
  };
  // Broker 0 first: the others join the cluster through its gossip address.
  int started = start(0) ? wait_ready(brokers[0]) : 1;
  int& code = started;
  if (code == 0) seed = read_ready(brokers[0].ready, "gossip");
  for (int i = 1; code == 0 && i < o.brokers; ++i) {
    if (!start(i)) code = 1;
  }
  for (std::size_t i = 1; code == 0 && i < brokers.size(); ++i) code = wait_ready(brokers[i]);
  if (code != 0) {
    stop_all(brokers, std::chrono::seconds(30));
    return code;
  }

  // Wait (bounded) until broker 0 is ready and sees every broker alive and normal, so
  // `alldata cluster` right away shows the whole cluster and every broker takes writes.
  {
    client::ClientConfig config;
    config.bootstrap = {brokers[0].client_address};
    config.client_id = "alldata-dev";
    bool converged = false;
    while (!converged && Clock::now() < deadline) {
      if (auto admin = client::Admin::connect(config)) {
        if (auto meta = (*admin)->metadata(false)) {
          int live = 0;
          for (const auto& m : meta->members) {
            live += m.liveness == client::Liveness::kAlive && m.lifecycle == client::Lifecycle::kNormal ? 1 : 0;
          }
          converged = live == o.brokers && meta->membership_status == "ready";
        }
      }
      if (!converged) {
        timespec wait{0, 100'000'000};
        siginfo_t info;
        const int sig = ::sigtimedwait(&wanted, &info, &wait);
        if (sig == SIGINT || sig == SIGTERM) {
          stop_all(brokers, std::chrono::seconds(30));
          return 130;
        }
      }
    }
    if (!converged) {
      std::fprintf(stderr, "alldata dev: the brokers did not all see each other within %d s; see %s\n",
                   o.ready_timeout_s, brokers[0].log.c_str());
    }
  }

  std::string bootstrap;
  for (const auto& b : brokers) {
    if (!bootstrap.empty()) bootstrap += ",";
    bootstrap += b.client_address;
  }
  std::printf("AllData dev cluster: %d broker%s under %s\n", o.brokers, o.brokers == 1 ? "" : "s",
              root.c_str());
  for (const auto& b : brokers) {
    std::printf("  broker-%d  client %s  pid %d  log %s\n", b.index, b.client_address.c_str(),
                static_cast<int>(b.pid), b.log.c_str());
  }
  std::printf("\nbootstrap: %s\n", bootstrap.c_str());
  std::printf("try:       seq 1 10 | alldata produce -b %s -s demo\n", bootstrap.c_str());
  std::printf("           alldata scan -b %s -s demo\n", bootstrap.c_str());
  std::printf("\nCtrl-C stops the cluster.\n");
  std::fflush(stdout);

  for (;;) {
    siginfo_t info;
    timespec wait{1, 0};
    const int sig = ::sigtimedwait(&wanted, &info, &wait);
    if (sig == SIGINT || sig == SIGTERM) break;
    bool all_gone = true;
    for (auto& b : brokers) {
      const bool was = b.exited;
      if (reap(b) && !was) {
        std::fprintf(stderr, "alldata dev: broker-%d %s; its log is %s:\n%s", b.index,
                     status_text(b.status).c_str(), b.log.c_str(), tail(b.log, 10).c_str());
      }
      all_gone = all_gone && b.exited;
    }
    if (all_gone) {
      std::fprintf(stderr, "alldata dev: every broker has exited\n");
      return 1;
    }
  }
  std::fprintf(stderr, "alldata dev: stopping %d broker%s\n", o.brokers, o.brokers == 1 ? "" : "s");
  stop_all(brokers, std::chrono::seconds(60));
  code = 0;
  for (const auto& b : brokers) {
    const bool clean = WIFEXITED(b.status) && WEXITSTATUS(b.status) == 0;
    if (!clean) {
      std::fprintf(stderr, "alldata dev: broker-%d %s (log %s)\n", b.index,
                   status_text(b.status).c_str(), b.log.c_str());
      code = 1;
    }
  }
  if (code == 0) std::fprintf(stderr, "alldata dev: all brokers stopped\n");
  return code;
}

}  // namespace

void register_dev(CLI::App& app, Runner& run) {
  auto o = std::make_shared<DevOptions>();
  auto* cmd = app.add_subcommand(
      "dev",
      "Run a local cluster of alldata-broker processes on 127.0.0.1 until Ctrl-C.\n"
      "Broker i keeps its data and broker.log in DIR/broker-<i> and listens for clients on\n"
      "port base-port + 10*i (base-port 0: ports chosen by the OS).");
  cmd->add_option("--brokers", o->brokers, "Number of brokers")->capture_default_str();
  cmd->add_option("--zones", o->zones, "Zones, comma-separated: broker i gets zone i mod count");
  cmd->add_option("--regions", o->regions, "Regions, comma-separated: broker i gets region i mod count");
  cmd->add_option("--replication-factor", o->replication_factor, "Copies of every event")
      ->capture_default_str();
  cmd->add_option("--dir", o->dir, "Folder for the brokers' data and logs")
      ->capture_default_str();
  cmd->add_option("--base-port", o->base_port, "Client port of broker 0")->capture_default_str();
  cmd->add_option("--broker-bin", o->broker_bin,
                  "The alldata-broker program (default: next to alldata, or on PATH)");
  cmd->add_option("--ready-timeout", o->ready_timeout_s,
                  "Seconds to wait for each broker to be ready")
      ->capture_default_str();
  cmd->add_option("--broker-arg", o->broker_args,
                  "Extra argument for every broker (repeatable), e.g. --broker-arg=--sync=off");
  cmd->callback([o, &run] { run = [o] { return run_dev(*o); }; });
}

}  // namespace alldata::tool
