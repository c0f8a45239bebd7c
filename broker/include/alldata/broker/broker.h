// One AllData broker: the client listener, the sessions it runs, the key generator, the
// coordinator that stores produced batches, and the event store. `main()` of
// `alldata-broker` and the integration tests wire it the same way.
//
// Lifecycle: start() opens storage, binds, and returns a running broker. stop() is the
// two-phase shutdown: stop accepting and reading requests, wait for in-flight requests to
// be answered, then close storage (everything acknowledged is durable). The destructor
// calls stop(). Thread-safe: stop() and the getters may be called from any thread.
#pragma once

#include "alldata/broker/options.h"
#include "alldata/protocol/error.h"

#include <spdlog/logger.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace alldata::broker {

class Broker {
 public:
  // Errors: kStorageError (data folder unusable or locked by another broker),
  // kBadRequest (bad option, e.g. unparsable listen address, or an interval that differs
  // from the one the data folder was made with), kConnectionFailed (cannot bind).
  static Result<std::unique_ptr<Broker>> start(BrokerOptions options,
                                               std::shared_ptr<spdlog::logger> logger);

  virtual ~Broker() = default;

  // The bound client address, "127.0.0.1:40123" (the real port when 0 was asked for).
  virtual std::string client_address() const = 0;
  virtual std::uint16_t client_port() const = 0;
  // The bound peer address, or empty without --peer-listen.
  virtual std::string peer_address() const = 0;
  // The bound gossip (UDP) address, or empty for a single broker.
  virtual std::string gossip_address() const = 0;
  virtual const std::string& node_id() const = 0;
  virtual std::uint64_t origin() const = 0;

  // Two-phase stop; idempotent; blocks until done (bounded by the write timeout).
  virtual void stop() = 0;
  // Blocks until stop() has finished (called from another thread or a signal).
  virtual void wait() = 0;

  // `fn` is called once, on a broker thread, when the broker wants to be stopped: it has
  // left the cluster after a decommission. `fn` must not call stop() on that thread (post
  // it elsewhere). Called at once if that happened before it was set.
  virtual void on_exit_request(std::function<void()> fn) = 0;
};

}  // namespace alldata::broker
