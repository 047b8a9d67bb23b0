// /metrics scrape time on a node with a sizeable database.
//
// Fills (or reuses) a database with N attestations of the ingest load (bench/ingest_load.h: three
// builders, three per path, five references each), written straight into the store; starts a real
// attestd on it; submits a few thousand attestations over gRPC so the counters and histograms have
// values; then scrapes GET /metrics over loopback (a new connection per scrape, as a simple poller
// would) and prints the median and p99 scrape time and the size of the exposition.
//
//   metrics_bench --attestd build/server/attestd [--attestations 1000000] [--dir DIR] [--scrapes 200]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

#include "absl/strings/str_cat.h"
#include "bench/bench_support.h"
#include "bench/ingest_load.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::bench {
namespace {

struct Args {
  std::string attestd;
  int64_t attestations = 1000000;
  std::string dir;
  int scrapes = 200;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--attestd") args.attestd = value;
    else if (flag == "--attestations") args.attestations = std::atoll(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else if (flag == "--scrapes") args.scrapes = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.attestd.empty() || args.scrapes <= 0) {
    std::fprintf(stderr,
                 "usage: metrics_bench --attestd PATH [--attestations N] [--dir DIR] [--scrapes N]\n");
    std::exit(2);
  }
  return args;
}

// Attestations [0, kSubmitted) of the load are submitted over gRPC; the rest is written directly.
constexpr int64_t kSubmitted = 3000;

// Writes attestations [from, count) of the ingest load into the store, signed on two threads.
void Fill(storage::AttestationStore& store, const std::vector<consensus::SecretKey>& builders, int64_t from,
          int64_t count) {
  constexpr int64_t kBatch = 9000;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t first = from; first < count; first += kBatch) {
    const int64_t last = std::min(count, first + kBatch);
    std::vector<std::optional<storage::StoredAttestation>> made(static_cast<size_t>(last - first));
    std::vector<std::thread> signers;
    for (int t = 0; t < 2; ++t) {
      signers.emplace_back([&, t] {
        for (int64_t i = first + t; i < last; i += 2) {
          made[static_cast<size_t>(i - first)] =
              storage::StoredAttestation{IngestAttestation(i, builders), 1790000000, std::nullopt, ""};
        }
      });
    }
    for (std::thread& t : signers) t.join();
    storage::WriteBatch batch;
    for (auto& attestation : made) batch.attestations.push_back(std::move(*attestation));
    auto written = store.Write(batch);
    if (!written.ok()) {
      std::fprintf(stderr, "write failed: %s\n", std::string(written.status().message()).c_str());
      std::exit(1);
    }
    if (((first - from) / kBatch) % 20 == 0) {
      std::printf("  %lld attestations (%.0f /s)\n", static_cast<long long>(last - from),
                  (last - from) / SecondsSince(start));
      std::fflush(stdout);
    }
  }
}

// The node's HTTP port, from the line attestd prints at start.
int HttpPort(const std::string& dir) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  const std::string needle = "http listening on ";
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream out(dir + "/attestd.out");
    std::stringstream text;
    text << out.rdbuf();
    const std::string s = text.str();
    const size_t at = s.find(needle);
    const size_t end = at == std::string::npos ? std::string::npos : s.find('\n', at);
    if (end != std::string::npos) {
      const std::string address = s.substr(at + needle.size(), end - at - needle.size());
      return std::atoi(address.substr(address.rfind(':') + 1).c_str());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "attestd did not print its http address (see %s/attestd.err)\n", dir.c_str());
  std::exit(1);
}

// GET /metrics on a new connection; the whole answer (head and body), or "" on failure.
std::string Scrape(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return "";
  }
  std::string answer;
  char buffer[65536];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) answer.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  return answer;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    char dir_template[] = "/tmp/attest-metrics-bench-XXXXXX";
    dir = mkdtemp(dir_template);
  }
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/attest.db";
  const std::vector<consensus::SecretKey> builders = IngestBuilders();
  WriteNodeFiles(dir, PublicKeys(builders), 2, "attest.db");
  {
    auto store = storage::SqliteAttestationStore::Open(db, {});
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
      return 1;
    }
    auto stats = (*store)->Stats();
    if (stats.ok() && stats->attestations >= args.attestations - kSubmitted) {
      std::printf("reusing %s with %lld attestations\n", db.c_str(), static_cast<long long>(stats->attestations));
    } else {
      std::printf("filling %s with %lld attestations...\n", db.c_str(), static_cast<long long>(args.attestations));
      Fill(**store, builders, kSubmitted, args.attestations);
    }
  }

  NodeProcess node(args.attestd, dir);
  const int port = HttpPort(dir);
  // Some traffic, so the histograms and counters have values (on a reused database these are
  // ALREADY_PRESENT, which the loader reports as not accepted).
  std::vector<v1::SubmitRequest> requests = PresignIngestLoad(kSubmitted, 1000, builders);
  SubmitFigures submitted = SubmitAll(node.address(), requests, 2);
  std::printf("submitted %lld attestations: %lld accepted\n", static_cast<long long>(kSubmitted),
              static_cast<long long>(submitted.acknowledged));

  for (int i = 0; i < 3; ++i) Scrape(port);  // warm up
  std::vector<double> ms;
  size_t body_bytes = 0;
  int failed = 0;
  std::string last;
  const double cpu_at_start = node.CpuSeconds();
  for (int i = 0; i < args.scrapes; ++i) {
    const auto start = std::chrono::steady_clock::now();
    std::string answer = Scrape(port);
    ms.push_back(SecondsSince(start) * 1000);
    const size_t head = answer.find("\r\n\r\n");
    if (answer.rfind("HTTP/1.1 200", 0) != 0 || head == std::string::npos) {
      ++failed;
      continue;
    }
    body_bytes = answer.size() - head - 4;
    last = std::move(answer);
  }
  const double cpu_ms = (node.CpuSeconds() - cpu_at_start) * 1000 / args.scrapes;
  std::sort(ms.begin(), ms.end());
  size_t samples = 0;
  for (size_t at = last.find("\r\n\r\n"); at != std::string::npos && at + 1 < last.size();
       at = last.find('\n', at + 1)) {
    if (last[at + 1] != '#' && last[at + 1] != '\n') ++samples;
  }
  std::printf("database: %lld attestations, %.1f MB\n", static_cast<long long>(args.attestations),
              (std::filesystem::file_size(db) +
               (std::filesystem::exists(db + "-wal") ? std::filesystem::file_size(db + "-wal") : 0)) /
                  1e6);
  std::printf("scrapes: %d (%d failed), exposition %zu bytes, %zu samples\n", args.scrapes, failed, body_bytes,
              samples);
  std::printf("scrape time: median %.2f ms, p99 %.2f ms, max %.2f ms; node CPU %.2f ms per scrape\n",
              ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)], ms.back(), cpu_ms);
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
