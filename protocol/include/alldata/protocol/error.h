// Errors as values, shared by every part. `ErrorCode` mirrors the wire enum
// `alldata::wire::ErrorCode` one to one (same numbers), so a broker's answer reaches a
// client's caller unchanged; `Error` adds the human-readable message.
#pragma once

#include <boost/system/result.hpp>

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

namespace alldata {

enum class ErrorCode : std::uint16_t {
  kOk = 0,
  kBadRequest = 1,
  kHelloRequired = 2,
  kUnsupportedVersion = 3,
  kUnknownRequest = 4,
  kNotAllowed = 5,
  kInvalidStream = 6,
  kInvalidPartition = 7,
  kEventTooLarge = 8,
  kKeySkew = 9,
  kInvalidRange = 10,
  kStorageError = 11,
  kOverloaded = 12,
  kTimeout = 13,
  kNotEnoughReplicas = 14,
  kShuttingDown = 15,
  kInternal = 16,
  kIntervalSealed = 17,
  kNotReady = 18,
  kKeyConflict = 19,
  // Client-side only: never on the wire.
  kConnectionFailed = 1000,  // no broker could be reached or the connection broke
  kBufferFull = 1001,        // the producer's memory bound was hit for longer than max-block
  kClosed = 1002,            // the producer or scanner was closed
  kProtocolError = 1003,     // the broker sent something this client cannot decode
};

// The enumerator's name without the leading k, e.g. "KeySkew".
std::string_view to_string(ErrorCode code) noexcept;

// True for errors that a client may retry unchanged, possibly on another broker.
bool is_retriable(ErrorCode code) noexcept;

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;

  Error() = default;
  Error(ErrorCode c, std::string m) : code(c), message(std::move(m)) {}

  // "KeySkew: key time is 90000 ms ahead of the broker clock".
  std::string to_string() const;
};

// Thrown only by Result<T>::value() on an error; code that checks results never sees it.
class ErrorException : public std::exception {
 public:
  explicit ErrorException(Error e) : error_(std::move(e)), what_(error_.to_string()) {}
  const char* what() const noexcept override { return what_.c_str(); }
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
  std::string what_;
};

// What an exception says, for logs: what() of a std::exception, the description of a
// kj::Exception (Cap'n Proto), or "unknown exception". Never throws; null gives "".
std::string describe_exception(std::exception_ptr e) noexcept;

[[noreturn]] void throw_exception_from_error(const Error& e,
                                             const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;

// A Result without a value: `Status s = ...; if (!s) log(s.error())`.
using Status = Result<void>;

}  // namespace alldata
