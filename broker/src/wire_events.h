// Moving keyed events between an EventBatch and a capnp List(Event): replication, hints and
// repair all carry them the same way.
#pragma once

#include "alldata/protocol/error.h"
#include "alldata/protocol/wire.h"
#include "alldata/storage/event_store.h"

#include <string>
#include <vector>

namespace alldata::broker {

// Fills `list` (initialised with batch.size() elements) with the batch's keys, payloads
// and headers.
inline void put_events(capnp::List<wire::Event>::Builder list, const storage::EventBatch& batch) {
  unsigned i = 0;
  batch.for_each([&](const Key& key, std::string_view payload,
                     std::span<const storage::HeaderView> headers) {
    auto e = list[i++];
    e.setKey(protocol::data(key.view()));
    e.setPayload(protocol::data(payload));
    if (!headers.empty()) {
      auto hs = e.initHeaders(static_cast<unsigned>(headers.size()));
      for (unsigned j = 0; j < headers.size(); ++j) {
        hs[j].setName(protocol::text(headers[j].name));
        hs[j].setValue(protocol::data(headers[j].value));
      }
    }
  });
}

// Adds every event of `list` to `batch`; each must carry a 16-byte key (else kBadRequest
// naming its index, and `batch` holds the ones before it). `scratch` is reused storage.
inline Status add_keyed_events(capnp::List<wire::Event>::Reader list, storage::EventBatch& batch,
                               std::vector<storage::HeaderView>& scratch) {
  for (std::uint32_t i = 0; i < list.size(); ++i) {
    auto ev = list[i];
    if (ev.getKey().size() != Key::kSize) {
      return Error(ErrorCode::kBadRequest, "event " + std::to_string(i) + " has no 16-byte key");
    }
    scratch.clear();
    for (auto h : ev.getHeaders()) {
      scratch.push_back({protocol::view(h.getName()), protocol::view(h.getValue())});
    }
    batch.add(Key::from_raw(ev.getKey().begin()), protocol::view(ev.getPayload()), scratch);
  }
  return {};
}

}  // namespace alldata::broker
