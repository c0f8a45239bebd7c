// Lines of a file or of stdin for `alldata produce`, read with poll() so that a stop request
// (Ctrl-C) is seen within 100 ms even while a terminal or a pipe sends nothing.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

namespace alldata::tool {

class LineInput {
 public:
  // Reads `fd` (not owned) until its end, or until `stop` is set.
  LineInput(int fd, const std::atomic<bool>& stop) : fd_(fd), stop_(stop) {}

  // The next line without its '\n' (the last one may have none), valid until the next
  // call; nullopt at the end of the input, when stopped, or on a read error (error()).
  std::optional<std::string_view> next();
  // errno of a failed read, else 0.
  int error() const noexcept { return error_; }
  // False once the input ended by itself (not stopped, no error).
  bool stopped() const noexcept { return stopped_; }

 private:
  // Reads more into buf_; false at the end, on stop or on error.
  bool fill();

  int fd_;
  const std::atomic<bool>& stop_;
  std::string buf_;
  std::size_t start_ = 0;   // first byte of buf_ not returned yet
  std::size_t scanned_ = 0; // bytes from start_ known to hold no '\n'
  bool eof_ = false;
  bool stopped_ = false;
  int error_ = 0;
};

}  // namespace alldata::tool
