// `alldata`: the AllData command-line tool (in the style of rpk and kcat). Subcommands:
// produce, scan, cluster, bench, dev. main() only wires them; each lives in its own file.
#include "tool.h"

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdio>
#include <iostream>

namespace alldata::tool {

void add_connect_options(CLI::App& cmd, ConnectOptions& o) {
  cmd.add_option("-b,--brokers", o.brokers, "Bootstrap brokers: HOST:PORT[,HOST:PORT...]")
      ->required()
      ->envname("ALLDATA_BROKERS");
  cmd.add_option("--client-id", o.client_id, "Client id the brokers log")
      ->capture_default_str();
  cmd.add_flag("-v,--verbose", o.verbose, "Log connection changes to stderr");
}

std::optional<std::vector<std::string>> bootstrap_or_complain(const ConnectOptions& o) {
  auto list = client::parse_broker_list(o.brokers);
  if (!list) {
    complain("--brokers", list.error());
    return std::nullopt;
  }
  return std::move(*list);
}

std::optional<client::ProducerConfig> producer_config_or_complain(const ConnectOptions& o,
                                                                  const std::string& commit_level,
                                                                  int linger_ms) {
  auto bootstrap = bootstrap_or_complain(o);
  if (!bootstrap) return std::nullopt;
  auto level = client::parse_commit_level(commit_level);
  if (!level) {
    complain("--commit-level", level.error());
    return std::nullopt;
  }
  client::ProducerConfig config;
  config.bootstrap = *bootstrap;
  config.client_id = o.client_id;
  config.commit_level = *level;
  config.linger = std::chrono::milliseconds(linger_ms);
  config.startup_timeout = std::chrono::seconds(15);
  config.logger = stderr_logger(o.verbose);
  return config;
}

std::shared_ptr<spdlog::logger> stderr_logger(bool verbose) {
  auto logger = std::make_shared<spdlog::logger>(
      "alldata", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_level(verbose ? spdlog::level::info : spdlog::level::warn);
  logger->set_pattern("%^%l%$ %v");
  return logger;
}

client::ClientConfig admin_config(const ConnectOptions& o, std::vector<std::string> bootstrap) {
  client::ClientConfig config;
  config.bootstrap = std::move(bootstrap);
  config.client_id = o.client_id;
  config.retry_timeout = std::chrono::seconds(5);
  config.logger = stderr_logger(o.verbose);
  return config;
}

void complain(std::string_view what, const Error& error) {
  std::fprintf(stderr, "alldata: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               error.to_string().c_str());
}

}  // namespace alldata::tool

int main(int argc, char** argv) {
  using namespace alldata::tool;
  CLI::App app{
      "alldata: produce to, scan, inspect, benchmark and run AllData event-store clusters.\n"
      "Run 'alldata <command> --help' for the options of each command."};
  app.set_version_flag("--version", "alldata 0.1.0");
  app.require_subcommand(1);
  Runner run;
  register_produce(app, run);
  register_scan(app, run);
  register_cluster(app, run);
  register_repair(app, run);
  register_bench(app, run);
  register_dev(app, run);
  CLI11_PARSE(app, argc, argv);
  return run ? run() : 0;
}
