// Template part of client_wire.h.
#pragma once

#include <kj/exception.h>

#include <exception>
#include <utility>

namespace alldata::client::detail {

template <class Fn>
auto with_response(const protocol::FrameBuffer& frame, std::string_view address, Fn&& fn)
    -> decltype(fn(std::declval<wire::Response::Reader>())) {
  try {
    auto message = protocol::make_reader(frame);
    return fn(message.getRoot<wire::Response>());
  } catch (const kj::Exception& e) {
    return protocol_error(e.getDescription().cStr(), address);
  } catch (const std::exception& e) {
    return protocol_error(e.what(), address);
  }
}

}  // namespace alldata::client::detail
