#include "alldata/protocol/error.h"

#include <kj/exception.h>

namespace alldata {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOk: return "Ok";
    case ErrorCode::kBadRequest: return "BadRequest";
    case ErrorCode::kHelloRequired: return "HelloRequired";
    case ErrorCode::kUnsupportedVersion: return "UnsupportedVersion";
    case ErrorCode::kUnknownRequest: return "UnknownRequest";
    case ErrorCode::kNotAllowed: return "NotAllowed";
    case ErrorCode::kInvalidStream: return "InvalidStream";
    case ErrorCode::kInvalidPartition: return "InvalidPartition";
    case ErrorCode::kEventTooLarge: return "EventTooLarge";
    case ErrorCode::kKeySkew: return "KeySkew";
    case ErrorCode::kInvalidRange: return "InvalidRange";
    case ErrorCode::kStorageError: return "StorageError";
    case ErrorCode::kOverloaded: return "Overloaded";
    case ErrorCode::kTimeout: return "Timeout";
    case ErrorCode::kNotEnoughReplicas: return "NotEnoughReplicas";
    case ErrorCode::kShuttingDown: return "ShuttingDown";
    case ErrorCode::kInternal: return "Internal";
    case ErrorCode::kIntervalSealed: return "IntervalSealed";
    case ErrorCode::kNotReady: return "NotReady";
    case ErrorCode::kKeyConflict: return "KeyConflict";
    case ErrorCode::kConnectionFailed: return "ConnectionFailed";
    case ErrorCode::kBufferFull: return "BufferFull";
    case ErrorCode::kClosed: return "Closed";
    case ErrorCode::kProtocolError: return "ProtocolError";
  }
  return "Unknown";
}

bool is_retriable(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kOverloaded:
    case ErrorCode::kTimeout:
    case ErrorCode::kNotEnoughReplicas:
    case ErrorCode::kShuttingDown:
    case ErrorCode::kNotReady:
    case ErrorCode::kConnectionFailed:
    case ErrorCode::kStorageError:
      return true;
    default:
      return false;
  }
}

std::string Error::to_string() const {
  std::string s(alldata::to_string(code));
  if (!message.empty()) {
    s += ": ";
    s += message;
  }
  return s;
}

std::string describe_exception(std::exception_ptr e) noexcept {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const kj::Exception& x) {
    return x.getDescription().cStr();
  } catch (...) {
  }
  return "unknown exception";
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw ErrorException(e);
}

}  // namespace alldata
