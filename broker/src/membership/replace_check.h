// Before a broker takes over the node id of one that is gone for good (alldata-broker
// --replace NODE_ID): asks each seed for its view without joining (a push-pull query, which
// nothing merges) and says whether the cluster knows the id and holds it dead. Blocking, on
// its own short-lived I/O context and a listener on `listen_host` port 0: call it at start,
// before the broker's own membership runs.
#pragma once

#include "alldata/protocol/error.h"

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace alldata::broker {

// Ok when at least one seed answered, one of them lists `node_id` as dead (or forgot it
// as a reaped dead member), and none holds it alive or suspect. Errors, each naming the
// seed and the reason: kBadRequest when a seed holds it alive or suspect (stop it, or wait
// until it is declared dead), when it left or was removed (its id may not return), or when
// no answering seed knows it (a mistyped id); kConnectionFailed when no seed answered.
Status check_replaceable(const std::string& node_id, const std::string& cluster, const std::vector<std::string>& seeds,
                         const std::string& listen_host, std::chrono::milliseconds timeout,
                         std::shared_ptr<spdlog::logger> logger);

}  // namespace alldata::broker
