// NAR hashing throughput: `attest nar-hash` against `nix hash path` on the same tree.
//
// Builds (or reuses, with --dir) a tree of about 1 GiB: a few large files, some medium ones and
// thousands of small files in nested directories, with executables, symlinks and empty entries. Reads
// it once to warm the page cache, runs each tool once untimed, then runs the two alternately (the
// order flips every round) and prints the median wall time, the NAR throughput of each and their ratio
// (target: attest >= 0.95 of Nix). Both must print the same hash, or the benchmark fails.
//
//   nar_hash_bench --attest build/client/attest [--dir DIR] [--size-mib 1024] [--runs 7]
//
// Without --dir the tree goes to a fresh directory under $TMPDIR (or /var/tmp) and is deleted at the
// end; with --dir it is kept there and reused by later runs. Nix runs with private configuration,
// state and cache directories, so the machine's Nix setup does not matter.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "bench/bench_support.h"

extern char** environ;

namespace attest::bench {
namespace {

struct Args {
  std::string attest;
  std::string dir;
  int64_t size_mib = 1024;
  int runs = 7;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "nar_hash_bench: %s\n", message.c_str());
  std::exit(1);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--attest") args.attest = value;
    else if (flag == "--dir") args.dir = value;
    else if (flag == "--size-mib") args.size_mib = std::atoll(value.c_str());
    else if (flag == "--runs") args.runs = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.attest.empty() || args.size_mib < 16 || args.runs < 1) {
    std::fprintf(stderr,
                 "usage: nar_hash_bench --attest PATH [--dir DIR] [--size-mib N>=16] [--runs N]\n"
                 "  e.g. nar_hash_bench --attest build/client/attest --dir /var/tmp/attest-nar-1g\n");
    std::exit(2);
  }
  return args;
}

// --- the tree -------------------------------------------------------------------------------------

class Xorshift final {
 public:
  explicit Xorshift(uint64_t seed) : x_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t Next() {
    x_ ^= x_ << 13;
    x_ ^= x_ >> 7;
    x_ ^= x_ << 17;
    return x_;
  }

 private:
  uint64_t x_;
};

struct TreeStats {
  int64_t files = 0;
  int64_t directories = 0;
  int64_t symlinks = 0;
  int64_t bytes = 0;
};

void WriteFile(const std::string& path, int64_t size, uint64_t seed, mode_t mode, TreeStats& stats) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Die("cannot create " + path + ": " + std::strerror(errno));
  Xorshift rng(seed);
  std::vector<uint64_t> buffer(1 << 17);  // 1 MiB
  int64_t left = size;
  while (left > 0) {
    for (uint64_t& word : buffer) word = rng.Next();
    const size_t n = static_cast<size_t>(std::min<int64_t>(left, buffer.size() * sizeof(uint64_t)));
    if (::write(fd, buffer.data(), n) != static_cast<ssize_t>(n)) Die("cannot write " + path);
    left -= static_cast<int64_t>(n);
  }
  if (::close(fd) != 0) Die("cannot write " + path);
  ::chmod(path.c_str(), mode);
  ++stats.files;
  stats.bytes += size;
}

void MakeDir(const std::string& path, TreeStats& stats) {
  if (::mkdir(path.c_str(), 0755) != 0) Die("cannot create " + path + ": " + std::strerror(errno));
  ++stats.directories;
}

void MakeSymlink(const std::string& target, const std::string& path, TreeStats& stats) {
  if (::symlink(target.c_str(), path.c_str()) != 0) Die("cannot create " + path + ": " + std::strerror(errno));
  ++stats.symlinks;
}

// Half the bytes in 4 large files, a quarter in 32 medium ones, a quarter in small files of 1 byte to
// 64 KiB spread over 64 directories of 8 subdirectories each.
TreeStats BuildTree(const std::string& root, int64_t size_mib) {
  TreeStats stats;
  const int64_t total = size_mib << 20;
  MakeDir(root, stats);
  MakeDir(root + "/large", stats);
  for (int i = 0; i < 4; ++i) {
    WriteFile(root + "/large/blob-" + std::to_string(i), total / 8, 1000 + i, i == 0 ? 0755 : 0644, stats);
  }
  MakeDir(root + "/medium", stats);
  for (int i = 0; i < 32; ++i) {
    WriteFile(root + "/medium/lib" + std::to_string(i) + ".so", total / 128 + i, 2000 + i, 0555, stats);
  }
  MakeDir(root + "/small", stats);
  MakeDir(root + "/small/empty-dir", stats);
  Xorshift sizes(7);
  const int64_t small_budget = total - stats.bytes;
  int64_t small = 0;
  for (int file = 0; small < small_budget; ++file) {
    const std::string dir = root + "/small/d" + std::to_string(file % 64);
    const std::string sub = dir + "/s" + std::to_string((file / 64) % 8);
    if (file < 64) MakeDir(dir, stats);
    if (file < 512) MakeDir(sub, stats);
    const int64_t size = std::min<int64_t>(small_budget - small, 1 + static_cast<int64_t>(sizes.Next() % 65536));
    WriteFile(sub + "/file-" + std::to_string(file), size, 3000 + file, file % 10 == 0 ? 0755 : 0644, stats);
    if (file % 50 == 0) MakeSymlink("file-" + std::to_string(file), sub + "/link-" + std::to_string(file), stats);
    small += size;
  }
  WriteFile(root + "/small/empty-file", 0, 0, 0644, stats);
  MakeSymlink("../large/blob-0", root + "/small/to-large", stats);
  MakeSymlink("/nonexistent/dangling", root + "/small/dangling", stats);
  return stats;
}

TreeStats CountTree(const std::string& root) {
  TreeStats stats;
  ++stats.directories;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_symlink()) ++stats.symlinks;
    else if (entry.is_directory()) ++stats.directories;
    else if (entry.is_regular_file()) {
      ++stats.files;
      stats.bytes += static_cast<int64_t>(entry.file_size());
    }
  }
  return stats;
}

void WarmPageCache(const std::string& root) {
  std::vector<char> buffer(1 << 20);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.is_symlink() || !entry.is_regular_file()) continue;
    const int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    while (::read(fd, buffer.data(), buffer.size()) > 0) {
    }
    ::close(fd);
  }
}

// --- running the tools ----------------------------------------------------------------------------

struct Timed final {
  double seconds = 0;
  double cpu_seconds = 0;  // user + system
  int exit_code = -1;
  std::string out;
};

Timed RunTimed(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) Die("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  Timed result;
  pid_t pid = -1;
  const auto start = std::chrono::steady_clock::now();
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  if (rc != 0) Die("cannot start " + argv[0] + ": " + std::strerror(rc));
  char buffer[4096];
  for (ssize_t n; (n = ::read(out_pipe[0], buffer, sizeof buffer)) > 0;) result.out.append(buffer, n);
  ::close(out_pipe[0]);
  int status = 0;
  rusage usage{};
  ::wait4(pid, &status, 0, &usage);
  result.seconds = SecondsSince(start);
  result.cpu_seconds = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
                       usage.ru_stime.tv_usec / 1e6;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  const bool keep = !args.dir.empty();
  std::string dir = args.dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/var/tmp") + "/attest-nar-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) Die("cannot create a directory under " + pattern);
    dir = pattern;
  }
  std::filesystem::create_directories(dir);
  const std::string tree = dir + "/tree";
  const std::string marker = dir + "/tree.complete";
  const std::string wanted = "nar_hash_bench tree v1 size-mib " + std::to_string(args.size_mib);

  std::string found;
  std::getline(std::ifstream(marker), found);
  TreeStats stats;
  if (found == wanted && std::filesystem::is_directory(tree)) {
    std::printf("reusing the tree in %s\n", tree.c_str());
    stats = CountTree(tree);
  } else {
    std::error_code ignored;
    std::filesystem::remove(marker, ignored);
    std::filesystem::remove_all(tree, ignored);
    std::printf("building a %lld MiB tree in %s...\n", static_cast<long long>(args.size_mib), tree.c_str());
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    stats = BuildTree(tree, args.size_mib);
    std::ofstream(marker) << wanted << "\n";
    std::printf("  built in %.1f s\n", SecondsSince(start));
  }
  std::printf("tree: %.1f MiB in %lld files, %lld directories, %lld symlinks\n", stats.bytes / 1048576.0,
              static_cast<long long>(stats.files), static_cast<long long>(stats.directories),
              static_cast<long long>(stats.symlinks));

  // Private Nix configuration, state and cache; everything else from our environment.
  const std::string nix_home = dir + "/nix-home";
  for (const char* sub : {"", "/etc", "/home", "/cache", "/config", "/state", "/log"}) {
    std::filesystem::create_directories(nix_home + sub);
  }
  std::ofstream(nix_home + "/etc/nix.conf") << "experimental-features = nix-command\nsubstituters =\n";
  const std::map<std::string, std::string> overrides = {
      {"NIX_CONF_DIR", nix_home + "/etc"},      {"NIX_USER_CONF_FILES", nix_home + "/etc/none.conf"},
      {"NIX_CONFIG", ""},                       {"NIX_REMOTE", ""},
      {"NIX_STATE_DIR", nix_home + "/state"},   {"NIX_LOG_DIR", nix_home + "/log"},
      {"HOME", nix_home + "/home"},             {"XDG_CACHE_HOME", nix_home + "/cache"},
      {"XDG_CONFIG_HOME", nix_home + "/config"}, {"XDG_STATE_HOME", nix_home + "/state"}};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    if (overrides.count(entry.substr(0, entry.find('='))) == 0) env.push_back(entry);
  }
  for (const auto& [key, value] : overrides) env.push_back(key + "=" + value);

  const std::vector<std::string> attest_cmd = {args.attest, "nar-hash", tree};
  const std::vector<std::string> nix_cmd = {"nix", "hash", "path", "--base32", tree};

  std::printf("warming the page cache...\n");
  std::fflush(stdout);
  WarmPageCache(tree);
  const Timed attest_first = RunTimed(attest_cmd, env);
  const Timed nix_first = RunTimed(nix_cmd, env);
  if (attest_first.exit_code != 0) Die("attest nar-hash failed (exit " + std::to_string(attest_first.exit_code) + ")");
  if (nix_first.exit_code != 0) Die("nix hash path failed; is Debian's nix-bin installed?");

  // "sha256:<nix32> <narSize>" and "<nix32>".
  const std::string attest_out = Trim(attest_first.out);
  const std::string attest_hash = attest_out.substr(0, attest_out.find(' '));
  const double nar_size = std::atof(attest_out.substr(attest_out.find(' ') + 1).c_str());
  const std::string nix_hash = "sha256:" + Trim(nix_first.out);

  std::vector<double> attest_s, nix_s, attest_cpu, nix_cpu;
  bool consistent = true;
  for (int round = 0; round < args.runs; ++round) {
    for (int which = 0; which < 2; ++which) {
      const bool attest_turn = (which == 0) == (round % 2 == 0);
      const Timed t = RunTimed(attest_turn ? attest_cmd : nix_cmd, env);
      if (t.exit_code != 0) Die(std::string(attest_turn ? "attest" : "nix") + " failed during the runs");
      if (attest_turn) {
        attest_s.push_back(t.seconds);
        attest_cpu.push_back(t.cpu_seconds);
        consistent = consistent && Trim(t.out) == attest_out;
      } else {
        nix_s.push_back(t.seconds);
        nix_cpu.push_back(t.cpu_seconds);
        consistent = consistent && "sha256:" + Trim(t.out) == nix_hash;
      }
    }
  }

  const double attest_median = Median(attest_s);
  const double nix_median = Median(nix_s);
  const double mib = nar_size / 1048576.0;
  auto list = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : " ") + std::to_string(x).substr(0, 5);
    return s;
  };
  std::printf("\nNAR size                 : %.1f MiB\n", mib);
  std::printf("%d runs each, alternating, warm page cache\n", args.runs);
  std::printf("attest nar-hash          : median %.3f s = %.0f MiB/s, cpu %.3f s   (runs: %s)\n", attest_median,
              mib / attest_median, Median(attest_cpu), list(attest_s).c_str());
  std::printf("nix hash path            : median %.3f s = %.0f MiB/s, cpu %.3f s   (runs: %s)\n", nix_median,
              mib / nix_median, Median(nix_cpu), list(nix_s).c_str());
  std::printf("throughput attest / nix  : %.3f (target >= 0.95)\n", nix_median / attest_median);
  const bool same = attest_hash == nix_hash;
  std::printf("hashes                   : %s (attest %s, nix %s)\n", same ? "identical" : "DIFFERENT",
              attest_hash.c_str(), nix_hash.c_str());
  if (!consistent) std::printf("WARNING: a run printed a different answer than the first one\n");

  if (!keep) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  } else {
    std::filesystem::remove_all(nix_home);
  }
  return same && consistent ? 0 : 1;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
