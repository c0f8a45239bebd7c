#include "scanner_impl.h"

#include <spdlog/logger.h>

namespace alldata::client {

using namespace scanner_detail;

bool Scanner::Impl::read_by_sibling(std::size_t ri, int node) const {
  for (std::size_t other : groups_[readers_[ri].group].readers) {
    if (other != ri && readers_[other].node == node) return true;
  }
  return false;
}

Status Scanner::Impl::choose(std::size_t ri) {
  Reader& r = readers_[ri];
  const Group& g = groups_[r.group];
  const auto now = Clock::now();
  for (int c : g.candidates) {
    if (r.tried.count(c) != 0) continue;
    if (read_by_sibling(ri, c)) continue;
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

bool Scanner::Impl::retire(std::size_t ri) {
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

Error Scanner::Impl::no_replica_left(std::size_t ri) const {
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

void Scanner::Impl::reader_failed(std::size_t ri, const Error& error) {
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

void Scanner::Impl::node_failed(int node, const Error& error) {
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

void Scanner::Impl::switch_slow_readers() {
  const auto now = Clock::now();
  for (std::size_t ri = 0; ri < readers_.size(); ++ri) {
    Reader& r = readers_[ri];
    if (!r.in_flight || r.node < 0 || now - r.asked_at < kSwitchReplicaAfter) continue;
    if (!has_free_replica(ri, now)) continue;
    Node& n = nodes_[r.node];
    for (auto it = n.pending.begin(); it != n.pending.end(); ++it) {
      if (it->second != ri) continue;
      n.pending.erase(it);
      break;
    }
    const Error slow(ErrorCode::kTimeout, "no page within " +
                                              std::to_string(kSwitchReplicaAfter.count()) +
                                              " ms; reading another replica");
    log_warn("partition " + std::to_string(groups_[r.group].partition) + ": broker " +
             describe(r.node) + ": " + slow.message);
    reader_failed(ri, slow);
  }
}

bool Scanner::Impl::has_free_replica(std::size_t ri, Clock::time_point now) const {
  const Reader& r = readers_[ri];
  const Group& g = groups_[r.group];
  for (int c : g.candidates) {
    if (c == r.node || r.tried.count(c) != 0 || nodes_[c].retry_at > now) continue;
    if (!read_by_sibling(ri, c)) return true;
  }
  return false;
}

}  // namespace alldata::client
