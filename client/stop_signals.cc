#include "client/stop_signals.h"

#include <atomic>

namespace attest::client {
namespace {

// A signal handler can only reach process-wide state, hence the one global.
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void RequestStop(int) { stop_requested.store(true); }

}  // namespace

StopSignals::StopSignals() {
  stop_requested.store(false);
  struct sigaction action {};
  action.sa_handler = RequestStop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, &old_term_);
  sigaction(SIGINT, &action, &old_int_);
}

StopSignals::~StopSignals() {
  sigaction(SIGTERM, &old_term_, nullptr);
  sigaction(SIGINT, &old_int_, nullptr);
}

bool StopRequested() { return stop_requested.load(); }

}  // namespace attest::client
