// The metadata request shared by the Admin and the Scanner: one attempt on a
// BrokerConnection (connect if needed, ask, read the matching answer) decoded into a
// ClusterMetadata. Internal to the client library.
#pragma once

#include "alldata/client/admin.h"
#include "broker_connection.h"

#include <string_view>

namespace alldata::client::detail {

// One metadata request on `conn` (connecting first if needed). With `stream` non-empty the
// answer carries that stream's replica sets. Errors: those of connect/write/read, the
// broker's error (typed), kProtocolError. The caller decides about retries.
Result<ClusterMetadata> request_metadata(BrokerConnection& conn, bool include_streams,
                                         std::string_view stream);

}  // namespace alldata::client::detail
