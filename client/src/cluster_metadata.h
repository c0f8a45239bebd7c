// Requests the Admin and the Scanner share: one attempt on a BrokerConnection (connect if
// needed, ask, read the matching answer), decoded. Internal to the client library.
#pragma once

#include "alldata/client/admin.h"
#include "broker_connection.h"
#include "client_wire.h"

#include "alldata/protocol/wire.h"

#include <capnp/message.h>

#include <string>

#include <string_view>

namespace alldata::client::detail {

// One request on `conn` (connecting first if needed): `build` fills the request (its
// correlation id is set here), `decode` turns an ok answer into T. Answers to older
// requests are skipped. Errors: those of connect/write/read, the broker's error (typed),
// what `decode` returns. The caller decides about retries.
template <class T, class Build, class Decode>
Result<T> request_once(BrokerConnection& conn, Build&& build, Decode&& decode) {
  if (auto ok = conn.connect(); !ok) return ok.error();
  const std::uint64_t id = conn.next_id();
  std::string frame;
  {
    capnp::MallocMessageBuilder message(64);
    auto request = message.initRoot<wire::Request>();
    request.setCorrelationId(id);
    build(request);
    protocol::append_frame(message, frame);
  }
  if (auto ok = conn.write(frame); !ok) return ok.error();
  for (;;) {
    auto answer = conn.read();
    if (!answer) return answer.error();
    const std::string address = conn.info().address;
    bool stale = false;
    auto r = with_response(*answer, address, [&](wire::Response::Reader resp) -> Result<T> {
      if (resp.getCorrelationId() != id) {
        stale = true;
        return Error(ErrorCode::kProtocolError, "stale answer");
      }
      if (resp.getError() != wire::ErrorCode::OK) {
        return broker_error(resp.getError(), protocol::view(resp.getMessage()), address);
      }
      return decode(resp, address);
    });
    if (!stale) return r;
  }
}

// One metadata request on `conn` (connecting first if needed). With `stream` non-empty the
// answer carries that stream's replica sets. Errors: those of connect/write/read, the
// broker's error (typed), kProtocolError. The caller decides about retries.
Result<ClusterMetadata> request_metadata(BrokerConnection& conn, bool include_streams,
                                         std::string_view stream);

}  // namespace alldata::client::detail
