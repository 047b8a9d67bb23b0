// Subprocess: starts a real program (attestd, attest, nix) for end-to-end tests, feeds its stdin,
// collects stdout/stderr, and waits with a deadline. Tests end only the processes they started.
#ifndef ATTEST_TESTS_SUPPORT_SUBPROCESS_H_
#define ATTEST_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace attest::testing {

struct RunResult final {
  int exit_code = -1;  // -1 when killed by a signal
  int term_signal = 0;
  std::string out;
  std::string err;
};

// Runs `argv` to completion with `input` on stdin. Aborts the test (FAIL) after `timeout`.
RunResult Run(const std::vector<std::string>& argv, const std::string& input = "",
              std::chrono::seconds timeout = std::chrono::seconds(120),
              const std::map<std::string, std::string>& extra_env = {});

// A long-running child (a node). stdout and stderr go to files so the test can poll them.
class Daemon final {
 public:
  Daemon(const std::vector<std::string>& argv, const std::string& log_prefix);
  ~Daemon();  // SIGKILL if still running
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  pid_t pid() const { return pid_; }
  // Polls the stdout log for a line containing `needle`; returns the first such line, or nullopt after
  // `timeout` (or when the process exited).
  std::optional<std::string> WaitForLine(const std::string& needle, std::chrono::milliseconds timeout);
  // Sends `signal`; waits up to `timeout` for exit; returns the exit status (as from waitpid) or
  // nullopt when it did not exit in time.
  std::optional<int> Signal(int signal, std::chrono::milliseconds timeout);
  bool Running();
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string out_path_;
  std::string err_path_;
};

// `python3 -m http.server` serving `directory` on 127.0.0.1 (a free port), logs under `log_prefix`: a
// static binary cache over HTTP for the gateway tests. `url` is "http://127.0.0.1:<port>", or empty
// (with the server's stderr in `error`) when it did not start within 30 s.
struct StaticHttpServer final {
  std::unique_ptr<Daemon> daemon;
  std::string url;
  std::string error;
};
StaticHttpServer ServeDirectoryOverHttp(const std::string& directory, const std::string& log_prefix);

// Polls `condition` every 20 ms until it holds or `timeout` passes.
bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

}  // namespace attest::testing

#endif  // ATTEST_TESTS_SUPPORT_SUBPROCESS_H_
