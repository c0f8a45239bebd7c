#include "alldata/client/scanner.h"

#include "alldata/protocol/wire.h"
#include "broker_connection.h"
#include "scan_merge.h"

#include <spdlog/logger.h>

#include <thread>
#include <unordered_map>

namespace alldata::client {

using detail::BrokerConnection;
using detail::RetryBudget;
using detail::ScanMerger;

class Scanner::Impl {
 public:
  Impl(ClientConfig config, ScanOptions options)
      : options_(std::move(options)),
        conn_(std::move(config)),
        budget_(conn_.config().retry_timeout),
        merger_(0),
        cursor_(options_.from) {
    const std::uint32_t page = options_.page_events != 0 ? options_.page_events : 1000;
    low_water_ = page / 2;
  }

  // Connects and sets up one slot per partition to read.
  Status open() {
    if (options_.stream.empty()) return Error(ErrorCode::kInvalidStream, "empty stream name");
    if (options_.from > options_.to) {
      return Error(ErrorCode::kInvalidRange, "scan range starts after it ends (from " +
                                                 options_.from.to_text() + " > to " +
                                                 options_.to.to_text() + ")");
    }
    if (auto ok = connect_with_retries(); !ok) return ok;
    const std::uint32_t partitions = conn_.info().partitions;
    if (options_.partition) {
      if (*options_.partition >= partitions) {
        return Error(ErrorCode::kInvalidPartition,
                     "partition " + std::to_string(*options_.partition) + " does not exist: the " +
                         "cluster has " + std::to_string(partitions) + " partitions per stream");
      }
      partitions_.push_back(*options_.partition);
    } else {
      for (std::uint32_t p = 0; p < partitions; ++p) partitions_.push_back(p);
    }
    slots_.assign(partitions_.size(), Slot{options_.from});
    merger_ = ScanMerger(partitions_.size());
    if (options_.from == options_.to) {
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        slots_[i].done = true;
        merger_.add(i, {}, true);
      }
    }
    return {};
  }

  Result<std::optional<Event>> next() {
    if (failed_) return *failed_;
    for (;;) {
      if (auto popped = merger_.pop()) {
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
  const BrokerInfo& broker() const { return conn_.info(); }

 private:
  struct Slot {
    Key next_from;
    bool done = false;
    bool in_flight = false;
    std::optional<Key> last_key;
    std::chrono::steady_clock::time_point retry_at{};
  };

  Status connect_with_retries() {
    for (;;) {
      auto ok = conn_.connect();
      if (ok) {
        budget_.reset();
        return ok;
      }
      if (!is_retriable(ok.error().code) || !budget_.wait_before_retry()) return ok;
    }
  }

  // Sends the page requests the merge needs (and prefetches), then handles one answer.
  Status pump() {
    if (!conn_.connected()) {
      if (auto ok = connect_with_retries(); !ok) return ok;
    }
    const auto now = std::chrono::steady_clock::now();
    std::string frames;
    std::optional<std::chrono::steady_clock::time_point> earliest_retry;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (s.done || s.in_flight || merger_.buffered(i) > low_water_) continue;
      if (s.retry_at > now) {
        earliest_retry = std::min(earliest_retry.value_or(s.retry_at), s.retry_at);
        continue;
      }
      const std::uint64_t id = conn_.next_id();
      encode_scan(id, i, frames);
      s.in_flight = true;
      pending_[id] = i;
    }
    if (!frames.empty()) {
      if (auto ok = conn_.write(frames); !ok) return connection_failed(ok.error());
    }
    if (pending_.empty()) {
      // Everything needed is waiting out a retry back-off.
      if (earliest_retry) std::this_thread::sleep_until(*earliest_retry);
      return {};
    }
    auto frame = conn_.read();
    if (!frame) return connection_failed(frame.error());
    return handle(*frame);
  }

  // After the connection broke: every request in flight is asked again on the next broker.
  Status connection_failed(const Error& error) {
    conn_.drop();
    for (auto& s : slots_) s.in_flight = false;
    pending_.clear();
    if (conn_.config().logger) conn_.config().logger->warn("scanner: {}", error.to_string());
    if (!budget_.wait_before_retry()) return error;
    return {};
  }

  void encode_scan(std::uint64_t id, std::size_t slot, std::string& out) {
    capnp::MallocMessageBuilder message(128);
    auto request = message.initRoot<wire::Request>();
    request.setCorrelationId(id);
    auto scan = request.initScan();
    scan.setStream(protocol::text(options_.stream));
    scan.setPartition(partitions_[slot]);
    scan.setFrom(protocol::data(slots_[slot].next_from.view()));
    if (options_.to != Key::max()) scan.setTo(protocol::data(options_.to.view()));
    scan.setMaxEvents(options_.page_events);
    scan.setMaxBytes(options_.page_bytes);
    protocol::append_frame(message, out);
  }

  Status handle(const protocol::FrameBuffer& frame) {
    const std::string address = conn_.info().address;
    std::size_t slot_index = 0;
    std::vector<Event> events;
    bool done = false;
    Key next_from;
    std::optional<Error> broker_error;
    bool stale = false;
    auto decoded = detail::with_response(frame, address, [&](wire::Response::Reader r) -> Status {
      auto it = pending_.find(r.getCorrelationId());
      if (it == pending_.end()) {
        stale = true;  // an answer to a request asked again after a reconnect
        return {};
      }
      slot_index = it->second;
      pending_.erase(it);
      slots_[slot_index].in_flight = false;
      if (r.getError() != wire::ErrorCode::OK) {
        broker_error = detail::broker_error(r.getError(), protocol::view(r.getMessage()), address);
        return {};
      }
      if (!r.isScan()) return detail::protocol_error("answer to scan carries no result", address);
      auto result = r.getScan();
      const Slot& s = slots_[slot_index];
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
        ev.partition = partitions_[slot_index];
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
    if (!decoded) return connection_failed(decoded.error());
    if (stale) return {};
    Slot& s = slots_[slot_index];
    if (broker_error) {
      if (!is_retriable(broker_error->code)) return *broker_error;
      if (detail::breaks_connection(broker_error->code)) return connection_failed(*broker_error);
      if (!budget_.wait_before_retry()) return *broker_error;
      return {};
    }
    budget_.reset();
    if (!events.empty()) s.last_key = events.back().key;
    if (!done) s.next_from = next_from;
    s.done = done;
    merger_.add(slot_index, std::move(events), done);
    return {};
  }

  ScanOptions options_;
  BrokerConnection conn_;
  RetryBudget budget_;
  std::vector<std::uint32_t> partitions_;  // slot -> partition
  std::vector<Slot> slots_;
  ScanMerger merger_;
  std::unordered_map<std::uint64_t, std::size_t> pending_;  // request id -> slot
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
