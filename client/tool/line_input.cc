#include "line_input.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace alldata::tool {

namespace {
constexpr std::size_t kReadBytes = 64u << 10;
}

bool LineInput::fill() {
  for (;;) {
    if (stop_.load()) {
      stopped_ = true;
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) {
      error_ = errno;
      return false;
    }
    if (ready <= 0) continue;
    if (start_ > 0 && start_ == buf_.size()) {
      buf_.clear();
      start_ = 0;
    } else if (start_ > kReadBytes) {
      buf_.erase(0, start_);  // keep the buffer from growing with consumed lines
      start_ = 0;
    }
    const std::size_t old = buf_.size();
    buf_.resize(old + kReadBytes);
    const ssize_t n = ::read(fd_, buf_.data() + old, kReadBytes);
    buf_.resize(old + static_cast<std::size_t>(n > 0 ? n : 0));
    if (n > 0) return true;
    if (n == 0) {
      eof_ = true;
      return false;
    }
    if (errno == EINTR || errno == EAGAIN) continue;
    error_ = errno;
    return false;
  }
}

std::optional<std::string_view> LineInput::next() {
  for (;;) {
    if (stop_.load()) {
      stopped_ = true;
      return std::nullopt;
    }
    const char* begin = buf_.data() + start_;
    const std::size_t have = buf_.size() - start_;
    if (const void* nl = std::memchr(begin + scanned_, '\n', have - scanned_)) {
      const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - begin);
      start_ += len + 1;
      scanned_ = 0;
      return std::string_view(begin, len);
    }
    scanned_ = have;
    if (eof_ || !fill()) {
      if (stopped_ || error_ != 0 || have == 0) return std::nullopt;
      // The last line, without a newline.
      start_ = buf_.size();
      scanned_ = 0;
      return std::string_view(buf_.data() + buf_.size() - have, have);
    }
  }
}

}  // namespace alldata::tool
