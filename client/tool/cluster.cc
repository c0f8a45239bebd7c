// `alldata cluster`: what a broker reports about the cluster (Admin::metadata), as a
// readable summary and member table, or as one JSON object.
#include "tool.h"

#include "alldata/client/admin.h"

#include <cstdio>

namespace alldata::tool {

namespace {

struct ClusterOptions {
  ConnectOptions connect;
  bool json = false;
};

std::string duration_text(std::chrono::milliseconds d) {
  using namespace std::chrono;
  if (d.count() == 0) return "unknown";
  if (d % hours(24) == milliseconds(0)) return "P" + std::to_string(d / hours(24)) + "D";
  if (d % hours(1) == milliseconds(0)) return "PT" + std::to_string(d / hours(1)) + "H";
  if (d % minutes(1) == milliseconds(0)) return "PT" + std::to_string(d / minutes(1)) + "M";
  return std::to_string(d.count()) + " ms";
}

std::string to_json(const client::ClusterMetadata& m) {
  std::string out = "{\"node_id\":";
  append_json_string(out, m.node_id);
  out += ",\"version\":";
  append_json_string(out, m.version);
  out += ",\"partitions\":" + std::to_string(m.partitions);
  out += ",\"replication_factor\":" + std::to_string(m.replication_factor);
  out += ",\"interval_ms\":" + std::to_string(m.interval.count());
  out += ",\"sync\":";
  out += m.sync ? "true" : "false";
  out += ",\"membership\":";
  append_json_string(out, m.membership_status);
  out += ",\"watermark_ms\":" + std::to_string(m.watermark_ms);
  out += ",\"watermark\":";
  if (m.watermark_ms == 0) {
    out += "null";
  } else {
    append_json_string(out, format_time_ms(m.watermark_ms));
  }
  out += ",\"members\":[";
  for (std::size_t i = 0; i < m.members.size(); ++i) {
    const auto& mi = m.members[i];
    if (i > 0) out.push_back(',');
    out += "{\"node_id\":";
    append_json_string(out, mi.node_id);
    out += ",\"client_address\":";
    append_json_string(out, mi.client_address);
    out += ",\"peer_address\":";
    append_json_string(out, mi.peer_address);
    out += ",\"zone\":";
    append_json_string(out, mi.zone);
    out += ",\"region\":";
    append_json_string(out, mi.region);
    out += ",\"live\":";
    out += mi.live ? "true" : "false";
    out += ",\"liveness\":";
    append_json_string(out, std::string(alldata::to_string(mi.liveness)));
    out += ",\"lifecycle\":";
    append_json_string(out, std::string(alldata::to_string(mi.lifecycle)));
    out += ",\"incarnation\":" + std::to_string(mi.incarnation);
    out += ",\"pending_hints\":" + std::to_string(mi.pending_hints);
    out += ",\"hand_over_partitions\":" + std::to_string(mi.hand_over_partitions);
    out += ",\"hand_over_bytes\":" + std::to_string(mi.hand_over_bytes);
    out += ",\"incomplete_since\":";
    if (mi.incomplete_since_ms == 0) {
      out += "null";
    } else {
      append_json_string(out, format_time_ms(mi.incomplete_since_ms));
    }
    out += ",\"incomplete_since_ms\":" + std::to_string(mi.incomplete_since_ms) + "}";
  }
  out += "],\"streams\":[";
  for (std::size_t i = 0; i < m.streams.size(); ++i) {
    if (i > 0) out.push_back(',');
    append_json_string(out, m.streams[i]);
  }
  out += "]}\n";
  return out;
}

// What a joining or leaving member still has to copy.
std::string moving_text(const client::MemberInfo& mi) {
  if (mi.lifecycle != Lifecycle::kJoining && mi.lifecycle != Lifecycle::kLeaving) return "-";
  char text[96];
  std::snprintf(text, sizeof text, "%s %llu partitions (%.1f MB done)",
                mi.lifecycle == Lifecycle::kJoining ? "pull" : "push",
                static_cast<unsigned long long>(mi.hand_over_partitions),
                static_cast<double>(mi.hand_over_bytes) / 1e6);
  return text;
}

void print_table(const client::ClusterMetadata& m) {
  std::printf("answered by         %s (version %s)\n", m.node_id.c_str(),
              m.version.empty() ? "?" : m.version.c_str());
  std::printf("partitions          %u per stream\n", m.partitions);
  std::printf("replication factor  %u\n", m.replication_factor);
  std::printf("interval            %s\n", duration_text(m.interval).c_str());
  std::printf("sync                %s\n", m.sync ? "on (acks after fsync)" : "off");
  if (!m.membership_status.empty()) std::printf("membership          %s\n", m.membership_status.c_str());
  std::printf("watermark           %s\n",
              m.watermark_ms == 0 ? "unknown"
                                  : (format_time_ms(m.watermark_ms) + " (ranges before it are "
                                                                       "complete)")
                                        .c_str());
  std::printf("\nMEMBERS (%zu)\n", m.members.size());
  std::size_t w_node = 7, w_client = 6, w_peer = 4, w_zone = 4, w_region = 6;
  for (const auto& mi : m.members) {
    w_node = std::max(w_node, mi.node_id.size());
    w_client = std::max(w_client, mi.client_address.size());
    w_peer = std::max(w_peer, mi.peer_address.size());
    w_zone = std::max(w_zone, mi.zone.size());
    w_region = std::max(w_region, mi.region.size());
  }
  auto row = [&](const std::string& node, const std::string& client, const std::string& peer,
                 const std::string& zone, const std::string& region, const std::string& liveness,
                 const std::string& lifecycle, const std::string& incarnation, const std::string& hints,
                 const std::string& incomplete, const std::string& moving) {
    std::printf("%-*s  %-*s  %-*s  %-*s  %-*s  %-8s  %-9s  %-13s  %-7s  %-24s  %s\n", static_cast<int>(w_node),
                node.c_str(), static_cast<int>(w_client), client.c_str(), static_cast<int>(w_peer), peer.c_str(),
                static_cast<int>(w_zone), zone.c_str(), static_cast<int>(w_region), region.c_str(),
                liveness.c_str(), lifecycle.c_str(), incarnation.c_str(), hints.c_str(), incomplete.c_str(),
                moving.c_str());
  };
  row("NODE-ID", "CLIENT", "PEER", "ZONE", "REGION", "LIVENESS", "LIFECYCLE", "INCARNATION", "HINTS",
      "INCOMPLETE-SINCE", "MOVING");
  for (const auto& mi : m.members) {
    row(mi.node_id, mi.client_address, mi.peer_address.empty() ? "-" : mi.peer_address,
        mi.zone.empty() ? "-" : mi.zone, mi.region.empty() ? "-" : mi.region,
        std::string(alldata::to_string(mi.liveness)), std::string(alldata::to_string(mi.lifecycle)),
        std::to_string(mi.incarnation), std::to_string(mi.pending_hints),
        mi.incomplete_since_ms == 0 ? "-" : format_time_ms(mi.incomplete_since_ms), moving_text(mi));
  }
  std::printf("\nSTREAMS (%zu)\n", m.streams.size());
  for (const auto& s : m.streams) std::printf("%s\n", s.c_str());
}

int run_cluster(const ClusterOptions& o) {
  auto bootstrap = bootstrap_or_complain(o.connect);
  if (!bootstrap) return 2;
  auto admin = client::Admin::connect(admin_config(o.connect, *bootstrap));
  if (!admin) {
    complain("cluster", admin.error());
    return 1;
  }
  auto m = (*admin)->metadata(true);
  if (!m) {
    complain("cluster", m.error());
    return 1;
  }
  if (o.json) {
    std::fputs(to_json(*m).c_str(), stdout);
  } else {
    print_table(*m);
  }
  return 0;
}

int run_remove(const ConnectOptions& connect, const std::string& node_id) {
  auto bootstrap = bootstrap_or_complain(connect);
  if (!bootstrap) return 2;
  auto admin = client::Admin::connect(admin_config(connect, *bootstrap));
  if (!admin) {
    complain("cluster remove", admin.error());
    return 1;
  }
  if (auto st = (*admin)->remove_member(node_id); !st) {
    complain("cluster remove", st.error());
    return 1;
  }
  std::printf("%s is removed: the other brokers restore its copies from the remaining "
              "replicas; its node id is refused from now on\n",
              node_id.c_str());
  return 0;
}

}  // namespace

void register_cluster(CLI::App& app, Runner& run) {
  auto o = std::make_shared<ClusterOptions>();
  auto* cmd = app.add_subcommand(
      "cluster", "Show what a broker reports: members and their state, partitions, "
                 "replication factor, interval, completeness watermark, streams.");
  add_connect_options(*cmd, o->connect);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of a table");
  cmd->callback([o, cmd, &run] {
    if (cmd->get_subcommands().empty()) run = [o] { return run_cluster(*o); };
  });

  cmd->fallthrough();  // `alldata cluster remove|decommission NODE_ID -b ADDR` read -b too
  auto node = std::make_shared<std::string>();
  auto* remove = cmd->add_subcommand(
      "remove", "Remove a broker that will never return: the others restore the replication "
                "factor from the copies that remain, and its node id is refused afterwards.");
  remove->add_option("NODE_ID", *node, "The member to remove")->required();
  remove->callback([o, node, &run] { run = [o, node] { return run_remove(o->connect, *node); }; });

  struct Decommission {
    std::string node;
    bool no_wait = false;
    int timeout_s = 86400;
  };
  auto d = std::make_shared<Decommission>();
  auto* decommission = cmd->add_subcommand(
      "decommission",
      "Retire a live broker for good: it pushes its partitions to the brokers that take them "
      "over, delivers its hints, leaves the cluster and exits. Waits until it has left, showing "
      "its progress (survives a restart of any broker involved).");
  decommission->add_option("NODE_ID", d->node, "The member to decommission")->required();
  decommission->add_flag("--no-wait", d->no_wait, "Return once the departure has started");
  decommission->add_option("--timeout", d->timeout_s, "Stop waiting after this many seconds (it carries on)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  decommission->callback([o, d, &run] {
    run = [o, d] { return run_decommission(o->connect, d->node, !d->no_wait, d->timeout_s); };
  });
}

}  // namespace alldata::tool
