// A cluster of real `alldata-broker` processes on loopback for the fault suite: broker i is
// "b<i>" with its data under dir/b<i>, gossip every 100 ms, joined through broker 0's
// membership port; with helpers to produce and scan through the `alldata` CLI and to read
// each broker's own copy over the raw protocol.
#pragma once

#include "process_support.h"
#include "test_support.h"

#include <fstream>
#include <map>
#include <set>

namespace alldata::testing {

class ProcessCluster {
 public:
  ProcessCluster(std::filesystem::path dir, std::uint32_t partitions,
                 std::vector<std::string> extra = {})
      : dir_(std::move(dir)), partitions_(partitions), extra_(std::move(extra)) {}

  // Starts brokers 0..n-1 and waits until every one sees n normal members.
  bool start(int n) {
    for (int i = 0; i < n; ++i) {
      brokers_.push_back(make(i));
      if (!brokers_.back()->start()) {
        ADD_FAILURE() << "b" << i << " did not start: " << brokers_.back()->log();
        return false;
      }
    }
    return normal_everywhere(static_cast<std::size_t>(n));
  }

  // Every running broker but `skip` sees n normal, alive members (within 60 s).
  bool normal_everywhere(std::size_t n, int skip = -1) {
    return eventually(
        [&] {
          for (std::size_t i = 0; i < brokers_.size(); ++i) {
            if (static_cast<int>(i) == skip || !brokers_[i]->running()) continue;
            if (normal_members(port(static_cast<int>(i))) != static_cast<int>(n)) return false;
          }
          return true;
        },
        std::chrono::seconds(60));
  }

  BrokerProcess& broker(int i) { return *brokers_[static_cast<std::size_t>(i)]; }
  int size() const { return static_cast<int>(brokers_.size()); }
  std::uint16_t port(int i) { return port_of(broker(i).address()); }
  const std::filesystem::path& dir() const { return dir_; }
  std::uint32_t partitions() const { return partitions_; }

  // `alldata produce` of lines "<name> <i>" for i in [from, to) through brokers `via`, at
  // `level`; the keys it acknowledged (from its --acks file).
  std::set<Key> produce(const std::string& stream, int from, int to, const std::string& name,
                        const std::vector<int>& via, const std::string& level = "QUORUM") {
    const auto input = dir_ / (name + ".txt");
    {
      std::ofstream out(input);
      for (int i = from; i < to; ++i) out << name << " " << i << "\n";
    }
    std::string bootstrap;
    for (int i : via) bootstrap += (bootstrap.empty() ? "" : ",") + broker(i).address();
    const auto acks = dir_ / (name + ".acks");
    auto r = run_tool({"produce", "-b", bootstrap, "-s", stream, "--commit-level", level,
                       "--acks", acks.string()},
                      dir_, input.string(), std::chrono::seconds(300));
    EXPECT_EQ(r.status, 0) << r.err;
    return acked_keys(acks);
  }

  // A default `alldata scan --format jsonl` through broker `i`, with its run time.
  struct Scan {
    RunResult run;
    std::multiset<std::string> keys;
    std::chrono::milliseconds took{0};
  };
  Scan scan(const std::string& stream, int i, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"scan", "-b", broker(i).address(), "-s", stream, "--format", "jsonl"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto t0 = std::chrono::steady_clock::now();
    Scan s{run_tool(args, dir_, "", std::chrono::seconds(120)), {}, {}};
    s.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    s.keys = scanned_keys(s.run.out);
    return s;
  }

  // How many of `acked` are missing from `keys`, and how many appear more than once.
  static std::pair<std::size_t, std::size_t> missing_and_twice(const std::set<Key>& acked,
                                                               const std::multiset<std::string>& keys) {
    std::size_t missing = 0, twice = 0;
    for (const auto& k : acked) {
      const auto n = keys.count(k.to_text());
      missing += n == 0 ? 1 : 0;
      twice += n > 1 ? 1 : 0;
    }
    return {missing, twice};
  }

  // Copies of each key in the brokers' own stores (running brokers only).
  std::map<Key, int> copies(const std::string& stream) {
    std::map<Key, int> out;
    for (int i = 0; i < size(); ++i) {
      if (!broker(i).running()) continue;
      for (const auto& k : keys_held(port(i), stream, partitions_)) ++out[k];
    }
    return out;
  }

 private:
  std::unique_ptr<BrokerProcess> make(int i) {
    if (seed_port_ == 0) seed_port_ = free_membership_port();
    const std::string gossip = "127.0.0.1:" + std::to_string(i == 0 ? seed_port_ : 0);
    std::vector<std::string> args = {"--node-id", "b" + std::to_string(i), "--peer-listen",
                                     "127.0.0.1:0", "--gossip-listen", gossip, "--seeds",
                                     "127.0.0.1:" + std::to_string(seed_port_),
                                     "--gossip-interval", "100ms", "--partitions",
                                     std::to_string(partitions_)};
    args.insert(args.end(), extra_.begin(), extra_.end());
    return std::make_unique<BrokerProcess>(dir_ / ("b" + std::to_string(i)), std::move(args));
  }

  std::filesystem::path dir_;
  std::uint32_t partitions_;
  std::vector<std::string> extra_;
  std::uint16_t seed_port_ = 0;
  std::vector<std::unique_ptr<BrokerProcess>> brokers_;
};

}  // namespace alldata::testing
