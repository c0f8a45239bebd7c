#include "interrupt.h"

#include <signal.h>
#include <unistd.h>

namespace alldata::tool {

namespace {

// SIGUSR2 (sent to the watcher thread only) tells it to stop.
sigset_t watched() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR2);
  return set;
}

}  // namespace

InterruptWatch::InterruptWatch() {
  const sigset_t set = watched();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  watcher_ = std::thread([this] { watch(); });
}

InterruptWatch::~InterruptWatch() { finish(); }

void InterruptWatch::finish() {
  if (!watcher_.joinable()) return;
  stopping_ = true;
  pthread_kill(watcher_.native_handle(), SIGUSR2);
  watcher_.join();
  if (callback_.joinable()) callback_.join();
  const sigset_t set = watched();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

void InterruptWatch::on_first(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  on_first_ = std::move(fn);
}

void InterruptWatch::watch() {
  const sigset_t set = watched();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR2) {
      if (stopping_) return;
      continue;
    }
    if (interrupted_.exchange(true)) _exit(kExitStatus);  // the second signal: now
    std::lock_guard lock(mu_);
    if (on_first_) callback_ = std::thread(on_first_);
  }
}

}  // namespace alldata::tool
