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
// With --pending: the overhead of demand counting (docs/rebuilds.md) on narinfo throughput. Each path has
// ONE attestation (PENDING under quorum 2), so every narinfo request is a 404 that the node counts as
// demand. Two attestd processes run side by side on two databases filled alike, with the same upstream
// directory, one with `[rebuild] count_demand = true` and one with `false`; each gets the cold pass
// (every answer must be 404), then the same wrk load against each, alternating which goes first every
// round. Printed per node: requests/s, attestd CPU per request, the ratio, and the demand counters from
// /metrics (what counting did: counted, repeat, rate_limited). No nginx in this mode.
//
// --demand-budget N sets the node's per-client budget (default 1,000 a minute: from one wrk address,
// most requests are then rate-limited, the cheapest outcome); --control makes both nodes not count
// (an A/A run: the spread of its ratios is the machine's noise).
//
//   gateway_bench --attestd build/server/attestd [--paths 2000] [--seconds 10] [--rounds 3]
//                 [--wrk wrk] [--nginx nginx] [--dir DIR] [--pending [--demand-budget N] [--control]]
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
#include <memory>
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
  bool pending = false;
  bool control = false;       // --pending with counting off on both nodes (the noise floor)
  int64_t demand_budget = 0;  // 0: the node's default
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "gateway_bench: %s\n", message.c_str());
  std::exit(1);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--pending" || flag == "--control") {
      (flag == "--pending" ? args.pending : args.control) = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "flag %s needs a value\n", flag.c_str());
      std::exit(2);
    }
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
    else if (flag == "--demand-budget")
      args.demand_budget = std::atoll(value.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.attestd.empty() || args.paths < 1 || args.seconds < 1 || args.rounds < 1 || args.demand_budget < 0 ||
      (args.control && !args.pending)) {
    std::fprintf(stderr,
                 "usage: gateway_bench --attestd PATH [--paths N] [--seconds S] [--rounds R] [--wrk wrk] "
                 "[--nginx nginx] [--dir DIR] [--pending [--demand-budget N] [--control]]\n");
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

// GETs `target` on a keep-alive connection; returns the status (0 on failure) and, when `body` is
// given, the body.
int Get(int fd, const std::string& target, std::string* body = nullptr) {
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
  if (body != nullptr) *body = in.substr(head_end + 4, length);
  return std::atoi(in.c_str() + 9);
}

struct WrkResult {
  double requests_per_second = 0;
  long requests = 0;
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
    if (line.find(" requests in ") != std::string::npos) result.requests = std::atol(line.c_str());
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

// Writes the narinfos into `cache` (one builder Sig: each) and, into every database of `databases`, the
// attestations of the first `signers` builders for every path. Returns the narinfo request targets.
std::vector<std::string> WriteCacheAndDatabases(const Args& args, const std::string& cache,
                                                const std::vector<std::string>& databases,
                                                const std::vector<consensus::SecretKey>& builders, int signers) {
  std::vector<std::string> targets;
  std::vector<consensus::StorePath> paths;
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
    for (int b = 0; b < signers; ++b) {
      batch.attestations.push_back(storage::StoredAttestation{
          consensus::SignAttestation(*claim, builders[static_cast<size_t>(b)]), 1790000000, std::nullopt, ""});
    }
    paths.push_back(path);
    targets.push_back("/" + std::string(path.hash_part()) + ".narinfo");
  }
  for (const std::string& database : databases) {
    auto store = storage::SqliteAttestationStore::Open(database, {});
    if (!store.ok()) Die(std::string(store.status().message()));
    auto written = (*store)->Write(batch);
    if (!written.ok()) Die(std::string(written.status().message()));
  }
  return targets;
}

// A wrk script that rotates over the targets, each connection from a random start.
std::string WriteRotateScript(const std::string& dir, const std::vector<std::string>& targets) {
  const std::string script = dir + "/rotate.lua";
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
  return script;
}

// The HTTP port attestd printed into <node_dir>/attestd.out.
int GatewayPort(const std::string& node_dir) {
  std::ifstream out(node_dir + "/attestd.out");
  const std::string needle = "http listening on 127.0.0.1:";
  int port = 0;
  for (std::string line; std::getline(out, line);) {
    const size_t at = line.find(needle);
    if (at != std::string::npos) port = std::atoi(line.c_str() + at + needle.size());
  }
  if (port == 0) Die("attestd printed no http address; see " + node_dir + "/attestd.out");
  return port;
}

// Every target once on one connection; each answer must be `expected`. Returns microseconds per request.
double ColdPass(int port, const std::vector<std::string>& targets, int expected, const std::string& who) {
  const int fd = Connect(port);
  if (fd < 0) Die("cannot connect to " + who);
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& target : targets) {
    const int status = Get(fd, target);
    if (status != expected) {
      Die(who + " answered " + std::to_string(status) + " for " + target + " (expected " + std::to_string(expected) +
          ")");
    }
  }
  const double seconds = SecondsSince(start);
  ::close(fd);
  return seconds * 1e6 / static_cast<double>(targets.size());
}

// The gateway against nginx on the same files (CONFIRMED paths: every answer 200).
void RunAgainstNginx(const Args& args, const std::string& dir, const std::string& cache,
                     const std::vector<std::string>& targets, const std::string& script) {
  NodeProcess node(args.attestd, dir);
  const int gateway_port = GatewayPort(dir);
  const int nginx_port = FreePort();
  Nginx nginx(args, dir, cache, nginx_port);

  // Cold pass: every path once, sequentially (upstream file read, tally from SQLite, node signature).
  const double cold_us = ColdPass(gateway_port, targets, 200, "the gateway");
  ColdPass(nginx_port, targets, 200, "nginx");
  std::printf("cold pass: %zu narinfos, one connection, %.0f us per request (every one a miss)\n", targets.size(),
              cold_us);

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
}

// attest_demand_requests_total by outcome, read from the node's /metrics.
std::string DemandCounters(int port) {
  const int fd = Connect(port);
  if (fd < 0) Die("cannot connect to read /metrics");
  std::string body;
  const int status = Get(fd, "/metrics", &body);
  ::close(fd);
  if (status != 200) Die("GET /metrics answered " + std::to_string(status));
  std::string counters;
  std::istringstream lines(body);
  const std::string family = "attest_demand_requests_total{outcome=\"";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(family, 0) != 0) continue;
    const size_t quote = line.find('"', family.size());
    const size_t space = line.rfind(' ');
    if (quote == std::string::npos || space == std::string::npos) continue;
    if (!counters.empty()) counters += ", ";
    counters += line.substr(family.size(), quote - family.size()) + " " + line.substr(space + 1);
  }
  return counters.empty() ? "(no attest_demand_requests_total in /metrics)" : counters;
}

// One node of the --pending comparison.
struct PendingNode {
  std::string label;
  std::string dir;
  std::unique_ptr<NodeProcess> process;
  int port = 0;
  std::vector<double> rates;
  std::vector<double> cpu_us;  // attestd CPU per request
};

// Demand counting on and off, side by side, on PENDING paths (every answer 404).
void RunPending(const Args& args, const std::string& dir, const std::vector<std::string>& targets,
                const std::string& script, std::vector<PendingNode>& nodes) {
  for (PendingNode& node : nodes) {
    node.process = std::make_unique<NodeProcess>(args.attestd, node.dir);
    node.port = GatewayPort(node.dir);
  }
  // Cold pass on each (upstream file read, tally: PENDING, 404 kept in the table; the counting node
  // counts each path once, within its per-client budget).
  for (PendingNode& node : nodes) {
    const double cold_us = ColdPass(node.port, targets, 404, "the gateway (" + node.label + ")");
    std::printf("cold pass, %s: %zu narinfos, one connection, %.0f us per request (every one a 404)\n",
                node.label.c_str(), targets.size(), cold_us);
  }

  for (int round = 1; round <= args.rounds; ++round) {
    std::printf("round %d:", round);
    // Alternate which node goes first: the machine's load drifts within a run.
    for (size_t k = 0; k < nodes.size(); ++k) {
      PendingNode& node = nodes[(k + static_cast<size_t>(round - 1)) % nodes.size()];
      const double cpu_before = node.process->CpuSeconds();
      const WrkResult result = RunWrk(args, script, node.port);
      const double cpu = node.process->CpuSeconds() - cpu_before;
      if (result.requests <= 0 || result.non_2xx != result.requests) {
        Die(node.label + ": " + std::to_string(result.non_2xx) + " of " + std::to_string(result.requests) +
            " answers were not 2xx; every one must be a 404 here");
      }
      if (result.errors != 0) Die(node.label + ": wrk reported socket errors");
      node.rates.push_back(result.requests_per_second);
      node.cpu_us.push_back(cpu * 1e6 / static_cast<double>(result.requests));
      std::printf(" %s %.0f req/s (%.1f us CPU/request)%s", node.label.c_str(), result.requests_per_second,
                  node.cpu_us.back(), k + 1 < nodes.size() ? "," : "");
    }
    std::printf("; ratio %.3f\n", nodes[0].rates.back() / nodes[1].rates.back());
  }
  const double on = Median(nodes[0].rates);
  const double off = Median(nodes[1].rates);
  // Each round's two runs are back to back, so their ratio is less exposed to the machine's drift than
  // the ratio of the two medians; both are printed.
  std::vector<double> ratios;
  for (size_t r = 0; r < nodes[0].rates.size(); ++r) ratios.push_back(nodes[0].rates[r] / nodes[1].rates[r]);
  const double ratio = Median(ratios);
  const double on_cpu = Median(nodes[0].cpu_us);
  const double off_cpu = Median(nodes[1].cpu_us);
  std::printf(
      "median of %d rounds (wrk -t2 -c16 -d%ds, %d PENDING paths, every answer 404): %s %.0f req/s, "
      "not counting %.0f req/s (ratio of the medians %.3f)\n",
      args.rounds, args.seconds, args.paths, nodes[0].label.c_str(), on, off, on / off);
  std::printf("rounds' ratios: min %.3f, median %.3f, max %.3f; overhead (1 - median) %.1f%% (target <= 10%%)\n",
              *std::min_element(ratios.begin(), ratios.end()), ratio, *std::max_element(ratios.begin(), ratios.end()),
              (1 - ratio) * 100);
  std::printf("attestd CPU per request, median: %s %.1f us, not counting %.1f us (%+.1f%%)\n",
              nodes[0].label.c_str(), on_cpu, off_cpu, (on_cpu / off_cpu - 1) * 100);
  for (const PendingNode& node : nodes) {
    std::printf("demand counters, %s: %s; peak resident memory %ld KiB\n", node.label.c_str(),
                DemandCounters(node.port).c_str(), node.process->PeakResidentKiB());
  }
  for (PendingNode& node : nodes) node.process.reset();  // SIGTERM, wait
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
  WriteFile(cache + "/nix-cache-info", "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");

  // Three operators, quorum 2; builders 0 and 1 sign every path (builder 0 only with --pending).
  std::vector<consensus::SecretKey> builders;
  std::vector<std::string> publics;
  for (int b = 0; b < 3; ++b) {
    builders.push_back(BenchKey("gateway-bench-builder-" + std::to_string(b)));
    publics.push_back(builders.back().public_key().ToString());
  }
  // The node directories: `dir` itself, or with --pending one per demand setting, each with its own
  // database filled alike and the same upstream.
  std::vector<PendingNode> pending_nodes;
  std::vector<std::pair<std::string, std::string>> node_dirs;  // (dir, extra node.toml)
  const std::string gateway_table = "\n[gateway]\nupstream = \"file://" + cache +
                                    "\"\ncache_entries = " + std::to_string(std::max(args.paths * 2, 1000)) + "\n";
  if (args.pending) {
    const std::string budget =
        args.demand_budget > 0 ? "demand_budget = " + std::to_string(args.demand_budget) + "\n" : "";
    pending_nodes.resize(2);
    // --control: the first node does not count either, so the two differ only by chance and the
    // spread of the rounds' ratios shows what the machine's noise alone does.
    pending_nodes[0].label = args.control ? "not counting (control)" : "counting";
    pending_nodes[0].dir = dir + "/counting";
    pending_nodes[1].label = "not counting";
    pending_nodes[1].dir = dir + "/not-counting";
    node_dirs.emplace_back(pending_nodes[0].dir, gateway_table + "\n[rebuild]\ncount_demand = " +
                                                     (args.control ? "false" : "true") + "\n" + budget);
    node_dirs.emplace_back(pending_nodes[1].dir, gateway_table + "\n[rebuild]\ncount_demand = false\n" + budget);
  } else {
    node_dirs.emplace_back(dir, gateway_table);
  }
  std::vector<std::string> databases;
  for (const auto& [node_dir, extra] : node_dirs) {
    std::filesystem::create_directories(node_dir);
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(node_dir + "/attest.db" + suffix);
    std::filesystem::remove(node_dir + "/attest.db.demand");
    WriteNodeFiles(node_dir, publics, 2, "attest.db");
    std::ofstream(node_dir + "/node.toml", std::ios::app) << extra;
    databases.push_back(node_dir + "/attest.db");
  }

  const int signers = args.pending ? 1 : 2;
  const auto fill_start = std::chrono::steady_clock::now();
  const std::vector<std::string> targets = WriteCacheAndDatabases(args, cache, databases, builders, signers);
  std::printf("prepared %d narinfos and %d attestations per database (%zu database%s) in %.1f s (%s)\n", args.paths,
              args.paths * signers, databases.size(), databases.size() == 1 ? "" : "s", SecondsSince(fill_start),
              dir.c_str());
  const std::string script = WriteRotateScript(dir, targets);

  if (args.pending) {
    RunPending(args, dir, targets, script, pending_nodes);
  } else {
    RunAgainstNginx(args, dir, cache, targets, script);
  }  // attestd and nginx stop here
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
