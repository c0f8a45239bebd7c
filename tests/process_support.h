// Real processes for end-to-end tests: start `alldata-broker` on an OS-chosen loopback port
// and wait (with a deadline) for its ready file; run `alldata` commands with stdin from a
// file and capture their output. Binaries come from ALLDATA_BROKER_BIN / ALLDATA_TOOL_BIN,
// set by tests/meson.build.
#pragma once

#include "alldata/protocol/key.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace alldata::testing {

inline std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The lines of `text`, without their line ends.
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

// Spawns argv with stdin/stdout/stderr redirected to files (empty path: /dev/null).
inline pid_t spawn(const std::vector<std::string>& argv, const std::string& in,
                   const std::string& out, const std::string& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in.empty() ? "/dev/null" : in.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.empty() ? "/dev/null" : out.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.empty() ? "/dev/null" : err.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// Waits for `pid` up to `timeout`; returns its exit status, or nullopt (then kills it).
inline std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

struct RunResult {
  int status = -1;
  std::string out;
  std::string err;
};

// Runs `alldata` with `args`, stdin from `stdin_file`, bounded by `timeout`.
inline RunResult run_tool(const std::vector<std::string>& args, const std::filesystem::path& dir,
                          const std::string& stdin_file = "",
                          std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  static int counter = 0;
  const auto out = dir / ("tool-" + std::to_string(++counter) + ".out");
  const auto err = dir / ("tool-" + std::to_string(counter) + ".err");
  std::vector<std::string> argv = {env_or("ALLDATA_TOOL_BIN", "alldata")};
  argv.insert(argv.end(), args.begin(), args.end());
  RunResult r;
  const pid_t pid = spawn(argv, stdin_file, out.string(), err.string());
  if (pid < 0) {
    ADD_FAILURE() << "cannot start " << argv[0];
    return r;
  }
  auto st = wait_exit(pid, timeout);
  r.status = st ? *st : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  if (!st) ADD_FAILURE() << "alldata " << args[0] << " did not finish in time; stderr: " << r.err;
  return r;
}

// One `alldata-broker` process with its own data folder; SIGTERM on destruction.
class BrokerProcess {
 public:
  BrokerProcess(const std::filesystem::path& data_dir, std::vector<std::string> extra = {})
      : data_dir_(data_dir), extra_(std::move(extra)) {}
  ~BrokerProcess() { stop(SIGTERM); }
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;

  // Starts the broker on 127.0.0.1 (port 0 the first time, then the same port again so
  // clients can reconnect) and waits up to 30 s until it listens.
  bool start() {
    const auto ready = data_dir_.string() + ".ready";
    std::filesystem::remove(ready);
    std::vector<std::string> argv = {env_or("ALLDATA_BROKER_BIN", "alldata-broker"),
                                     "--data-dir", data_dir_.string(),
                                     "--client-listen", "127.0.0.1:" + std::to_string(port_),
                                     "--ready-file", ready};
    // Tests run with sync off unless they ask for it.
    if (std::find(extra_.begin(), extra_.end(), "--sync") == extra_.end()) {
      argv.insert(argv.end(), {"--sync", "off"});
    }
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    pid_ = spawn(argv, "", "", data_dir_.string() + ".log");
    if (pid_ < 0) return false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = read_file(ready);
      if (text.rfind("client=", 0) == 0 && text.back() == '\n') {
        address_ = text.substr(7, text.find('\n') - 7);
        port_ = static_cast<std::uint16_t>(std::stoi(address_.substr(address_.rfind(':') + 1)));
        return true;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Sends `sig` and waits up to 30 s; returns the exit status (or nullopt).
  std::optional<int> stop(int sig) {
    if (pid_ <= 0) return std::nullopt;
    kill(pid_, sig);
    auto st = wait_exit(pid_, std::chrono::seconds(30));
    pid_ = -1;
    return st;
  }

  const std::string& address() const { return address_; }
  // A `key=VALUE` line of the ready file (client, peer, gossip), empty if absent.
  std::string ready_value(const std::string& key) const {
    std::stringstream ss(read_file(data_dir_.string() + ".ready"));
    std::string line;
    while (std::getline(ss, line)) {
      if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
    }
    return "";
  }
  // Sends `sig` (SIGSTOP, SIGCONT, ...) without waiting; 0 on success.
  int signal(int sig) { return pid_ > 0 ? ::kill(pid_, sig) : -1; }
  // SIGKILL: no clean shutdown, as a crash.
  void kill_hard() { stop(SIGKILL); }
  // Waits up to `timeout` for the broker to exit by itself; its exit status, or nullopt
  // (it is then killed).
  std::optional<int> wait_exit_for(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return std::nullopt;
    auto st = wait_exit(pid_, timeout);
    pid_ = -1;
    return st;
  }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string log() const { return read_file(data_dir_.string() + ".log"); }

 private:
  std::filesystem::path data_dir_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::string address_;
};

// The keys a default `alldata scan --format jsonl` printed, with repeats.
inline std::multiset<std::string> scanned_keys(const std::string& jsonl) {
  std::multiset<std::string> keys;
  std::size_t at = 0;
  while ((at = jsonl.find("\"key\":\"", at)) != std::string::npos) {
    at += 7;
    keys.insert(jsonl.substr(at, jsonl.find('"', at) - at));
  }
  return keys;
}

// The lowest port the kernel hands out for bind(port 0) (ip_local_port_range).
inline int ephemeral_low() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768;
  in >> low;
  return low;
}

// A port free for both UDP and TCP on 127.0.0.1 right now, below the kernel's ephemeral
// range: the other tests running meanwhile bind port 0, so they never take it before the
// broker that was given it starts.
inline std::uint16_t free_membership_port() {
  boost::asio::io_context io;
  const int high = std::min(ephemeral_low(), 65536) - 1;
  std::uniform_int_distribution<int> pick(std::min(10000, high), high);
  std::random_device seed;
  std::mt19937 random(seed());
  for (int attempt = 0; attempt < 200; ++attempt) {
    const auto port = static_cast<std::uint16_t>(pick(random));
    const auto ip = boost::asio::ip::make_address("127.0.0.1");
    boost::system::error_code ec;
    boost::asio::ip::udp::socket udp(io);
    udp.open(boost::asio::ip::udp::v4(), ec);
    if (!ec) udp.bind(boost::asio::ip::udp::endpoint(ip, port), ec);
    boost::asio::ip::tcp::acceptor tcp(io);
    if (!ec) tcp.open(boost::asio::ip::tcp::v4(), ec);
    if (!ec) tcp.bind(boost::asio::ip::tcp::endpoint(ip, port), ec);
    if (!ec) return port;
  }
  ADD_FAILURE() << "no free membership port";
  return 0;
}

// The keys of an `alldata produce --acks` file ("<line number> <key>" per acknowledged
// event); lines that do not parse are skipped.
inline std::set<Key> acked_keys(const std::filesystem::path& file) {
  std::set<Key> keys;
  std::ifstream in(file);
  std::string line_number;
  std::string key;
  while (in >> line_number >> key) {
    if (auto k = Key::parse(key)) keys.insert(*k);
  }
  return keys;
}

}  // namespace alldata::testing
