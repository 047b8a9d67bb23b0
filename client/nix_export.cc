#include "client/nix_export.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "consensus/text.h"

extern char** environ;

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::StorePath;

void PutU64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

void PutString(std::string& out, std::string_view s) {
  PutU64(out, s.size());
  out.append(s);
  out.append((8 - s.size() % 8) % 8, '\0');
}

class Fd final {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
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

// How long nix-store gets to stop its builders after SIGTERM before it is killed.
constexpr absl::Duration kStopGrace = absl::Seconds(10);

// Reads what is available; false at end of file or on error.
// Splits on '\n'; the pieces view `text`.
std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool Drain(int fd, std::string& into, size_t keep_last) {
  char buffer[65536];
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  into.append(buffer, static_cast<size_t>(n));
  // Nix can write a long build log to stderr; only its end says why a build failed.
  if (keep_last > 0 && into.size() > 2 * keep_last) into.erase(0, into.size() - keep_last);
  return true;
}

}  // namespace

std::string RegularFileNar(std::string_view contents) {
  std::string nar;
  for (std::string_view s : {"nix-archive-1", "(", "type", "regular", "contents"}) PutString(nar, s);
  PutString(nar, contents);
  PutString(nar, ")");
  return nar;
}

std::string WriteNixExport(const std::vector<ExportedFile>& files) {
  std::string out;
  for (const ExportedFile& file : files) {
    PutU64(out, 1);
    out += RegularFileNar(file.contents);
    PutU64(out, kNixExportMagic);
    PutString(out, file.path.full());
    // Nix writes the reference set in its (sorted) order.
    std::vector<StorePath> references = file.references;
    std::sort(references.begin(), references.end());
    references.erase(std::unique(references.begin(), references.end()), references.end());
    PutU64(out, references.size());
    for (const StorePath& reference : references) PutString(out, reference.full());
    PutString(out, file.deriver);
    PutU64(out, 0);
  }
  PutU64(out, 0);
  return out;
}

absl::StatusOr<NixStoreRun> RunNixStore(const std::vector<std::string>& args, const NixStoreRunOptions& options) {
  // stdin is a socket rather than a pipe so that writing to a child that already exited fails with
  // EPIPE (MSG_NOSIGNAL) instead of raising SIGPIPE in this process.
  int in_pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) {
    return absl::ResourceExhaustedError(Cat("cannot make a socket for nix-store: ", std::strerror(errno)));
  }
  Fd in_write(in_pair[0]);
  Fd in_read(in_pair[1]);
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(Cat("cannot make a pipe for nix-store: ", std::strerror(errno)));
  }
  Fd out_read(out_pipe[0]);
  Fd out_write(out_pipe[1]);
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(Cat("cannot make a pipe for nix-store: ", std::strerror(errno)));
  }
  Fd err_read(err_pipe[0]);
  Fd err_write(err_pipe[1]);

  SpawnSetup setup;
  posix_spawn_file_actions_adddup2(&setup.actions, in_read.get(), 0);
  posix_spawn_file_actions_adddup2(&setup.actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&setup.actions, err_write.get(), 2);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) sigaddset(&defaults, sig);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&setup.attr, &defaults);
  posix_spawnattr_setsigmask(&setup.attr, &empty);
  posix_spawnattr_setpgroup(&setup.attr, 0);  // its own group: a timeout kills the builders too
  posix_spawnattr_setflags(&setup.attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);

  std::vector<std::string> argv_storage = {"nix-store"};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, "nix-store", &setup.actions, &setup.attr, argv.data(), environ);
  if (rc == ENOENT) return absl::UnavailableError("nix-store not found in PATH (is Nix installed?)");
  if (rc != 0) return absl::ResourceExhaustedError(Cat("cannot start nix-store: ", std::strerror(rc)));
  in_read.Close();
  out_write.Close();
  err_write.Close();

  NixStoreRun run;
  size_t written = 0;
  if (options.input.empty()) in_write.Close();
  const absl::Time deadline = absl::Now() + options.timeout;
  bool out_open = true;
  bool err_open = true;
  absl::Status stopped;
  while (out_open || err_open) {
    if (absl::Now() >= deadline) {
      stopped = absl::DeadlineExceededError(Cat("nix-store ", args.empty() ? "" : args.front(),
                                                " did not finish within ", absl::FormatDuration(options.timeout),
                                                " and was killed (raise --timeout for long builds)"));
      break;
    }
    if (options.cancelled && options.cancelled()) {
      stopped = absl::CancelledError("nix-store was stopped (the rebuilder is shutting down)");
      break;
    }
    std::vector<pollfd> fds;
    if (out_open) fds.push_back({out_read.get(), POLLIN, 0});
    if (err_open) fds.push_back({err_read.get(), POLLIN, 0});
    if (in_write.get() >= 0) fds.push_back({in_write.get(), POLLOUT, 0});
    const int ready = ::poll(fds.data(), fds.size(), 200);
    if (ready < 0 && errno != EINTR) {
      stopped = absl::InternalError(Cat("poll: ", std::strerror(errno)));
      break;
    }
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == out_read.get()) {
        out_open = Drain(p.fd, run.out, 0);
      } else if (p.fd == err_read.get()) {
        err_open = Drain(p.fd, run.err, kMaxNixStderrBytes);
      } else if (p.fd == in_write.get()) {
        const size_t chunk = std::min<size_t>(options.input.size() - written, 1 << 16);
        const ssize_t n = ::send(p.fd, options.input.data() + written, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) written += static_cast<size_t>(n);
        // EPIPE: nix-store stopped reading (it failed); its stderr says why.
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == options.input.size()) in_write.Close();
      }
    }
  }
  in_write.Close();
  int status = 0;
  if (!stopped.ok()) {
    // Nix's sandboxed builders run in PID namespaces and sessions of their own: killing nix-store's
    // process group does not reach them, and nix-store killed outright leaves them running. Asked to
    // stop, nix-store kills its builders itself; SIGKILL only when it does not exit in time.
    ::kill(-pid, SIGTERM);
    const absl::Time grace = absl::Now() + kStopGrace;
    bool exited = false;
    while (!exited && absl::Now() < grace) {
      const pid_t done = ::waitpid(pid, &status, WNOHANG);
      exited = done == pid || (done < 0 && errno != EINTR);
      if (!exited) absl::SleepFor(absl::Milliseconds(20));
    }
    if (!exited) ::kill(-pid, SIGKILL);
    if (exited) return stopped;
  }
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!stopped.ok()) return stopped;
  if (run.err.size() > kMaxNixStderrBytes) run.err.erase(0, run.err.size() - kMaxNixStderrBytes);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

std::string LastNixErrorLine(std::string_view err, size_t max_bytes) {
  std::vector<std::string> lines;
  for (std::string_view candidate : Lines(err)) {
    // Terminal colour codes (ESC [ ... m) are dropped; so is any other control byte.
    std::string clean;
    for (size_t i = 0; i < candidate.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(candidate[i]);
      if (c == 0x1b) {
        while (i < candidate.size() && !std::isalpha(static_cast<unsigned char>(candidate[i]))) ++i;
        continue;
      }
      if (c < 0x20 || c == 0x7f) continue;
      clean.push_back(static_cast<char>(c));
    }
    std::string_view trimmed = Trim(clean);
    if (!trimmed.empty()) lines.emplace_back(trimmed);
  }
  if (lines.empty()) return "";
  // The last "error:" line; when it ends a build, the builder's own last line (printed between
  // "building '...'" and the error) says what went wrong and is kept with it.
  size_t at = lines.size() - 1;
  for (size_t i = lines.size(); i-- > 0;) {
    if (lines[i].starts_with("error: ")) {
      at = i;
      break;
    }
  }
  std::string line = lines[at].starts_with("error: ") ? lines[at].substr(7) : lines[at];
  if (at > 0 && !lines[at - 1].starts_with("building '") && !lines[at - 1].starts_with("error: ")) {
    for (size_t i = at - 1; i-- > 0;) {
      if (lines[i].starts_with("building '")) {
        line += Cat(" (last log line: ", lines[at - 1], ")");
        break;
      }
    }
  }
  std::string_view view = line;
  if (view.size() > max_bytes) {
    size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(view[cut]) & 0xc0) == 0x80) --cut;
    view = view.substr(0, cut);
  }
  return std::string(view);
}

std::vector<std::string> StoreArgs(const std::string& store) {
  if (store.empty()) return {};
  return {"--store", store};
}

absl::StatusOr<std::vector<StorePath>> InvalidPaths(const std::string& store, const std::vector<StorePath>& paths) {
  if (paths.empty()) return std::vector<StorePath>{};
  std::vector<std::string> args = StoreArgs(store);
  args.insert(args.end(), {"--check-validity", "--print-invalid"});
  for (const StorePath& path : paths) args.push_back(path.full());
  NixStoreRunOptions options;
  options.timeout = absl::Minutes(5);
  absl::StatusOr<NixStoreRun> run = RunNixStore(args, options);
  if (!run.ok()) return run.status();
  if (run->exit_code != 0) {
    return absl::UnknownError(Cat("nix-store --check-validity failed: ", LastNixErrorLine(run->err, 1000)));
  }
  std::vector<StorePath> invalid;
  for (std::string_view line : Lines(run->out)) {
    line = Trim(line);
    if (line.empty()) continue;
    absl::StatusOr<StorePath> path = StorePath::Parse(line);
    if (!path.ok()) {
      return absl::UnknownError(
          Cat("nix-store --check-validity printed ", consensus::QuoteForError(line), ", not a store path"));
    }
    invalid.push_back(*std::move(path));
  }
  return invalid;
}

absl::Status ImportIntoStore(const std::string& store, const std::vector<ExportedFile>& files) {
  if (files.empty()) return absl::OkStatus();
  std::vector<std::string> args = StoreArgs(store);
  args.push_back("--import");
  NixStoreRunOptions options;
  options.input = WriteNixExport(files);
  options.timeout = absl::Minutes(10);
  absl::StatusOr<NixStoreRun> run = RunNixStore(args, options);
  if (!run.ok()) return run.status();
  if (run->exit_code != 0) {
    return absl::UnknownError(Cat("nix-store --import refused the derivations: ", LastNixErrorLine(run->err, 1000)));
  }
  return absl::OkStatus();
}

}  // namespace attest::client
