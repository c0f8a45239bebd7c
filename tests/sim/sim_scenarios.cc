#include "sim_scenarios.h"

#include "sim_cluster.h"

#include "membership/cluster_view.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace alldata::sim {

namespace {

using broker::Lifecycle;
using broker::Liveness;
using Kind = MembershipEvent::Kind;

constexpr std::uint64_t kSecond = 1000;

MembershipOptions base_options() { return simulated_broker_options(); }

// Seeds of a cluster of n: 3 brokers (as an operator would list).
std::vector<std::size_t> seed_indices(std::size_t n) {
  std::vector<std::size_t> s;
  for (std::size_t i = 0; i < std::min<std::size_t>(3, n); ++i) s.push_back(i);
  return s;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double maximum(const std::vector<double>& v) { return v.empty() ? NAN : *std::max_element(v.begin(), v.end()); }

std::string fmt(const char* f, double a, double b = 0) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

// Starts every node in a random order at random times within `window_ms`; returns the time
// of the last start.
std::uint64_t start_randomly(World& w, SimCluster& c, std::size_t count, std::uint64_t window_ms) {
  const std::uint64_t t0 = w.now();
  std::uint64_t last = t0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t at = t0 + w.random().below(window_ms + 1);
    last = std::max(last, at);
    w.at(at, [&c, i] { c.start(i); });
  }
  return last;
}

std::uint64_t check_every(std::size_t n) { return n >= 500 ? 500 : 100; }

}  // namespace

// ---- report ----------------------------------------------------------------------------

void Report::add(std::string figure, std::size_t nodes, std::string value, std::string target, bool pass) {
  if (!target.empty() && !pass) ++missed_;
  rows_.push_back(Row{std::move(figure), nodes, std::move(value), std::move(target), pass});
  std::printf("  %-58s N=%-5zu %-28s %s%s\n", rows_.back().figure.c_str(), nodes, rows_.back().value.c_str(),
              rows_.back().target.c_str(), rows_.back().target.empty() ? "" : (pass ? "  ok" : "  MISSED"));
  std::fflush(stdout);
}

void Report::print() const {
  std::printf("\n| figure | N | measured | target | |\n|---|---|---|---|---|\n");
  for (const auto& r : rows_) {
    std::printf("| %s | %zu | %s | %s | %s |\n", r.figure.c_str(), r.nodes, r.value.c_str(), r.target.c_str(),
                r.target.empty() ? "" : (r.pass ? "met" : "**missed**"));
  }
  for (const auto& n : notes_) std::printf("\n%s\n", n.c_str());
  std::printf("\n%zu target(s) missed\n", missed_);
}

// ---- membership changes ----------------------------------------------------------------

void report_changes(std::size_t n, std::size_t runs, std::uint64_t seed, Report& report) {
  std::vector<double> join, leave, death, detect;
  std::uint64_t false_deaths = 0, cold_false = 0;
  for (std::size_t r = 0; r < runs; ++r) {
    World w(seed + r);
    SimCluster c(w, base_options(), n + 1, seed_indices(n));  // node n joins later
    std::uint64_t first_dead = 0;
    c.on_event([&](std::size_t, const MembershipEvent& e) {
      if (e.kind == Kind::kDead && first_dead == 0) first_dead = w.now();
    });
    start_randomly(w, c, n, 0);
    if (!w.run_until(w.now() + 120 * kSecond, [&] { return c.converged(); }, check_every(n))) continue;
    cold_false += c.false_deaths();
    w.run_until(w.now() + 5 * kSecond);

    // A join: node n starts; every other broker knows it alive.
    const std::uint64_t t_join = w.now();
    c.start(n);
    if (w.run_until(t_join + 120 * kSecond, [&] { return c.holding(n, Liveness::kAlive) == n; }, 50)) {
      join.push_back(static_cast<double>(w.now() - t_join) / kSecond);
    }
    w.run_until(w.now() + 10 * kSecond);

    // A leave: node n-1 leaves; every other broker holds it left.
    const std::size_t leaver = n - 1;
    const std::uint64_t t_leave = w.now();
    c.node(leaver)->leave();
    auto all_left = [&] {
      for (std::size_t i = 0; i <= n; ++i) {
        if (i == leaver || !c.running(i)) continue;
        const auto* m = c.node(i)->member(SimCluster::id(leaver));
        if (m == nullptr || m->lifecycle() != Lifecycle::kLeft) return false;
      }
      return true;
    };
    if (w.run_until(t_leave + 120 * kSecond, all_left, 50)) leave.push_back(static_cast<double>(w.now() - t_leave) / kSecond);
    c.crash(leaver);
    w.run_until(w.now() + 10 * kSecond);

    // A death: node n-2 crashes; the first verdict, then every live broker holding it dead.
    const std::size_t victim = n - 2;
    c.reset_counts();
    first_dead = 0;
    const std::uint64_t t_crash = w.now();
    c.crash(victim);
    const std::size_t others = n - 1;  // live brokers besides the victim (n + 1 - leaver - victim)
    if (w.run_until(t_crash + 300 * kSecond, [&] { return c.holding(victim, Liveness::kDead) == others; }, 50)) {
      detect.push_back(static_cast<double>(w.now() - t_crash) / kSecond);
      death.push_back(static_cast<double>(w.now() - first_dead) / kSecond);
    }
    false_deaths += c.false_deaths();
  }
  const double target = 2 * std::log2(static_cast<double>(n));
  const double target_max = 3 * std::log2(static_cast<double>(n));
  auto row = [&](const char* what, const std::vector<double>& v) {
    const bool pass = v.size() == runs && median(v) <= target && maximum(v) <= target_max;
    report.add(std::string(what) + " known to every broker, rounds median/max (" + std::to_string(v.size()) + "/" +
                   std::to_string(runs) + " runs)",
               n, fmt("%.1f / %.1f", median(v), maximum(v)), fmt("<= %.1f / <= %.1f", target, target_max), pass);
  };
  row("join", join);
  row("leave", leave);
  row("death verdict", death);
  report.add("a dead broker declared dead by every live broker, s median/max", n,
             fmt("%.1f / %.1f", median(detect), maximum(detect)), "<= 10 / <= 30",
             detect.size() == runs && median(detect) <= 10 && maximum(detect) <= 30);
  report.add("false death verdicts, cold start and changes (all runs)", n, std::to_string(false_deaths + cold_false),
             "0", false_deaths + cold_false == 0);
}

// ---- cold start ------------------------------------------------------------------------

void report_coldstart(std::size_t n, std::size_t runs, double loss, std::uint64_t seed, Report& report) {
  std::size_t ok = 0;
  std::vector<double> seconds;
  std::uint64_t false_deaths = 0;
  for (std::size_t r = 0; r < runs; ++r) {
    World w(seed * 1000 + r);
    w.set_loss(loss);
    SimCluster c(w, base_options(), n, seed_indices(n));
    const std::uint64_t last = start_randomly(w, c, n, 10 * kSecond);
    w.run_until(last);
    const bool done = w.run_until(last + 120 * kSecond, [&] { return c.converged(); }, check_every(n));
    const double s = static_cast<double>(w.now() - last) / kSecond;
    if (done) seconds.push_back(s);
    if (done && s <= 30) ++ok;
    false_deaths += c.false_deaths();
  }
  report.add(fmt("start at %.0f%% loss, random order and delays: one cluster within 30 s", loss * 100), n,
             std::to_string(ok) + " of " + std::to_string(runs) + fmt(" (median %.1f s, max %.1f s)", median(seconds), maximum(seconds)),
             "all runs", ok == runs);
  report.add(fmt("false death verdicts during those starts (%.0f%% loss)", loss * 100), n,
             std::to_string(false_deaths), "0", false_deaths == 0);
}

// ---- steady state ----------------------------------------------------------------------

void report_steady(std::size_t n, double loss, double hours, std::uint64_t seed, Report& report) {
  World w(seed * 7919);
  w.set_loss(loss);
  SimCluster c(w, base_options(), n, seed_indices(n));
  const std::uint64_t last = start_randomly(w, c, n, 10 * kSecond);
  w.run_until(last);
  w.run_until(last + 300 * kSecond, [&] { return c.converged(); }, check_every(n));
  w.run_until(w.now() + 30 * kSecond);  // past the join traffic
  c.reset_counts();
  std::uint64_t raised = 0;
  std::vector<std::uint64_t> udp0(n), tcp0(n);
  for (std::size_t i = 0; i < n; ++i) {
    udp0[i] = c.host(i).bytes_sent();
    tcp0[i] = c.host(i).stream_bytes_sent();
    raised += c.node(i)->stats().suspicions;
  }
  const double cpu0 = cpu_seconds();
  const std::uint64_t t0 = w.now();
  const auto span = static_cast<std::uint64_t>(hours * 3600 * kSecond);
  w.run_until(t0 + span);
  const double cpu = cpu_seconds() - cpu0;
  const double secs = static_cast<double>(span) / kSecond;
  double udp = 0, tcp = 0, udp_max = 0;
  std::uint64_t raised_after = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double u = static_cast<double>(c.host(i).bytes_sent() - udp0[i]) / secs;
    udp += u;
    udp_max = std::max(udp_max, u);
    tcp += static_cast<double>(c.host(i).stream_bytes_sent() - tcp0[i]) / secs;
    raised_after += c.node(i)->stats().suspicions;
  }
  const double per_day = static_cast<double>(c.false_deaths()) * 24.0 / hours;
  const bool strict = loss <= 0.05;
  report.add(fmt("false death verdicts over %.1f simulated hours at %.0f%% loss", hours, loss * 100), n,
             std::to_string(c.false_deaths()) + fmt(" (%.2f per cluster-day)", per_day),
             strict ? "0" : "<= 1 per cluster-day", strict ? c.false_deaths() == 0 : per_day <= 1.0);
  report.add(fmt("  suspicions raised (all refuted unless a verdict above), %.0f%% loss", loss * 100), n,
             std::to_string(raised_after - raised), "", true);
  report.add(fmt("gossip bytes sent per broker per second, %.0f%% loss (UDP mean/max; TCP)", loss * 100), n,
             fmt("%.0f / %.0f; ", udp / n, udp_max) + fmt("%.0f", tcp / n), n >= 1000 ? "<= 20 KB/s" : "",
             n < 1000 || (udp / n + tcp / n) <= 20'000);
  report.add(fmt("simulator CPU per simulated round (1 s), %.0f%% loss", loss * 100), n, fmt("%.1f ms", cpu / secs * 1000), "",
             true);
}

// ---- placement -------------------------------------------------------------------------

void report_placement(std::size_t n, Report& report) {
  broker::ClusterView::Inputs in;
  in.policy = broker::PlacementPolicy{3, 0, 0};
  in.partitions = 16;
  for (std::size_t i = 0; i < n; ++i) {
    broker::ViewMember m;
    m.node_id = "broker-" + std::to_string(i);
    m.zone = "zone-" + std::to_string(i % 3);
    m.region = "region-1";
    m.self = i == 0;
    m.lifecycle = Lifecycle::kNormal;
    in.members.push_back(std::move(m));
  }
  broker::ViewHolder holder;
  holder.set(std::make_shared<const broker::ClusterView>(std::move(in)));
  const broker::ClusterView& view = *holder.view();
  std::vector<std::string> streams;
  for (int s = 0; s < 100; ++s) streams.push_back("stream-" + std::to_string(s));
  const auto miss0 = std::chrono::steady_clock::now();
  for (const auto& s : streams) view.placement().stream(s);
  const double miss_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - miss0).count() / streams.size();
  // What the coordinator does per batch: the current view, the stream's placement, the
  // partition's list, the liveness of the replica set.
  constexpr std::size_t kBatches = 1'000'000;
  std::size_t live = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t b = 0; b < kBatches; ++b) {
    const auto current = holder.view();
    const auto placement = current->placement().stream(streams[b % streams.size()]);
    const auto& list = placement->partitions[b % 16];
    for (std::size_t i = 0; i < 3 && i < list.size(); ++i) live += current->live(list[i]) ? 1 : 0;
  }
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kBatches;
  report.add("placement cost per produce batch (cached lists)", n, fmt("%.3f us", us) + (live ? "" : "!"), "<= 5 us",
             us <= 5.0);
  report.add("  placement of a new stream (16 partitions, once per membership change)", n, fmt("%.2f ms", miss_ms), "",
             true);
}

// ---- the broker glue -------------------------------------------------------------------

void report_agent(std::size_t n, std::uint64_t seed, Report& report) {
  World w(seed * 31);
  SimCluster c(w, base_options(), n, seed_indices(n));
  broker::AgentOptions ao;
  ao.policy = broker::PlacementPolicy{3, 0, 0};
  ao.partitions = 16;
  c.enable_agents(ao);
  const std::uint64_t last = start_randomly(w, c, n, 5 * kSecond);
  w.run_until(last);
  const bool converged = w.run_until(last + 120 * kSecond, [&] { return c.converged(); }, check_every(n));
  w.run_until(w.now() + 2 * kSecond);
  // Every broker computes the same replica sets.
  std::size_t differing = 0;
  for (int s = 0; s < 10; ++s) {
    const std::string stream = "orders-" + std::to_string(s);
    std::vector<std::string> first;
    for (std::size_t i = 0; i < n; ++i) {
      const auto view = c.views(i)->view();
      const auto placement = view->placement().stream(stream);
      std::vector<std::string> sets;
      for (const auto& list : placement->partitions) {
        for (std::size_t k = 0; k < 3; ++k) sets.push_back(view->placement().members()[list[k]].node_id);
      }
      if (i == 0) {
        first = sets;
      } else if (sets != first) {
        ++differing;
      }
    }
  }
  report.add("brokers whose replica sets differ from broker 0's (10 streams)", n,
             std::to_string(differing) + (converged ? "" : " (not converged)"), "0", converged && differing == 0);
  // A hold on one broker: every broker's cluster watermark goes no higher, before it binds.
  const std::uint64_t hold = c.wall_ms() - 90'000 + 5'000;  // binds in 5 s (margin 90 s)
  c.set_hold(n / 2, hold);
  const std::uint64_t t = w.now();
  auto everyone_held = [&] {
    for (std::size_t i = 0; i < n; ++i) {
      if (c.views(i)->view()->watermark_ms(w.now()) > hold) return false;
    }
    return true;
  };
  auto everyone_knows = [&] {
    for (std::size_t i = 0; i < n; ++i) {
      const auto* m = c.views(i)->view()->member(SimCluster::id(n / 2));
      if (m == nullptr || !m->watermark_held) return false;
    }
    return true;
  };
  std::size_t above = 0;
  const bool held = w.run_until(t + 30 * kSecond, [&] {
    above += everyone_held() ? 0 : 1;
    return everyone_knows();
  }, 50);
  const double took = static_cast<double>(w.now() - t) / kSecond;
  w.run_until(w.now() + 20 * kSecond, [&] {
    above += everyone_held() ? 0 : 1;
    return false;
  }, 100);
  report.add("a watermark hold reaches every broker, s (it binds after 5 s)", n,
             fmt("%.1f", took) + (held ? "" : " (never)") + (above ? fmt(", then %.0f checks above it", above) : ""),
             "< 5, and stays", held && took < 5 && above == 0);
  c.set_hold(n / 2, std::nullopt);
  const std::uint64_t t_release = w.now();
  const bool released = w.run_until(t_release + 30 * kSecond, [&] {
    for (std::size_t i = 0; i < n; ++i) {
      if (c.views(i)->view()->watermark_ms(w.now()) <= hold) return false;
    }
    return true;
  }, 50);
  report.add("the watermark moves on once the hold ends, s", n,
             fmt("%.1f", static_cast<double>(w.now() - t_release) / kSecond) + (released ? "" : " (never)"), "", released);
}

// ---- forms -----------------------------------------------------------------------------

void run_short(const SimConfig& config, Report& report) {
  std::printf("membership_sim --short: N = 10 and 100, a few seeds (the full table: --long)\n");
  for (std::size_t n : {10u, 100u}) {
    report_changes(n, 3, config.seed, report);
    report_coldstart(n, n == 10 ? 20 : 5, 0.05, config.seed, report);
    report_placement(n, report);
    report_agent(n, config.seed, report);
  }
  report_steady(10, 0.05, 2.0, config.seed, report);
  report_steady(100, 0.05, 0.25, config.seed, report);
  report_steady(10, 0.20, 1.0, config.seed, report);
}

void run_long(const SimConfig& config, Report& report) {
  std::printf("membership_sim --long: the full table\n");
  for (std::size_t n : {10u, 100u, 1000u}) {
    report_changes(n, n == 1000 ? 5 : 20, config.seed, report);
    report_coldstart(n, n == 1000 ? 10 : 100, 0.05, config.seed, report);
    report_placement(n, report);
  }
  report_agent(100, config.seed, report);
  report_steady(10, 0.05, 24, config.seed, report);
  report_steady(100, 0.05, 24, config.seed, report);
  report_steady(1000, 0.05, config.hours > 0 ? config.hours : 1, config.seed, report);
  report_steady(10, 0.20, 24, config.seed, report);
  report_steady(100, 0.20, 24, config.seed, report);
  report_steady(1000, 0.20, config.hours > 0 ? config.hours : 1, config.seed, report);
}

void run_scenario(const std::string& name, std::size_t n, const SimConfig& config, Report& report) {
  if (name == "changes") report_changes(n, config.runs, config.seed, report);
  else if (name == "coldstart") report_coldstart(n, config.runs, config.loss, config.seed, report);
  else if (name == "steady") report_steady(n, config.loss, config.hours, config.seed, report);
  else if (name == "placement") report_placement(n, report);
  else if (name == "agent") report_agent(n, config.seed, report);
  else report.note("unknown scenario " + name);
}

}  // namespace alldata::sim
