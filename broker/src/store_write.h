// Awaiting the event store's writer thread from a coroutine, with a deadline. Shared by the
// local coordinator, replica writes and hinted writes.
#pragma once

#include "alldata/protocol/error.h"
#include "alldata/storage/event_store.h"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace alldata::broker {

// Stores `batch` (as a hint for `hint_for` when set) and completes on the awaiting
// coroutine's executor once it is durable, failed, or `timeout` passed (kTimeout: the write
// may still land; keys make a retry safe).
boost::asio::awaitable<Status> store_and_wait(storage::EventStore& store, storage::EventBatch batch,
                                              std::optional<std::string> hint_for,
                                              std::chrono::milliseconds timeout);

}  // namespace alldata::broker
