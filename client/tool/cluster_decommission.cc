// `alldata cluster decommission NODE_ID`: asks that broker (found through -b) to leave the
// cluster for good (Admin::decommission), then follows its progress through another broker
// until it has left: partitions still to push, bytes pushed, hints it still holds.
#include "tool.h"

#include "alldata/client/admin.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

namespace alldata::tool {

namespace {

const client::MemberInfo* find(const client::ClusterMetadata& m, const std::string& node_id) {
  for (const auto& mi : m.members) {
    if (mi.node_id == node_id) return &mi;
  }
  return nullptr;
}

std::string progress_line(const std::string& node_id, const client::MemberInfo& mi) {
  char line[256];
  std::snprintf(line, sizeof line, "%s: %s, %llu partitions to push, %.1f MB pushed, %llu hints held",
                node_id.c_str(), std::string(alldata::to_string(mi.lifecycle)).c_str(),
                static_cast<unsigned long long>(mi.hand_over_partitions),
                static_cast<double>(mi.hand_over_bytes) / 1e6,
                static_cast<unsigned long long>(mi.pending_hints));
  return line;
}

// Follows `node_id` through `watcher` (a broker other than it) until it is gone.
int follow(client::Admin& watcher, const std::string& node_id, int timeout_s) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  auto last_line = std::chrono::steady_clock::time_point{};
  for (;;) {
    auto m = watcher.metadata(false);
    if (!m) {
      complain("cluster decommission", m.error());
      return 1;
    }
    const client::MemberInfo* mi = find(*m, node_id);
    if (mi == nullptr || mi->lifecycle == Lifecycle::kLeft || mi->lifecycle == Lifecycle::kRemoved) {
      if (tty) std::fputs("\r\033[K", stderr);
      std::printf("%s has left the cluster: its partitions are on their new owners\n", node_id.c_str());
      return 0;
    }
    const auto now = std::chrono::steady_clock::now();
    if (mi->lifecycle != Lifecycle::kLeaving) {
      // Its departure has not reached this broker's view yet.
    } else if (tty) {
      std::fprintf(stderr, "\r\033[K%s", progress_line(node_id, *mi).c_str());
    } else if (now - last_line >= std::chrono::seconds(10)) {
      std::fprintf(stderr, "%s\n", progress_line(node_id, *mi).c_str());
      last_line = now;
    }
    if (now >= deadline) {
      if (tty) std::fputs("\n", stderr);
      std::fprintf(stderr,
                   "alldata: cluster decommission: %s has not left after %d s (it carries on; "
                   "`alldata cluster` shows its progress)\n",
                   node_id.c_str(), timeout_s);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

int run_decommission(const ConnectOptions& connect, const std::string& node_id, bool wait, int timeout_s) {
  auto bootstrap = bootstrap_or_complain(connect);
  if (!bootstrap) return 2;
  auto first = client::Admin::connect(admin_config(connect, *bootstrap));
  if (!first) {
    complain("cluster decommission", first.error());
    return 1;
  }
  auto m = (*first)->metadata(false);
  if (!m) {
    complain("cluster decommission", m.error());
    return 1;
  }
  const client::MemberInfo* target = find(*m, node_id);
  if (target == nullptr) {
    complain("cluster decommission",
             Error(ErrorCode::kBadRequest, "no member " + node_id + " (as broker " + m->node_id + " sees it)"));
    return 1;
  }
  // The request goes to the broker that leaves; progress is read from another one.
  std::unique_ptr<client::Admin> direct;
  client::Admin* leaving = first->get();
  if ((*first)->broker().node_id != node_id) {
    auto c = client::Admin::connect(admin_config(connect, {target->client_address}));
    if (!c) {
      complain("cluster decommission",
               Error(c.error().code, node_id + " at " + target->client_address + ": " + c.error().message +
                                         " (a broker that is down cannot hand its data over: use "
                                         "`alldata cluster remove` for one that will not return)"));
      return 1;
    }
    direct = std::move(*c);
    leaving = direct.get();
  }
  if (auto st = leaving->decommission(node_id); !st) {
    complain("cluster decommission", st.error());
    return 1;
  }
  std::printf("%s is leaving: it pushes its partitions to their new owners, delivers its hints, "
              "leaves the cluster and exits\n",
              node_id.c_str());
  if (!wait) return 0;
  std::fflush(stdout);
  client::Admin* watcher = (*first)->broker().node_id != node_id ? first->get() : nullptr;
  std::unique_ptr<client::Admin> other;
  if (watcher == nullptr) {
    std::vector<std::string> others;
    for (const auto& mi : m->members) {
      if (mi.node_id != node_id && mi.live && !mi.client_address.empty()) others.push_back(mi.client_address);
    }
    auto c = others.empty() ? Result<std::unique_ptr<client::Admin>>(
                                  Error(ErrorCode::kConnectionFailed, "no other live broker is known"))
                            : client::Admin::connect(admin_config(connect, others));
    if (!c) {
      complain("cluster decommission (following its progress)", c.error());
      return 1;
    }
    other = std::move(*c);
    watcher = other.get();
  }
  return follow(*watcher, node_id, timeout_s);
}

}  // namespace alldata::tool
