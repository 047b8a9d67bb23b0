// StopSignals: while one lives, SIGTERM and SIGINT only set a process-wide flag (StopRequested), so a
// long-running subcommand (`attest push --watch`, `attest rebuild`) can finish what it is doing and stop
// cleanly. The previous handlers come back when it is destroyed.
//
// One object at a time per process (subcommands run one at a time). StopRequested is safe from any
// thread; the flag is lock-free, as a signal handler requires.
#ifndef ATTEST_CLIENT_STOP_SIGNALS_H_
#define ATTEST_CLIENT_STOP_SIGNALS_H_

#include <signal.h>

namespace attest::client {

class StopSignals final {
 public:
  StopSignals();  // clears the flag, installs the handlers
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_term_ {};
  struct sigaction old_int_ {};
};

// True once SIGTERM or SIGINT arrived while a StopSignals lived (until the next one is made).
bool StopRequested();

}  // namespace attest::client

#endif  // ATTEST_CLIENT_STOP_SIGNALS_H_
