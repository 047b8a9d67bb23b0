#include "storage/diffoscope.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "consensus/text.h"
#include "storage/files.h"
#include "storage/nar_unpack.h"

extern char** environ;

namespace attest::storage {
namespace {

using consensus::Cat;

constexpr size_t kStderrTailBytes = 4096;
constexpr size_t kReadBytes = 64 * 1024;
// Without pidfd_open (Linux < 5.3) the child's exit is noticed by polling this often.
constexpr int kExitPollMillis = 50;
// How often DiffoscopeOptions::cancelled is asked.
constexpr int kCancelPollMillis = 200;

using Clock = std::chrono::steady_clock;

absl::Duration Since(Clock::time_point start) { return absl::FromChrono(Clock::now() - start); }

// The run's TMPDIR, removed with whatever diffoscope (or a killed helper) left in it.
class ScratchDirectory final {
 public:
  static absl::StatusOr<ScratchDirectory> Make(const std::string& parent_option) {
    std::string parent = parent_option;
    if (parent.empty()) {
      const char* tmpdir = std::getenv("TMPDIR");
      parent = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
    }
    std::string pattern = Cat(parent, "/attest-diffoscope-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) {
      return absl::ResourceExhaustedError(
          Cat("cannot make a temporary directory in ", parent, " for diffoscope: ", std::strerror(errno)));
    }
    return ScratchDirectory(std::move(pattern));
  }
  ScratchDirectory(ScratchDirectory&& other) noexcept : path_(std::exchange(other.path_, "")) {}
  ScratchDirectory& operator=(ScratchDirectory&&) = delete;
  ~ScratchDirectory() {
    if (!path_.empty()) (void)RemoveTree(path_);
  }
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDirectory(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// Owns the spawn attributes and file actions for the duration of one posix_spawnp.
struct SpawnSetup final {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::vector<std::string> Arguments(const std::string& a, const std::string& b, const DiffoscopeOptions& options) {
  const std::string report_bytes = Cat(options.max_report_bytes);
  std::vector<std::string> argv = {options.program,
                                   "--no-progress",
                                   "--text",
                                   "-",
                                   "--text-color",
                                   "never",
                                   "--exclude-directory-metadata",
                                   "yes",
                                   "--max-report-size",
                                   report_bytes,
                                   // Also its page limit: left larger, diffoscope warns that it lowers it.
                                   "--max-page-size",
                                   report_bytes,
                                   "--max-text-report-size",
                                   Cat(options.max_text_bytes)};
  if (!options.html_path.empty()) {
    argv.push_back("--html");
    argv.push_back(options.html_path);
  }
  // diffoscope's own, softer limit: it stops descending into containers after this, so a run that would
  // hit the hard deadline usually ends with a partial report instead.
  const int64_t soft_seconds = absl::ToInt64Seconds(options.time_limit * 0.8);
  if (soft_seconds >= 1) {
    argv.push_back("--timeout");
    argv.push_back(Cat(soft_seconds));
  }
  argv.push_back("--");
  argv.push_back(a);
  argv.push_back(b);
  return argv;
}

std::vector<std::string> Environment(const std::string& scratch) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry = *e;
    if (entry.starts_with("TMPDIR=") || entry.starts_with("PYTHONIOENCODING=")) continue;
    env.emplace_back(entry);
  }
  env.push_back(Cat("TMPDIR=", scratch));
  // The report draws its tree with box-drawing characters, whatever the locale.
  env.push_back("PYTHONIOENCODING=utf-8");
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string Tail(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.remove_suffix(1);
  constexpr size_t kShown = 600;
  if (text.size() > kShown) return Cat("...", text.substr(text.size() - kShown));
  return std::string(text);
}

// Reads what is there from `fd` into `out` (up to `cap` bytes kept; the rest dropped, `dropped` set).
// Returns false at end of file or on an error.
bool ReadSome(int fd, std::string& out, size_t cap, bool& dropped) {
  char buffer[kReadBytes];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  const size_t room = cap > out.size() ? cap - out.size() : 0;
  const size_t keep = std::min(room, static_cast<size_t>(n));
  out.append(buffer, keep);
  if (keep < static_cast<size_t>(n)) dropped = true;
  return true;
}

}  // namespace

absl::StatusOr<DiffoscopeResult> RunDiffoscope(const std::string& a, const std::string& b,
                                               const DiffoscopeOptions& options) {
  if (a.empty() || b.empty()) return absl::InvalidArgumentError("diffoscope needs two paths to compare");
  auto scratch = ScratchDirectory::Make(options.scratch_parent);
  if (!scratch.ok()) return scratch.status();

  std::vector<std::string> argv = Arguments(a, b, options);
  std::vector<std::string> env = Environment(scratch->path());
  std::vector<char*> argv_c = CStrings(argv);
  std::vector<char*> env_c = CStrings(env);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(Cat("cannot make a pipe for diffoscope: ", std::strerror(errno)));
  }
  ScopedFd out_read(out_pipe[0]);
  auto out_write = std::make_unique<ScopedFd>(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(Cat("cannot make a pipe for diffoscope: ", std::strerror(errno)));
  }
  ScopedFd err_read(err_pipe[0]);
  auto err_write = std::make_unique<ScopedFd>(err_pipe[1]);
  ScopedFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (null_fd.get() < 0) {
    return absl::ResourceExhaustedError(Cat("cannot open /dev/null: ", std::strerror(errno)));
  }

  SpawnSetup setup;
  posix_spawn_file_actions_adddup2(&setup.actions, null_fd.get(), 0);
  posix_spawn_file_actions_adddup2(&setup.actions, out_write->get(), 1);
  posix_spawn_file_actions_adddup2(&setup.actions, err_write->get(), 2);
  if (!options.working_directory.empty()) {
    posix_spawn_file_actions_addchdir_np(&setup.actions, options.working_directory.c_str());
  }
  // Its own process group, so that the deadline ends diffoscope and every helper it started; default
  // signal handling and an empty mask whatever this process uses.
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&setup.attr, 0);
  posix_spawnattr_setsigmask(&setup.attr, &empty_mask);
  posix_spawnattr_setsigdefault(&setup.attr, &defaults);

  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + absl::ToChronoNanoseconds(options.time_limit);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, argv_c[0], &setup.actions, &setup.attr, argv_c.data(), env_c.data());
  out_write.reset();
  err_write.reset();
  if (rc != 0) {
    if (rc == ENOENT || rc == EACCES || rc == ENOEXEC) {
      return absl::UnavailableError(Cat("cannot run ", options.program, ": ", std::strerror(rc),
                                                 " (is diffoscope installed? install the Debian package diffoscope)"));
    }
    if (rc == EAGAIN || rc == ENOMEM) {
      return absl::ResourceExhaustedError(Cat("cannot start ", options.program, ": ", std::strerror(rc)));
    }
    return absl::UnknownError(Cat("cannot start ", options.program, ": ", std::strerror(rc)));
  }

  // The child's exit wakes poll through a pidfd, so nothing here sleeps on a timer.
  const int pidfd_raw = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  ScopedFd pidfd(pidfd_raw);

  DiffoscopeResult result;
  std::string err_text;
  bool err_dropped = false;
  bool out_open = true;
  bool err_open = true;
  bool reaped = false;
  bool killed = false;
  bool status_lost = false;
  int poll_error = 0;
  int wait_status = 0;
  bool cancelled = false;
  while (out_open || err_open || !reaped) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (options.cancelled && options.cancelled()) cancelled = true;
    if (left.count() <= 0 || cancelled) {
      // Before the leader is reaped its pid is still the group's id, so this cannot reach another group.
      if (!reaped) {
        ::kill(-pid, SIGKILL);
        killed = true;
      }
      break;
    }
    pollfd fds[3];
    int n = 0;
    int out_i = -1;
    int err_i = -1;
    int pid_i = -1;
    if (out_open) {
      out_i = n;
      fds[n++] = pollfd{.fd = out_read.get(), .events = POLLIN, .revents = 0};
    }
    if (err_open) {
      err_i = n;
      fds[n++] = pollfd{.fd = err_read.get(), .events = POLLIN, .revents = 0};
    }
    if (!reaped && pidfd.get() >= 0) {
      pid_i = n;
      fds[n++] = pollfd{.fd = pidfd.get(), .events = POLLIN, .revents = 0};
    }
    int timeout = static_cast<int>(std::min<int64_t>(left.count(), 60'000));
    if (!reaped && pidfd.get() < 0) timeout = std::min(timeout, kExitPollMillis);
    if (options.cancelled) timeout = std::min(timeout, kCancelPollMillis);
    const int ready = ::poll(fds, static_cast<nfds_t>(n), timeout);
    if (ready < 0 && errno != EINTR) {
      poll_error = errno;
      break;
    }
    if (out_i >= 0 && fds[out_i].revents != 0) {
      out_open = ReadSome(out_read.get(), result.text, options.max_text_bytes, result.text_truncated);
    }
    if (err_i >= 0 && fds[err_i].revents != 0) {
      err_open = ReadSome(err_read.get(), err_text, kStderrTailBytes * 4, err_dropped);
      if (err_text.size() > kStderrTailBytes * 2) err_text.erase(0, err_text.size() - kStderrTailBytes);
    }
    if (!reaped && (pid_i < 0 || fds[pid_i].revents != 0)) {
      const pid_t w = ::waitpid(pid, &wait_status, WNOHANG);
      if (w == pid) reaped = true;
      // ECHILD: this process ignores SIGCHLD, so the child was reaped by the kernel and its status is lost.
      if (w < 0 && errno == ECHILD) {
        reaped = true;
        status_lost = true;
      }
    }
  }
  if (!reaped) {
    if (!killed) ::kill(-pid, SIGKILL);
    killed = true;
    while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
  }
  result.elapsed = Since(start);
  if (poll_error != 0) {
    return absl::InternalError(Cat("waiting for diffoscope: poll failed: ", std::strerror(poll_error)));
  }
  if (status_lost) {
    return absl::UnknownError(
        "diffoscope's exit status is lost: this process ignores SIGCHLD (it must not, to run tools)");
  }

  if (cancelled) return absl::CancelledError("the diffoscope run was cancelled");
  if (killed) {
    return absl::DeadlineExceededError(Cat("diffoscope did not finish within ",
                                                    absl::FormatDuration(options.time_limit),
                                                    " and was stopped (ran ", absl::FormatDuration(result.elapsed),
                                                    "); the trees are too large or too many to compare in that time"));
  }
  if (WIFSIGNALED(wait_status)) {
    return absl::UnknownError(Cat("diffoscope was killed by signal ", WTERMSIG(wait_status), ": ",
                                           Tail(err_text)));
  }
  const int exit_code = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : -1;
  if (exit_code != 0 && exit_code != 1) {
    return absl::UnknownError(Cat("diffoscope failed (exit status ", exit_code, "): ", Tail(err_text)));
  }
  result.verdict = exit_code == 0 ? DiffoscopeVerdict::kSame : DiffoscopeVerdict::kDifferent;
  if (!options.html_path.empty()) {
    struct stat st;
    if (::stat(options.html_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) result.html_path = options.html_path;
  }
  return result;
}

namespace {

bool ConsumePrefix(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// Strips the report's tree drawing ("│ ", "├── ", "│┄ ", "└── " and spaces) from the start of a line;
// returns whether the last piece was a heading mark "├── ".
bool StripTreeDrawing(std::string_view& line) {
  bool heading = false;
  while (!line.empty()) {
    if (ConsumePrefix(line, "├── ") || ConsumePrefix(line, "└── ")) {
      heading = true;
      continue;
    }
    if (ConsumePrefix(line, "│") || ConsumePrefix(line, "┄") || ConsumePrefix(line, " ")) {
      heading = false;
      continue;
    }
    break;
  }
  return heading;
}

}  // namespace

std::vector<std::string> DifferingFiles(std::string_view text, std::string_view b) {
  while (b.size() > 1 && b.back() == '/') b.remove_suffix(1);
  std::vector<std::string> headings;
  while (!text.empty()) {
    const size_t end = std::min(text.find('\n'), text.size());
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    std::string_view rest = line;
    const bool heading = StripTreeDrawing(rest);
    // A heading is the report's first line, or follows "├── "; a diff line that happens to hold "+++ "
    // follows "│ " and a '+' or '-'.
    const bool first_column = rest.size() == line.size();
    if (!heading && !first_column) continue;
    if (!ConsumePrefix(rest, "+++ ")) continue;
    if (rest == b) {
      headings.emplace_back();
    } else if (ConsumePrefix(rest, b) && ConsumePrefix(rest, "/") && !rest.empty()) {
      headings.emplace_back(rest);
    }
  }
  std::vector<std::string> files;
  for (const std::string& h : headings) {
    const bool contains_another = std::any_of(headings.begin(), headings.end(), [&](const std::string& other) {
      return other.size() > h.size() &&
             (h.empty() || (std::string_view(other).starts_with(h) && other[h.size()] == '/'));
    });
    if (!contains_another && std::find(files.begin(), files.end(), h) == files.end()) files.push_back(h);
  }
  return files;
}

}  // namespace attest::storage
