#include "bench/bench_support.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "consensus/encoding.h"
#include "consensus/sha256.h"

extern char** environ;

namespace attest::bench {
namespace {

long ProcStatusKiB(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

}  // namespace

consensus::SecretKey BenchKey(const std::string& name) {
  auto seed = consensus::Sha256("bench-seed|" + name);
  auto key = consensus::SecretKey::FromSeed(name, seed);
  if (!key.ok()) {
    std::fprintf(stderr, "bench: %s\n", std::string(key.status().message()).c_str());
    std::exit(1);
  }
  return std::move(*key);
}

consensus::StorePath BenchStorePath(const std::string& tag, uint64_t index, const std::string& suffix) {
  auto digest = consensus::Sha256(tag + "|" + std::to_string(index) + suffix);
  std::string hash = consensus::Nix32Encode(std::span<const uint8_t>(digest.data(), 20));
  return *consensus::StorePath::Parse("/nix/store/" + hash + "-package-" + std::to_string(index) + suffix);
}

void WriteNodeFiles(const std::string& dir, const std::vector<std::string>& builder_public_keys, int quorum,
                    const std::string& database_path) {
  std::ofstream policy(dir + "/policy.toml");
  policy << "quorum = " << quorum << "\n";
  for (size_t i = 0; i < builder_public_keys.size(); ++i) {
    policy << "\n[[operator]]\nname = \"operator-" << i << "\"\nbuilders = [\"" << builder_public_keys[i]
           << "\"]\n";
  }
  std::ofstream key(dir + "/node.sec");
  key << BenchKey("bench-node-1").ExportText();
  std::ofstream node(dir + "/node.toml");
  node << "[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\ndatabase = \"" << database_path
       << "\"\nkey = \"node.sec\"\npolicy = \"policy.toml\"\n";
}

NodeProcess::NodeProcess(const std::string& attestd, const std::string& dir) {
  std::string log = dir + "/attestd.out";
  std::string config = dir + "/node.toml";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, (dir + "/attestd.err").c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  std::vector<char*> argv{const_cast<char*>(attestd.c_str()), const_cast<char*>("--config"),
                          const_cast<char*>(config.c_str()), nullptr};
  if (posix_spawn(&pid_, attestd.c_str(), &actions, nullptr, argv.data(), environ) != 0) {
    std::fprintf(stderr, "bench: cannot start %s\n", attestd.c_str());
    std::exit(1);
  }
  posix_spawn_file_actions_destroy(&actions);
  const std::string needle = "grpc listening on ";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) {
      auto at = line.find(needle);
      if (at != std::string::npos) {
        address_ = line.substr(at + needle.size());
        return;
      }
    }
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::fprintf(stderr, "bench: attestd did not start; see %s/attestd.err\n", dir.c_str());
  std::exit(1);
}

NodeProcess::~NodeProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
}

long NodeProcess::ResidentKiB() const { return ProcStatusKiB(pid_, "VmRSS"); }
long NodeProcess::PeakResidentKiB() const { return ProcStatusKiB(pid_, "VmHWM"); }

double NodeProcess::CpuSeconds() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces, hence the last ')'): state is field 3,
  // utime and stime are fields 14 and 15.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double NearestRankPercentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(values.size())));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    std::fprintf(stderr, "cannot find a free loopback port\n");
    std::exit(1);
  }
  close(fd);
  return ntohs(addr.sin_port);
}

void WriteFileOrExit(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  if (!out.flush()) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

namespace {

// The attestd processes running now. Never destroyed: StopTrackedNodes runs at exit.
std::vector<pid_t>& TrackedPids() {
  static auto* pids = new std::vector<pid_t>();
  return *pids;
}

}  // namespace

TrackedNode::TrackedNode(const std::string& attestd, const std::string& dir) : process_(attestd, dir) {
  TrackedPids().push_back(process_.pid());
}

TrackedNode::~TrackedNode() { std::erase(TrackedPids(), process_.pid()); }

void StopTrackedNodes() {
  for (pid_t pid : TrackedPids()) kill(pid, SIGTERM);
  for (pid_t pid : TrackedPids()) waitpid(pid, nullptr, 0);
  TrackedPids().clear();
}

}  // namespace attest::bench
