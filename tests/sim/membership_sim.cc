// membership_sim: runs the real membership code (broker/src/membership/) for N brokers on
// the simulated world of sim_world.h and prints the figures the membership must meet
// (broker/README.md, "Membership", has the table and how to read it).
//
//   membership_sim --short            what the test command runs: N = 10 and 100, a few seeds,
//                                     exits 1 if a target is missed
//   membership_sim --long             the full table: N = 10, 100, 1000, 24 simulated hours
//   membership_sim --nodes 1000 --scenario steady --loss 0.05 --hours 2 --seed 7
//
// Every run is seeded and replayable: the same flags print the same figures.
#include "sim_cluster.h"
#include "sim_scenarios.h"

#include <CLI/CLI.hpp>

#include <cstdio>

using namespace alldata::sim;

int main(int argc, char** argv) {
  CLI::App app{"membership_sim: the membership protocol, simulated with the real code"};
  SimConfig config;
  bool short_form = false;
  bool long_form = false;
  std::string scenario;
  std::size_t nodes = 0;
  app.add_flag("--short", short_form, "The quick check the test command runs (exits 1 on a missed target)");
  app.add_flag("--long", long_form, "The full table: N = 10, 100, 1000, 24 simulated hours");
  app.add_option("--scenario", scenario, "Only one: changes, coldstart, steady, placement, agent");
  app.add_option("--nodes", nodes, "Cluster size for --scenario");
  app.add_option("--loss", config.loss, "Datagram loss for --scenario steady or coldstart");
  app.add_option("--hours", config.hours, "Simulated hours for --scenario steady");
  app.add_option("--seeds", config.runs, "Runs (seeds) for --scenario changes or coldstart");
  app.add_option("--seed", config.seed, "First seed");
  CLI11_PARSE(app, argc, argv);

  Report report;
  if (!scenario.empty()) {
    if (nodes == 0) nodes = 10;
    run_scenario(scenario, nodes, config, report);
  } else if (long_form) {
    run_long(config, report);
  } else {
    run_short(config, report);
  }
  report.print();
  return report.missed() == 0 ? 0 : 1;
}
