// The simulator's scenarios, one function per figure of the membership targets
// (broker/README.md, "Membership"), and the report they fill. Each scenario builds its own
// World from a seed, so every figure is replayable on its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace alldata::sim {

struct SimConfig {
  double loss = 0.05;
  double hours = 1.0;
  std::size_t runs = 5;
  std::uint64_t seed = 1;
};

class Report {
 public:
  // One figure; `pass` is empty when the figure has no target.
  void add(std::string figure, std::size_t nodes, std::string value, std::string target, bool pass);
  void note(std::string line) { notes_.push_back(std::move(line)); }
  void print() const;
  std::size_t missed() const noexcept { return missed_; }

 private:
  struct Row {
    std::string figure;
    std::size_t nodes;
    std::string value;
    std::string target;
    bool pass;
  };
  std::vector<Row> rows_;
  std::vector<std::string> notes_;
  std::size_t missed_ = 0;
};

// A membership change (join, leave, death verdict) known to every broker, in rounds; the
// time from a crash to every live broker holding it dead; false verdicts meanwhile.
void report_changes(std::size_t nodes, std::size_t runs, std::uint64_t seed, Report& report);
// Random start order and delays (0-10 s) at `loss`: one cluster within 30 s of the last start.
void report_coldstart(std::size_t nodes, std::size_t runs, double loss, std::uint64_t seed, Report& report);
// `hours` of steady state at `loss`: false death verdicts (per cluster-day), suspicions,
// bytes sent per broker per second, CPU per simulated second.
void report_steady(std::size_t nodes, double loss, double hours, std::uint64_t seed, Report& report);
// The coordinator's placement cost per produce batch on a view of `nodes` members.
void report_placement(std::size_t nodes, Report& report);
// The broker glue on every node: identical replica sets everywhere, and a watermark held by
// one broker reaching every broker before its bound binds.
void report_agent(std::size_t nodes, std::uint64_t seed, Report& report);

void run_short(const SimConfig& config, Report& report);
void run_long(const SimConfig& config, Report& report);
void run_scenario(const std::string& name, std::size_t nodes, const SimConfig& config, Report& report);

}  // namespace alldata::sim
