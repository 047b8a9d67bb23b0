#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"

extern char** environ;

namespace attest::testing {
namespace {

std::vector<char*> CArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> Environment(const std::map<std::string, std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string key = entry.substr(0, entry.find('='));
    if (extra.count(key) == 0) env.push_back(entry);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

RunResult Run(const std::vector<std::string>& argv, const std::string& input, std::chrono::seconds timeout,
              const std::map<std::string, std::string>& extra_env) {
  RunResult result;
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  auto args = CArgv(argv);
  auto env_strings = Environment(extra_env);
  auto envp = CArgv(env_strings);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
    close(in_pipe[1]);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return result;
  }
  // Feed stdin and drain both outputs without deadlock.
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  signal(SIGPIPE, SIG_IGN);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int out_fds[2] = {out_pipe[0], err_pipe[0]};
  std::string* sinks[2] = {&result.out, &result.err};
  char buf[65536];
  while (out_fds[0] >= 0 || out_fds[1] >= 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      ADD_FAILURE() << argv[0] << " did not finish within " << timeout.count() << " s";
      break;
    }
    pollfd fds[3];
    int owner[3];
    int n = 0;
    for (int i = 0; i < 2; ++i) {
      if (out_fds[i] >= 0) {
        owner[n] = i;
        fds[n++] = {out_fds[i], POLLIN, 0};
      }
    }
    if (in_fd >= 0) {
      owner[n] = 2;
      fds[n++] = {in_fd, POLLOUT, 0};
    }
    if (poll(fds, n, 100) < 0 && errno != EINTR) break;
    for (int j = 0; j < n; ++j) {
      if (fds[j].revents == 0) continue;
      int i = owner[j];
      if (i < 2) {
        ssize_t got = read(out_fds[i], buf, sizeof buf);
        if (got > 0) {
          sinks[i]->append(buf, got);
        } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
          close(out_fds[i]);
          out_fds[i] = -1;
        }
      } else {
        ssize_t put = write(in_fd, input.data() + written, input.size() - written);
        if (put > 0) written += put;
        if ((put < 0 && errno != EAGAIN) || written >= input.size()) {
          close(in_fd);
          in_fd = -1;
        }
      }
    }
  }
  for (int fd : out_fds) {
    if (fd >= 0) close(fd);
  }
  if (in_fd >= 0) close(in_fd);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

Daemon::Daemon(const std::vector<std::string>& argv, const std::string& log_prefix)
    : out_path_(log_prefix + ".out"), err_path_(log_prefix + ".err") {
  int out_fd = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, null_fd, 0);
  posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  auto args = CArgv(argv);
  int rc = posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_fd);
  close(err_fd);
  close(null_fd);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
    pid_ = -1;
  }
}

Daemon::~Daemon() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Daemon::Running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

std::optional<std::string> Daemon::WaitForLine(const std::string& needle, std::chrono::milliseconds timeout) {
  std::optional<std::string> found;
  PollUntil(
      [&] {
        std::istringstream lines(Stdout());
        for (std::string line; std::getline(lines, line);) {
          if (line.find(needle) != std::string::npos) {
            found = line;
            return true;
          }
        }
        return !Running();
      },
      timeout);
  return found;
}

std::optional<int> Daemon::Signal(int signal, std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || reaped_) return std::nullopt;
  kill(pid_, signal);
  std::optional<int> status;
  PollUntil(
      [&] {
        int s = 0;
        if (waitpid(pid_, &s, WNOHANG) == pid_) {
          reaped_ = true;
          status = s;
          return true;
        }
        return false;
      },
      timeout);
  return status;
}

std::string Daemon::Stdout() const { return Slurp(out_path_); }
std::string Daemon::Stderr() const { return Slurp(err_path_); }

bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

StaticHttpServer ServeDirectoryOverHttp(const std::string& directory, const std::string& log_prefix) {
  StaticHttpServer server;
  server.daemon = std::make_unique<Daemon>(
      std::vector<std::string>{"python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
                               directory},
      log_prefix);
  std::optional<std::string> line = server.daemon->WaitForLine("Serving HTTP on", std::chrono::seconds(30));
  const size_t at = line ? line->find(" port ") : std::string::npos;
  if (at == std::string::npos) {
    server.error = "python3 -m http.server did not start: " + server.daemon->Stderr();
    return server;
  }
  server.url = "http://127.0.0.1:" + std::to_string(std::atoi(line->c_str() + at + 6));
  return server;
}

}  // namespace attest::testing
