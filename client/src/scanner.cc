#include "scanner_impl.h"

#include "alldata/protocol/wire.h"
#include "scan_plan.h"

#include <spdlog/logger.h>

#include <algorithm>

namespace alldata::client {

using detail::BrokerConnection;
using detail::RetryBudget;
using namespace scanner_detail;

Status Scanner::Impl::open() {
  if (options_.stream.empty()) return Error(ErrorCode::kInvalidStream, "empty stream name");
  if (options_.from > options_.to) {
    return Error(ErrorCode::kInvalidRange, "scan range starts after it ends (from " +
                                               options_.from.to_text() + " > to " +
                                               options_.to.to_text() + ")");
  }
  if (!options_.replica.empty() && options_.consistency == ReadConsistency::kQuorum) {
    return Error(ErrorCode::kBadRequest,
                 "a scan of one replica (" + options_.replica +
                     ") cannot also ask for quorum consistency");
  }
  auto boot = std::make_unique<BrokerConnection>(config_);
  auto meta = fetch_metadata(*boot);
  if (!meta) return meta.error();
  broker_ = boot->info();
  const std::uint32_t partitions = broker_.partitions;
  if (options_.partition && *options_.partition >= partitions) {
    return Error(ErrorCode::kInvalidPartition,
                 "partition " + std::to_string(*options_.partition) + " does not exist: the " +
                     "cluster has " + std::to_string(partitions) + " partitions per stream");
  }

  // Nodes: every member, and always the broker that answered (over the connection we
  // already have; reconnects go back to that same address).
  for (const auto& m : meta->members) {
    if (node_index_.count(m.node_id) != 0) continue;
    add_node(m.node_id, detail::reachable_address(m.client_address, broker_.address), m.live);
    nodes_.back().incomplete_since_ms = m.incomplete_since_ms;
  }
  const int answering = node_of(broker_.node_id, broker_.address, true);
  nodes_[answering].address = broker_.address;
  nodes_[answering].live = true;
  boot->keep_only_current();
  nodes_[answering].conn = std::move(boot);

  int replica_node = -1;
  if (!options_.replica.empty()) {
    auto it = node_index_.find(options_.replica);
    if (it == node_index_.end()) {
      std::string known;
      for (const auto& n : nodes_) known += (known.empty() ? "" : ", ") + n.id;
      return Error(ErrorCode::kBadRequest, "no broker with node id '" + options_.replica +
                                               "' in the cluster (members: " + known + ")");
    }
    replica_node = it->second;
  }

  std::vector<std::uint32_t> wanted;
  if (options_.partition) {
    wanted.push_back(*options_.partition);
  } else {
    for (std::uint32_t p = 0; p < partitions; ++p) wanted.push_back(p);
  }
  const std::uint32_t rf = std::max<std::uint32_t>(meta->replication_factor, 1);
  for (std::uint32_t p : wanted) {
    Group g;
    g.partition = p;
    std::size_t readers = 1;
    if (replica_node >= 0) {
      g.candidates = {replica_node};
    } else if (p < meta->replica_sets.size() && !meta->replica_sets[p].empty()) {
      std::vector<detail::ReplicaState> states;
      for (const auto& id : meta->replica_sets[p]) {
        const int n = node_of(id, "", false);
        states.push_back({n, nodes_[n].live, nodes_[n].incomplete_since_ms});
      }
      const detail::ReplicaOrder order = detail::order_replicas(states, options_.to.time_ms());
      g.candidates = order.candidates;
      // No live replica known complete for the range: read every live one and merge
      // (a quorum read merges replicas already).
      if (options_.consistency == ReadConsistency::kOne && order.live_complete == 0 && order.live > 1) {
        g.merge = true;
        readers = order.live;
      }
    } else {
      g.candidates = {answering};  // a broker without replica sets serves everything
    }
    if (options_.consistency == ReadConsistency::kQuorum) {
      readers = std::max(readers, std::min<std::size_t>(rf / 2 + 1, g.candidates.size()));
    }
    for (std::size_t k = 0; k < readers; ++k) {
      g.readers.push_back(readers_.size());
      Reader r;
      r.group = groups_.size();
      r.next_from = options_.from;
      readers_.push_back(std::move(r));
    }
    groups_.push_back(std::move(g));
  }
  merger_ = ScanMerger(readers_.size());
  if (options_.from == options_.to) {
    for (std::size_t i = 0; i < readers_.size(); ++i) {
      readers_[i].done = true;
      merger_.add(i, {}, true);
    }
  }
  return {};
}

Result<std::optional<Event>> Scanner::Impl::next() {
  if (failed_) return *failed_;
  for (;;) {
    if (auto popped = merger_.pop()) {
      // Below the cursor = already returned: the same event from another replica.
      if (popped->second.key < cursor_) continue;
      cursor_ = popped->second.key.successor();
      return std::optional<Event>(std::move(popped->second));
    }
    if (merger_.finished()) return std::optional<Event>();
    if (auto ok = pump(); !ok) {
      failed_ = ok.error();
      return *failed_;
    }
  }
}

Result<std::vector<Event>> Scanner::Impl::next_page(std::size_t max_events) {
  std::vector<Event> page;
  while (page.size() < max_events) {
    auto e = next();
    if (!e) {
      if (page.empty()) return e.error();
      break;  // the error stays and comes with the next call
    }
    if (!*e) break;
    page.push_back(std::move(**e));
  }
  return page;
}

int Scanner::Impl::add_node(const std::string& id, const std::string& address, bool live) {
  Node n;
  n.id = id;
  n.address = address;
  n.live = live;
  nodes_.push_back(std::move(n));
  node_index_[id] = static_cast<int>(nodes_.size() - 1);
  return static_cast<int>(nodes_.size() - 1);
}

int Scanner::Impl::node_of(const std::string& id, const std::string& address, bool live) {
  auto it = node_index_.find(id);
  if (it != node_index_.end()) return it->second;
  return add_node(id, address, live);  // a replica not in the member list: no address
}

Result<ClusterMetadata> Scanner::Impl::fetch_metadata(BrokerConnection& conn) {
  RetryBudget budget(config_.retry_timeout);
  for (;;) {
    auto r = detail::request_metadata(conn, false, options_.stream);
    if (r) return r;
    if (r.error().code == ErrorCode::kUnknownRequest && conn.connected()) {
      // A broker that does not know metadata: it serves every partition itself.
      ClusterMetadata m;
      m.node_id = conn.info().node_id;
      m.partitions = conn.info().partitions;
      return m;
    }
    if (detail::breaks_connection(r.error().code)) conn.drop();
    if (!is_retriable(r.error().code) || !budget.wait_before_retry()) return r;
  }
}

void Scanner::Impl::log_warn(const std::string& what) {
  if (config_.logger) config_.logger->warn("scanner: {}", what);
}

std::string Scanner::Impl::describe(int node) const {
  const Node& n = nodes_[node];
  return n.id + " at " + (n.address.empty() ? std::string("(no client address)") : n.address);
}

void Scanner::Impl::encode_scan(std::uint64_t id, std::size_t ri, std::string& out) {
  const Reader& r = readers_[ri];
  capnp::MallocMessageBuilder message(128);
  auto request = message.initRoot<wire::Request>();
  request.setCorrelationId(id);
  auto scan = request.initScan();
  scan.setStream(protocol::text(options_.stream));
  scan.setPartition(groups_[r.group].partition);
  scan.setFrom(protocol::data(r.next_from.view()));
  if (options_.to != Key::max()) scan.setTo(protocol::data(options_.to.view()));
  scan.setMaxEvents(options_.page_events);
  scan.setMaxBytes(options_.page_bytes);
  protocol::append_frame(message, out);
}

Status Scanner::Impl::handle(int node, const protocol::FrameBuffer& frame) {
  Node& n = nodes_[node];
  const std::string address = n.address;
  std::size_t ri = 0;
  std::vector<Event> events;
  bool done = false;
  Key next_from;
  std::optional<Error> broker_error;
  bool stale = false;
  auto decoded = detail::with_response(frame, address, [&](wire::Response::Reader r) -> Status {
    auto it = n.pending.find(r.getCorrelationId());
    if (it == n.pending.end()) {
      stale = true;  // an answer to a request given up on
      return {};
    }
    ri = it->second;
    n.pending.erase(it);
    readers_[ri].in_flight = false;
    if (r.getError() != wire::ErrorCode::OK) {
      broker_error = detail::broker_error(r.getError(), protocol::view(r.getMessage()), address);
      return {};
    }
    if (!r.isScan()) return detail::protocol_error("answer to scan carries no result", address);
    auto result = r.getScan();
    const Reader& s = readers_[ri];
    const std::uint32_t partition = groups_[s.group].partition;
    std::optional<Key> last = s.last_key;
    auto list = result.getEvents();
    events.reserve(list.size());
    for (auto e : list) {
      auto key = Key::from_bytes(protocol::view(e.getKey()));
      if (!key) return detail::protocol_error("scan result has an event without a key", address);
      if (*key < s.next_from || *key >= options_.to || (last && *key <= *last)) {
        return detail::protocol_error("scan result holds key " + key->to_text() +
                                          " out of order or outside the range",
                                      address);
      }
      last = *key;
      Event ev;
      ev.key = *key;
      ev.partition = partition;
      ev.payload = std::string(protocol::view(e.getPayload()));
      if (e.hasHeaders()) {
        for (auto h : e.getHeaders()) {
          ev.headers.push_back(Header{std::string(protocol::view(h.getName())),
                                      std::string(protocol::view(h.getValue()))});
        }
      }
      events.push_back(std::move(ev));
    }
    done = result.getDone();
    if (!done) {
      auto nf = result.getNextFrom();
      if (nf.size() == Key::kSize) {
        next_from = Key::from_raw(nf.begin());
      } else if (last) {
        next_from = last->successor();
      } else {
        return detail::protocol_error("scan result is not done but says nowhere to go on",
                                      address);
      }
      if (next_from <= s.next_from && events.empty()) {
        return detail::protocol_error("scan made no progress", address);
      }
      if (next_from >= options_.to) done = true;
    }
    return {};
  });
  if (!decoded) {
    node_failed(node, decoded.error());
    return {};
  }
  if (stale) return {};
  Reader& r = readers_[ri];
  if (broker_error) {
    if (!is_retriable(broker_error->code)) return *broker_error;
    if (detail::breaks_connection(broker_error->code)) {
      node_failed(node, *broker_error);
    } else {
      log_warn("broker " + describe(node) + ": " + broker_error->to_string());
      reader_failed(ri, *broker_error);  // e.g. overloaded: the next replica
    }
    return {};
  }
  n.backoff = kFirstBackoff;
  r.streak_start.reset();
  r.backoff = kFirstBackoff;
  r.tried.clear();
  r.errors.clear();
  r.last_error.reset();
  if (!events.empty()) r.last_key = events.back().key;
  if (!done) r.next_from = next_from;
  r.done = done;
  merger_.add(ri, std::move(events), done);
  return {};
}


Result<std::unique_ptr<Scanner>> Scanner::open(ClientConfig config, ScanOptions options) {
  if (auto ok = BrokerConnection::check_bootstrap(config); !ok) return ok.error();
  auto impl = std::make_unique<Impl>(std::move(config), std::move(options));
  if (auto ok = impl->open(); !ok) return ok.error();
  return std::unique_ptr<Scanner>(new Scanner(std::move(impl)));
}

Scanner::Scanner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Scanner::~Scanner() = default;

Result<std::optional<Event>> Scanner::next() { return impl_->next(); }
Result<std::vector<Event>> Scanner::next_page(std::size_t max_events) {
  return impl_->next_page(max_events);
}
Key Scanner::cursor() const { return impl_->cursor(); }
const BrokerInfo& Scanner::broker() const { return impl_->broker(); }


}  // namespace alldata::client
