#include "alldata/client/scanner.h"

#include "alldata/protocol/wire.h"
#include "broker_connection.h"
#include "cluster_metadata.h"
#include "scan_merge.h"
#include "scan_plan.h"

#include <spdlog/logger.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

namespace alldata::client {

using detail::BrokerConnection;
using detail::RetryBudget;
using detail::ScanMerger;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{1000};

std::chrono::milliseconds doubled(std::chrono::milliseconds d) {
  return std::min(d * 2, kMaxBackoff);
}

}  // namespace

// Model: a *reader* reads one partition from one replica at a time, with its own cursor
// (next_from); each reader is one slot of the k-way merge. kOne has one reader per
// partition, kQuorum floor(RF/2)+1 readers per partition on distinct replicas (the merge
// then holds each event once per reader, and next() drops the repeats). Replicas are tried
// in scan_plan.h's order (live and known complete first); a kOne scan of a partition none
// of whose live replicas is known complete merges all of them the same way. A *node* is one
// broker with at most one connection, shared by every reader currently on it; requests are
// pipelined and poll() finds which connection has an answer.
class Scanner::Impl {
 public:
  Impl(ClientConfig config, ScanOptions options)
      : config_(std::move(config)), options_(std::move(options)), merger_(0),
        cursor_(options_.from) {
    const std::uint32_t page = options_.page_events != 0 ? options_.page_events : 1000;
    low_water_ = page / 2;
  }

  Status open() {
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

  Result<std::optional<Event>> next() {
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

  Result<std::vector<Event>> next_page(std::size_t max_events) {
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

  Key cursor() const { return cursor_; }
  const BrokerInfo& broker() const { return broker_; }

 private:
  struct Node {
    std::string id;
    std::string address;
    bool live = false;
    std::uint64_t incomplete_since_ms = 0;  // may lack events from then on (0 = none known)
    std::unique_ptr<BrokerConnection> conn;
    std::string out;                                         // frames to write
    std::unordered_map<std::uint64_t, std::size_t> pending;  // request id -> reader
    Clock::time_point deadline{};    // an answer is due by then while pending
    Clock::time_point retry_at{};    // after a failure: not tried again before
    std::chrono::milliseconds backoff = kFirstBackoff;
    std::optional<Error> last_error;
  };

  struct Reader {
    std::size_t group = 0;
    Key next_from;
    bool done = false;
    bool in_flight = false;
    std::optional<Key> last_key;
    int node = -1;  // the replica being read, -1 = none chosen
    // Failures since the last page that came back: the replicas tried in this round,
    // each replica's last error, when the streak began, when to start the next round.
    std::set<int> tried;
    std::map<int, Error> errors;
    std::optional<Error> last_error;
    std::optional<Clock::time_point> streak_start;
    Clock::time_point retry_at{};
    std::chrono::milliseconds backoff = kFirstBackoff;
  };

  struct Group {  // one partition
    std::uint32_t partition = 0;
    std::vector<int> candidates;      // node indices in the order to try
    bool merge = false;               // every live replica is read (none known complete)
    std::vector<std::size_t> readers;
  };

  int add_node(const std::string& id, const std::string& address, bool live) {
    Node n;
    n.id = id;
    n.address = address;
    n.live = live;
    nodes_.push_back(std::move(n));
    node_index_[id] = static_cast<int>(nodes_.size() - 1);
    return static_cast<int>(nodes_.size() - 1);
  }

  int node_of(const std::string& id, const std::string& address, bool live) {
    auto it = node_index_.find(id);
    if (it != node_index_.end()) return it->second;
    return add_node(id, address, live);  // a replica not in the member list: no address
  }

  Result<ClusterMetadata> fetch_metadata(BrokerConnection& conn) {
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

  void log_warn(const std::string& what) {
    if (config_.logger) config_.logger->warn("scanner: {}", what);
  }

  std::string describe(int node) const {
    const Node& n = nodes_[node];
    return n.id + " at " + (n.address.empty() ? std::string("(no client address)") : n.address);
  }

  // Picks the replica `ri` reads next: the first candidate it has not tried in this round,
  // not read by another reader of the same partition, and not in a connection back-off.
  // When the round is over, either waits (sets retry_at) or, past the retry budget, fails.
  Status choose(std::size_t ri) {
    Reader& r = readers_[ri];
    const Group& g = groups_[r.group];
    const auto now = Clock::now();
    for (int c : g.candidates) {
      if (r.tried.count(c) != 0) continue;
      bool sibling = false;
      for (std::size_t other : g.readers) sibling |= other != ri && readers_[other].node == c;
      if (sibling) continue;
      if (nodes_[c].retry_at > now) {
        r.tried.insert(c);
        if (nodes_[c].last_error) r.errors.insert_or_assign(c, *nodes_[c].last_error);
        continue;
      }
      r.node = c;
      return {};
    }
    if (!r.streak_start) r.streak_start = now;
    if (now - *r.streak_start >= config_.retry_timeout) {
      if (g.merge && retire(ri)) return {};
      return no_replica_left(ri);
    }
    r.retry_at = now + r.backoff;
    r.backoff = doubled(r.backoff);
    r.tried.clear();
    return {};
  }

  // A reader of a merged partition that found no replica of its own: it stops while
  // another reader of the partition still reads (the merge is best effort past that).
  bool retire(std::size_t ri) {
    const Group& g = groups_[readers_[ri].group];
    bool other = false;
    for (std::size_t o : g.readers) other |= o != ri && !readers_[o].done;
    if (!other) return false;
    log_warn("partition " + std::to_string(g.partition) + ": one of the replicas merged for it " +
             "could not be read; going on with the others");
    readers_[ri].done = true;
    merger_.add(ri, {}, true);
    return true;
  }

  Error no_replica_left(std::size_t ri) const {
    const Reader& r = readers_[ri];
    const Group& g = groups_[r.group];
    std::string msg = "partition " + std::to_string(g.partition) + " of stream '" +
                      options_.stream + "': ";
    if (!options_.replica.empty()) {
      msg += "replica " + options_.replica + " could not be read";
    } else if (g.readers.size() > 1) {
      msg += "fewer than " + std::to_string(g.readers.size()) +
             " replicas could be read for a quorum";
    } else {
      msg += "no replica could be read";
    }
    msg += " (retried for " + std::to_string(config_.retry_timeout.count()) + " ms); tried ";
    bool first = true;
    for (int c : g.candidates) {
      auto it = r.errors.find(c);
      if (it == r.errors.end()) continue;
      msg += (first ? "" : "; ") + describe(c) + ": " + it->second.to_string();
      first = false;
    }
    if (first) msg += "nothing (every replica is read by another reader of the partition)";
    return Error(r.last_error ? r.last_error->code : ErrorCode::kConnectionFailed, msg);
  }

  // The reader's replica failed it: the next choose() moves on, from the same cursor.
  void reader_failed(std::size_t ri, const Error& error) {
    Reader& r = readers_[ri];
    if (r.node >= 0) {
      r.tried.insert(r.node);
      r.errors.insert_or_assign(r.node, error);
    }
    r.last_error = error;
    if (!r.streak_start) r.streak_start = Clock::now();
    r.in_flight = false;
    r.node = -1;
  }

  // The node's connection broke (or never came up): everything in flight there is asked
  // again elsewhere, and every reader on it switches replica.
  void node_failed(int node, const Error& error) {
    Node& n = nodes_[node];
    if (n.conn) n.conn->drop();
    n.out.clear();
    for (auto& [id, ri] : n.pending) readers_[ri].in_flight = false;
    n.pending.clear();
    n.last_error = error;
    n.retry_at = Clock::now() + n.backoff;
    n.backoff = doubled(n.backoff);
    log_warn("broker " + describe(node) + ": " + error.to_string());
    for (std::size_t ri = 0; ri < readers_.size(); ++ri) {
      if (readers_[ri].node == node) reader_failed(ri, error);
    }
  }

  Status connect_node(int node) {
    Node& n = nodes_[node];
    if (n.address.empty()) {
      return Error(ErrorCode::kConnectionFailed,
                   "the cluster metadata gives no client address for broker " + n.id);
    }
    if (!n.conn) {
      if (auto hp = detail::parse_host_port(n.address); !hp) {
        return Error(ErrorCode::kConnectionFailed, "broker " + n.id + " advertises a bad client address: " +
                                                       hp.error().message);
      }
      ClientConfig c = config_;
      c.bootstrap = {n.address};
      c.logger = nullptr;  // the scanner logs its connections and failures itself
      n.conn = std::make_unique<BrokerConnection>(std::move(c));
    }
    if (auto ok = n.conn->connect(); !ok) return ok;
    if (n.conn->info().node_id != n.id) {
      n.conn->drop();
      return Error(ErrorCode::kConnectionFailed, n.address + " answered as broker " +
                                                     n.conn->info().node_id + ", not " + n.id);
    }
    if (config_.logger) config_.logger->info("scanner: connected to broker {}", describe(node));
    return {};
  }

  // Sends the page requests the merge needs (and prefetches) to each reader's replica,
  // then handles the answers that are there (waiting for at least one, or a retry time).
  Status pump() {
    std::optional<Clock::time_point> earliest_retry;
    for (std::size_t i = 0; i < readers_.size(); ++i) {
      Reader& r = readers_[i];
      if (r.done || r.in_flight || merger_.buffered(i) > low_water_) continue;
      for (;;) {
        if (r.retry_at > Clock::now()) {
          earliest_retry = std::min(earliest_retry.value_or(r.retry_at), r.retry_at);
          break;
        }
        if (r.node < 0) {
          if (auto ok = choose(i); !ok) return ok;
          continue;
        }
        const int node = r.node;
        Node& n = nodes_[node];
        if (!n.conn || !n.conn->connected()) {
          if (auto ok = connect_node(node); !ok) {
            node_failed(node, ok.error());
            continue;
          }
        }
        const std::uint64_t id = n.conn->next_id();
        encode_scan(id, i, n.out);
        if (n.pending.empty()) n.deadline = Clock::now() + config_.request_timeout;
        n.pending[id] = i;
        r.in_flight = true;
        break;
      }
    }
    for (std::size_t node = 0; node < nodes_.size(); ++node) {
      Node& n = nodes_[node];
      if (n.out.empty()) continue;
      std::string frames = std::move(n.out);
      n.out.clear();
      if (auto ok = n.conn->write(frames); !ok) node_failed(static_cast<int>(node), ok.error());
    }
    return wait_and_handle(earliest_retry);
  }

  Status wait_and_handle(std::optional<Clock::time_point> earliest_retry) {
    std::vector<pollfd> fds;
    std::vector<int> polled;
    std::optional<Clock::time_point> wake = earliest_retry;
    for (std::size_t node = 0; node < nodes_.size(); ++node) {
      const Node& n = nodes_[node];
      if (n.pending.empty()) continue;
      fds.push_back(pollfd{n.conn->native_handle(), POLLIN, 0});
      polled.push_back(static_cast<int>(node));
      wake = std::min(wake.value_or(n.deadline), n.deadline);
    }
    if (fds.empty()) {
      // Everything needed is waiting out a retry back-off.
      if (earliest_retry) std::this_thread::sleep_until(*earliest_retry);
      return {};
    }
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*wake - Clock::now());
    const int timeout_ms = static_cast<int>(std::clamp<std::int64_t>(wait.count(), 0, 60'000));
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      return Error(ErrorCode::kInternal, std::string("poll failed: ") + std::strerror(errno));
    }
    for (std::size_t k = 0; ready > 0 && k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const int node = polled[k];
      Node& n = nodes_[node];
      if (n.pending.empty() || !n.conn->connected()) continue;
      auto frame = n.conn->read();
      if (!frame) {
        node_failed(node, frame.error());
        continue;
      }
      if (!n.pending.empty()) n.deadline = Clock::now() + config_.request_timeout;
      if (auto ok = handle(node, *frame); !ok) return ok;
    }
    const auto now = Clock::now();
    for (std::size_t node = 0; node < nodes_.size(); ++node) {
      Node& n = nodes_[node];
      if (n.pending.empty() || n.deadline > now) continue;
      node_failed(static_cast<int>(node),
                  Error(ErrorCode::kTimeout, "no answer to a scan within " +
                                                 std::to_string(config_.request_timeout.count()) +
                                                 " ms [broker " + n.address + "]"));
    }
    return {};
  }

  void encode_scan(std::uint64_t id, std::size_t ri, std::string& out) {
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

  Status handle(int node, const protocol::FrameBuffer& frame) {
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

  ClientConfig config_;
  ScanOptions options_;
  BrokerInfo broker_;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, int> node_index_;
  std::vector<Group> groups_;
  std::vector<Reader> readers_;  // reader index = merge slot
  ScanMerger merger_;
  std::size_t low_water_ = 500;
  Key cursor_;
  std::optional<Error> failed_;
};

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
