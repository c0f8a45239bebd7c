// Pieces shared by the subcommands of the `alldata` tool. Each subcommand file registers
// its CLI11 subcommand and sets `run` to what executes it once parsing succeeded.
#pragma once

#include "alldata/client/producer.h"
#include "alldata/client/types.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
}

namespace alldata::tool {

// What main() runs after parsing: the chosen subcommand, returning the exit code.
using Runner = std::function<int()>;

void register_produce(CLI::App& app, Runner& run);
void register_scan(CLI::App& app, Runner& run);
void register_cluster(CLI::App& app, Runner& run);
void register_repair(CLI::App& app, Runner& run);
void register_bench(CLI::App& app, Runner& run);
void register_dev(CLI::App& app, Runner& run);

// `alldata cluster decommission NODE_ID` (cluster_decommission.cc); waits for the broker to
// have left unless !wait, at most timeout_s seconds.
struct ConnectOptions;
int run_decommission(const ConnectOptions& connect, const std::string& node_id, bool wait, int timeout_s);

// Options every subcommand that talks to brokers has.
struct ConnectOptions {
  std::string brokers;
  std::string client_id = "alldata-cli";
  bool verbose = false;
};
void add_connect_options(CLI::App& cmd, ConnectOptions& o);

// The broker list of `o`, or prints the error and returns nullopt.
std::optional<std::vector<std::string>> bootstrap_or_complain(const ConnectOptions& o);

// A logger to stderr: warnings (info and up with --verbose).
std::shared_ptr<spdlog::logger> stderr_logger(bool verbose);

// The settings of an admin connection (cluster, remove, decommission): `bootstrap`, the
// client id of `o`, 5 s of retries, a stderr logger.
client::ClientConfig admin_config(const ConnectOptions& o, std::vector<std::string> bootstrap);

// The producer settings produce and bench share: brokers, client id, commit level, linger,
// a 15 s startup timeout (fail soon when no broker is there at all), a stderr logger.
// Prints the problem and returns nullopt for bad brokers or a bad commit level.
std::optional<client::ProducerConfig> producer_config_or_complain(const ConnectOptions& o,
                                                                  const std::string& commit_level,
                                                                  int linger_ms);

// Prints "alldata: <what>: <error>" to stderr.
void complain(std::string_view what, const Error& error);

// ---- JSON (json.cc)

// Strict UTF-8 check (no overlong forms, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;
// Appends `s` (valid UTF-8) as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view s);
// Appends `"name":value` for opaque bytes: a JSON string when they are valid UTF-8, else
// base64 plus `"name_encoding":"base64"`.
void append_json_bytes(std::string& out, std::string_view name, std::string_view bytes);
std::string base64(std::string_view bytes);

}  // namespace alldata::tool
