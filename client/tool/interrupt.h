// Ctrl-C (SIGINT) and SIGTERM for a command that must end cleanly (produce, scan).
// Construct an InterruptWatch on the main thread before any other thread starts: SIGINT and
// SIGTERM are then blocked in every thread and one watcher thread takes them. The first
// signal sets interrupted() and starts the on_first callback on a thread of its own (the
// command polls the flag: nothing is interrupted in the middle); a second one ends the
// process at once with status 130, even while that callback runs. finish() (or the
// destructor) stops the watcher, waits for the callback and restores the signal mask:
// call it before whatever the callback uses is destroyed.
#pragma once

#include <pthread.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

namespace alldata::tool {

class InterruptWatch {
 public:
  InterruptWatch();
  ~InterruptWatch();
  InterruptWatch(const InterruptWatch&) = delete;
  InterruptWatch& operator=(const InterruptWatch&) = delete;

  bool interrupted() const noexcept { return interrupted_.load(); }
  const std::atomic<bool>& flag() const noexcept { return interrupted_; }
  // What the first signal does besides setting the flag (e.g. close a producer, which
  // may take a while); replaces any earlier callback.
  void on_first(std::function<void()> fn);
  // Idempotent.
  void finish();

  // Exit status of a command that stopped because of a signal.
  static constexpr int kExitStatus = 130;

 private:
  void watch();

  std::atomic<bool> interrupted_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::function<void()> on_first_;
  std::thread callback_;  // runs on_first_
  std::thread watcher_;
};

}  // namespace alldata::tool
