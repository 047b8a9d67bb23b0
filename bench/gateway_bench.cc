// Gateway narinfo throughput against nginx serving the same narinfo files as a static binary cache.
//
// Writes N narinfos (Nix's format, references between them, one builder Sig: each) into a binary cache
// directory, stores two agreeing attestations per path directly in the node's database (CONFIRMED,
// quorum 2 of 3), starts a real attestd whose gateway has that directory as a file:// upstream, and an
// nginx (its own config in the temp dir, `daemon off`, killed by pid at the end) serving the same
// directory. Every path is requested once from the gateway first (the cold pass: upstream read, tally,
// signature) and must be 200. Then `wrk -t2 -c16` with a Lua script rotating over the narinfo paths
// runs against both, alternating, several rounds, in the same run.
//
//   gateway_bench --attestd build/server/attestd [--paths 2000] [--seconds 10] [--rounds 3]
//                 [--wrk wrk] [--nginx nginx] [--dir DIR]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_support.h"
#include "consensus/attestation.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "storage/sqlite_attestation_store.h"

extern char** environ;

namespace attest::bench {
namespace {

struct Args {
  std::string attestd;
  std::string wrk = "wrk";
  std::string nginx = "nginx";
  std::string dir;
  int paths = 2000;
  int seconds = 10;
  int rounds = 3;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "gateway_bench: %s\n", message.c_str());
  std::exit(1);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--attestd")
      args.attestd = value;
    else if (flag == "--wrk")
      args.wrk = value;
    else if (flag == "--nginx")
      args.nginx = value;
    else if (flag == "--dir")
      args.dir = value;
    else if (flag == "--paths")
      args.paths = std::atoi(value.c_str());
    else if (flag == "--seconds")
      args.seconds = std::atoi(value.c_str());
    else if (flag == "--rounds")
      args.rounds = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.attestd.empty() || args.paths < 1 || args.seconds < 1 || args.rounds < 1) {
    std::fprintf(stderr,
                 "usage: gateway_bench --attestd PATH [--paths N] [--seconds S] [--rounds R] [--wrk wrk] "
                 "[--nginx nginx] [--dir DIR]\n");
    std::exit(2);
  }
  return args;
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  if (!out) Die("cannot write " + path);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// GETs `target` on a keep-alive connection; returns the status (0 on failure).
int Get(int fd, const std::string& target) {
  const std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return 0;
  std::string in;
  size_t head_end;
  while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
    char buffer[8192];
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return 0;
    in.append(buffer, static_cast<size_t>(n));
  }
  std::string head = in.substr(0, head_end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = head.find("content-length: ");
  const size_t length = at == std::string::npos ? 0 : std::strtoul(head.c_str() + at + 16, nullptr, 10);
  while (in.size() < head_end + 4 + length) {
    char buffer[8192];
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return 0;
    in.append(buffer, static_cast<size_t>(n));
  }
  return std::atoi(in.c_str() + 9);
}

struct WrkResult {
  double requests_per_second = 0;
  long non_2xx = 0;
  long errors = 0;
  std::string latency;
};

WrkResult RunWrk(const Args& args, const std::string& script, int port) {
  const std::string command = args.wrk + " -t2 -c16 -d" + std::to_string(args.seconds) + "s -s " + script +
                              " http://127.0.0.1:" + std::to_string(port) + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) Die("cannot run " + args.wrk);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  if (::pclose(pipe) != 0) Die("wrk failed:\n" + output);
  WrkResult result;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Requests/sec:", 0) == 0) result.requests_per_second = std::atof(line.c_str() + 13);
    if (line.find("Non-2xx or 3xx responses:") != std::string::npos) {
      result.non_2xx = std::atol(line.c_str() + line.find(':') + 1);
    }
    if (line.find("Socket errors:") != std::string::npos) result.errors = 1;
    if (line.find("Latency") != std::string::npos && result.latency.empty()) result.latency = line;
  }
  if (result.requests_per_second <= 0) Die("could not read wrk's output:\n" + output);
  return result;
}

class Nginx final {
 public:
  Nginx(const Args& args, const std::string& dir, const std::string& root, int port) {
    const std::string conf = dir + "/nginx.conf";
    std::filesystem::create_directories(dir + "/nginx-tmp");
    // worker_processes auto: one per core, as an operator would run it. keepalive_requests is raised so
    // wrk's connections are not recycled every 1000 requests (attestd does not recycle them either).
    WriteFile(conf, "daemon off;\nworker_processes auto;\npid " + dir + "/nginx.pid;\nerror_log " + dir +
                        "/nginx-error.log;\nevents { worker_connections 1024; }\nhttp {\n  access_log off;\n"
                        "  sendfile on;\n  keepalive_requests 1000000;\n  default_type text/x-nix-narinfo;\n"
                        "  client_body_temp_path " +
                        dir + "/nginx-tmp;\n  proxy_temp_path " + dir + "/nginx-tmp;\n  fastcgi_temp_path " + dir +
                        "/nginx-tmp;\n  uwsgi_temp_path " + dir + "/nginx-tmp;\n  scgi_temp_path " + dir +
                        "/nginx-tmp;\n  server {\n    listen 127.0.0.1:" + std::to_string(port) + ";\n    root " +
                        root + ";\n  }\n}\n");
    std::vector<std::string> argv_text{args.nginx, "-c", conf, "-p", dir};
    std::vector<char*> argv;
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, args.nginx.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      Die("cannot start " + args.nginx + " (apt-get install nginx-light)");
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      const int fd = Connect(port);
      if (fd >= 0) {
        ::close(fd);
        return;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    Die("nginx did not start; see " + dir + "/nginx-error.log");
  }
  ~Nginx() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
};

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp != 0 ? tmp : "/tmp") + "/gateway-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) Die("mkdtemp failed");
    dir = pattern;
  }
  std::filesystem::create_directories(dir);
  // nginx's workers run as an unprivileged user when started by root: the tree must be readable.
  ::chmod(dir.c_str(), 0755);
  const std::string cache = dir + "/cache";
  std::filesystem::remove_all(cache);
  std::filesystem::create_directories(cache + "/nar");
  std::filesystem::remove(dir + "/attest.db");
  std::filesystem::remove(dir + "/attest.db-wal");
  std::filesystem::remove(dir + "/attest.db-shm");

  // Three operators, quorum 2; builders 0 and 1 sign every path.
  std::vector<consensus::SecretKey> builders;
  std::vector<std::string> publics;
  for (int b = 0; b < 3; ++b) {
    builders.push_back(BenchKey("gateway-bench-builder-" + std::to_string(b)));
    publics.push_back(builders.back().public_key().ToString());
  }
  WriteNodeFiles(dir, publics, 2, "attest.db");
  {
    std::ofstream node(dir + "/node.toml", std::ios::app);
    node << "\n[gateway]\nupstream = \"file://" << cache << "\"\ncache_entries = " << std::max(args.paths * 2, 1000)
         << "\n";
  }
  WriteFile(cache + "/nix-cache-info", "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");

  const auto fill_start = std::chrono::steady_clock::now();
  std::vector<std::string> targets;
  std::vector<consensus::StorePath> paths;
  {
    auto store = storage::SqliteAttestationStore::Open(dir + "/attest.db", {});
    if (!store.ok()) Die(std::string(store.status().message()));
    storage::WriteBatch batch;
    for (int i = 0; i < args.paths; ++i) {
      const consensus::StorePath path = BenchStorePath("gateway-bench", static_cast<uint64_t>(i));
      std::vector<consensus::StorePath> references;
      for (int r = 1; r <= 3 && r <= i; ++r) references.push_back(paths[static_cast<size_t>(i - 1 - (r * 7) % i)]);
      std::sort(references.begin(), references.end());
      references.erase(std::unique(references.begin(), references.end()), references.end());
      const auto digest = consensus::Sha256("gateway-bench-nar|" + std::to_string(i));
      const uint64_t nar_size = 1000 + static_cast<uint64_t>(i) * 37 % 100000;
      auto claim = consensus::PathInfo::Create(path, consensus::NarHash::FromDigest(digest), nar_size, references);
      if (!claim.ok()) Die(std::string(claim.status().message()));
      const std::string file_hash = consensus::NarHash::FromDigest(digest).ToNix32();
      std::string narinfo = "StorePath: " + path.full() + "\nURL: nar/" + file_hash.substr(7) +
                            ".nar.xz\nCompression: xz\nFileHash: " + file_hash +
                            "\nFileSize: " + std::to_string(nar_size / 3) + "\nNarHash: " + claim->nar_hash.ToNix32() +
                            "\nNarSize: " + std::to_string(nar_size) + "\nReferences:";
      for (const auto& reference : claim->references) narinfo += " " + std::string(reference.base_name());
      if (claim->references.empty()) narinfo += " ";
      narinfo += "\nDeriver: " + std::string(path.hash_part()) + "-package-" + std::to_string(i) + ".drv\n";
      narinfo += "Sig: " + builders[0].Sign(claim->Fingerprint()).ToString() + "\n";
      WriteFile(cache + "/" + std::string(path.hash_part()) + ".narinfo", narinfo);
      for (int b = 0; b < 2; ++b) {
        batch.attestations.push_back(storage::StoredAttestation{
            consensus::SignAttestation(*claim, builders[static_cast<size_t>(b)]), 1790000000, std::nullopt});
      }
      paths.push_back(path);
      targets.push_back("/" + std::string(path.hash_part()) + ".narinfo");
    }
    auto written = (*store)->Write(batch);
    if (!written.ok()) Die(std::string(written.status().message()));
  }
  std::printf("prepared %d narinfos and %d attestations in %.1f s (%s)\n", args.paths, args.paths * 2,
              SecondsSince(fill_start), dir.c_str());

  const std::string script = dir + "/rotate.lua";
  {
    std::string list;
    for (const std::string& t : targets) list += t + "\n";
    WriteFile(dir + "/targets.txt", list);
    WriteFile(script,
              "local targets = {}\n"
              "for line in io.lines(\"" +
                  dir +
                  "/targets.txt\") do targets[#targets + 1] = line end\n"
                  "local counter = 0\n"
                  "function init(args)\n"
                  "  counter = math.random(#targets)\n"
                  "end\n"
                  "function request()\n"
                  "  counter = counter % #targets + 1\n"
                  "  return wrk.format(\"GET\", targets[counter])\n"
                  "end\n");
  }

  {
    NodeProcess node(args.attestd, dir);
    int gateway_port = 0;
    {
      std::ifstream out(dir + "/attestd.out");
      const std::string needle = "http listening on 127.0.0.1:";
      for (std::string line; std::getline(out, line);) {
        const size_t at = line.find(needle);
        if (at != std::string::npos) gateway_port = std::atoi(line.c_str() + at + needle.size());
      }
    }
    if (gateway_port == 0) Die("attestd printed no http address; see " + dir + "/attestd.out");
    const int nginx_port = FreePort();
    Nginx nginx(args, dir, cache, nginx_port);

    // Cold pass: every path once, sequentially (upstream file read, tally from SQLite, node signature).
    {
      const int fd = Connect(gateway_port);
      if (fd < 0) Die("cannot connect to the gateway");
      const auto start = std::chrono::steady_clock::now();
      for (const std::string& target : targets) {
        const int status = Get(fd, target);
        if (status != 200) Die("the gateway answered " + std::to_string(status) + " for " + target);
      }
      const double seconds = SecondsSince(start);
      ::close(fd);
      const int nginx_fd = Connect(nginx_port);
      for (const std::string& target : targets) {
        if (Get(nginx_fd, target) != 200) Die("nginx did not serve " + target);
      }
      ::close(nginx_fd);
      std::printf("cold pass: %zu narinfos, one connection, %.0f us per request (every one a miss)\n", targets.size(),
                  seconds * 1e6 / static_cast<double>(targets.size()));
    }

    std::vector<double> nginx_rates, gateway_rates;
    for (int round = 1; round <= args.rounds; ++round) {
      const WrkResult n = RunWrk(args, script, nginx_port);
      const WrkResult g = RunWrk(args, script, gateway_port);
      if (n.non_2xx != 0 || g.non_2xx != 0) {
        Die("non-2xx answers (nginx " + std::to_string(n.non_2xx) + ", gateway " + std::to_string(g.non_2xx) + ")");
      }
      nginx_rates.push_back(n.requests_per_second);
      gateway_rates.push_back(g.requests_per_second);
      std::printf("round %d: nginx %.0f req/s, gateway %.0f req/s, ratio %.2f\n", round, n.requests_per_second,
                  g.requests_per_second, g.requests_per_second / n.requests_per_second);
      std::printf("  nginx   %s\n  gateway %s\n", n.latency.c_str(), g.latency.c_str());
    }
    const double nginx_median = Median(nginx_rates);
    const double gateway_median = Median(gateway_rates);
    std::printf(
        "median of %d rounds (wrk -t2 -c16 -d%ds, %d paths): nginx %.0f req/s, gateway %.0f req/s, "
        "ratio %.2f (target >= 0.5)\n",
        args.rounds, args.seconds, args.paths, nginx_median, gateway_median, gateway_median / nginx_median);
    std::printf("attestd peak resident memory: %ld KiB\n", node.PeakResidentKiB());
  }  // attestd and nginx stop here
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
