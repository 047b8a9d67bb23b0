// Status latency, storage cost and memory on a large database.
//
// Builds (or reuses) a database of N attestations: N/3 store paths, three builders (three operators,
// quorum 2) each signing every path for real, 5 references per path on average, a deriver, output name
// and system on every attestation. Then starts a real attestd on it and asks the status of 1,000
// random paths per request over gRPC on loopback.
//
//   status_bench --attestd build/server/attestd [--attestations 10000000] [--dir DIR] [--requests 50]
//
// --dir keeps the database between runs (filling 10 million takes minutes); it is reused when present.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_support.h"
#include "consensus/attestation.h"
#include "consensus/sha256.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::bench {
namespace {

struct Args {
  std::string attestd;
  int64_t attestations = 10000000;
  std::string dir;
  int requests = 50;
  int paths_per_request = 1000;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--attestd") args.attestd = value;
    else if (flag == "--attestations") args.attestations = std::atoll(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else if (flag == "--requests") args.requests = std::atoi(value.c_str());
    else if (flag == "--paths-per-request") args.paths_per_request = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.attestd.empty()) {
    std::fprintf(stderr, "usage: status_bench --attestd PATH [--attestations N] [--dir DIR] [--requests N]\n");
    std::exit(2);
  }
  return args;
}

consensus::StorePath BenchPath(uint64_t i, const std::string& suffix = "") {
  return BenchStorePath("status-bench", i, suffix);
}

void Fill(storage::AttestationStore& store, const std::vector<consensus::SecretKey>& builders, int64_t paths) {
  constexpr int64_t kPathsPerBatch = 3000;
  std::mt19937_64 rng(42);
  auto start = std::chrono::steady_clock::now();
  int64_t done = 0;
  for (int64_t first = 0; first < paths; first += kPathsPerBatch) {
    int64_t last = std::min(paths, first + kPathsPerBatch);
    storage::WriteBatch batch;
    std::vector<std::optional<storage::StoredAttestation>> made((last - first) * builders.size());
    // References: 0..10 earlier paths (5 on average), so they are real paths of the database.
    std::vector<std::vector<consensus::StorePath>> refs(last - first);
    for (int64_t p = first; p < last; ++p) {
      int count = p == 0 ? 0 : static_cast<int>(rng() % 11);
      std::vector<consensus::StorePath> r;
      for (int k = 0; k < count; ++k) r.push_back(BenchPath(rng() % p));
      std::sort(r.begin(), r.end());
      r.erase(std::unique(r.begin(), r.end()), r.end());
      refs[p - first] = std::move(r);
    }
    std::vector<std::thread> signers;
    for (int t = 0; t < 2; ++t) {
      signers.emplace_back([&, t] {
        for (int64_t p = first + t; p < last; p += 2) {
          auto claim = consensus::PathInfo::Create(
              BenchPath(p), consensus::NarHash::FromDigest(consensus::Sha256(absl::StrCat("nar|", p))),
              4096 + p % 100000, refs[p - first]);
          consensus::BuildMetadata meta;
          meta.deriver = BenchPath(p, ".drv").full();
          meta.output_name = "out";
          meta.system = "x86_64-linux";
          meta.build_kind = consensus::BuildKind::kRebuild;
          meta.build_time_unix = 1790000000 + p;
          for (size_t b = 0; b < builders.size(); ++b) {
            made[(p - first) * builders.size() + b] = storage::StoredAttestation{
                consensus::SignAttestation(*claim, builders[b], meta), 1790000000 + p, std::nullopt};
          }
        }
      });
    }
    for (auto& t : signers) t.join();
    for (auto& a : made) batch.attestations.push_back(std::move(*a));
    auto written = store.Write(batch);
    if (!written.ok()) {
      std::fprintf(stderr, "write failed: %s\n", std::string(written.status().message()).c_str());
      std::exit(1);
    }
    done += batch.attestations.size();
    if ((first / kPathsPerBatch) % 100 == 0) {
      std::printf("  %lld attestations (%.0f /s)\n", static_cast<long long>(done), done / SecondsSince(start));
      std::fflush(stdout);
    }
  }
}

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

int Main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    char dir_template[] = "/tmp/attest-status-bench-XXXXXX";
    dir = mkdtemp(dir_template);
  }
  std::filesystem::create_directories(dir);
  const int64_t paths = args.attestations / 3;
  const std::string db = dir + "/attest.db";

  std::vector<consensus::SecretKey> builders;
  std::vector<std::string> publics;
  for (int b = 0; b < 3; ++b) {
    builders.push_back(BenchKey(absl::StrCat("status-builder-", b)));
    publics.push_back(builders.back().public_key().ToString());
  }
  WriteNodeFiles(dir, publics, 2, "attest.db");

  {
    auto store = storage::SqliteAttestationStore::Open(db, {});
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
      return 1;
    }
    auto stats = (*store)->Stats();
    if (stats.ok() && stats->attestations >= paths * 3) {
      std::printf("reusing %s with %lld attestations\n", db.c_str(), static_cast<long long>(stats->attestations));
    } else {
      std::printf("filling %s with %lld attestations (%lld paths x 3 builders)...\n", db.c_str(),
                  static_cast<long long>(paths * 3), static_cast<long long>(paths));
      Fill(**store, builders, paths);
    }
  }
  // Closing the store checkpoints the WAL into the main file; count both in case it did not.
  int64_t attestations = paths * 3;
  int64_t db_bytes = FileSize(db) + FileSize(db + "-wal");

  NodeProcess node(args.attestd, dir);
  long rss_idle = node.ResidentKiB();
  auto stub = attest::v1::Attestations::NewStub(
      grpc::CreateChannel(node.address(), grpc::InsecureChannelCredentials()));
  std::mt19937_64 rng(7);
  std::vector<double> latencies_ms;
  int wrong = 0;
  double cpu_at_start = 0;
  size_t answer_bytes = 0;
  std::string last_answer;  // serialised, to time the client's share of a request below
  for (int r = 0; r < args.requests + 3; ++r) {
    if (r == 3) cpu_at_start = node.CpuSeconds();
    attest::v1::StatusRequest request;
    for (int i = 0; i < args.paths_per_request; ++i) request.add_store_paths(BenchPath(rng() % paths).full());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    attest::v1::StatusResponse response;
    auto start = std::chrono::steady_clock::now();
    grpc::Status status = stub->Status(&context, request, &response);
    double ms = SecondsSince(start) * 1000;
    if (!status.ok()) {
      std::fprintf(stderr, "status failed: %s\n", status.error_message().c_str());
      return 1;
    }
    for (const auto& s : response.statuses()) {
      // A path drawn twice in one request is answered by reference to its first answer (repeat_of).
      const auto& answered = s.has_repeat_of() ? response.statuses(s.repeat_of()) : s;
      if (answered.verdict() != attest::v1::CONFIRMED || answered.attestations_size() != 3) ++wrong;
    }
    if (r >= 3) latencies_ms.push_back(ms);  // the first requests warm the page cache
    answer_bytes = response.ByteSizeLong();
    if (r == args.requests + 2) response.SerializeToString(&last_answer);
  }
  // What the client spends decoding an answer, part of every latency above (same process, same cores).
  std::vector<double> parse_ms;
  for (int i = 0; i < 21; ++i) {
    attest::v1::StatusResponse parsed;
    auto start = std::chrono::steady_clock::now();
    if (!parsed.ParseFromString(last_answer)) return 1;
    parse_ms.push_back(SecondsSince(start) * 1000);
  }
  std::sort(parse_ms.begin(), parse_ms.end());
  const double cpu_ms_per_request = (node.CpuSeconds() - cpu_at_start) * 1000 / args.requests;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  long rss = node.ResidentKiB();
  long peak = node.PeakResidentKiB();

  std::printf("\n");
  std::printf("attestations                     : %lld (%lld paths)\n", static_cast<long long>(attestations),
              static_cast<long long>(paths));
  std::printf("database file incl. indexes      : %.1f MiB = %.1f bytes per attestation (target <= 200)\n",
              db_bytes / 1048576.0, static_cast<double>(db_bytes) / attestations);
  std::printf("status of %d paths, %d requests: median %.2f ms, p90 %.2f ms, max %.2f ms (target median <= 20)\n",
              args.paths_per_request, args.requests, latencies_ms[latencies_ms.size() / 2],
              latencies_ms[latencies_ms.size() * 9 / 10], latencies_ms.back());
  std::printf("attestd CPU per request           : %.1f ms (user + system, over %d requests; 2 cores share it)\n",
              cpu_ms_per_request, args.requests);
  std::printf("answer size                      : %.1f KiB for %d paths; the client decodes it in %.2f ms (median)\n",
              answer_bytes / 1024.0, args.paths_per_request, parse_ms[parse_ms.size() / 2]);
  std::printf("answers not CONFIRMED by 3        : %d (expected 0)\n", wrong);
  std::printf("attestd resident memory          : idle %.1f MiB, after queries %.1f MiB, peak %.1f MiB (target <= 256)\n",
              rss_idle / 1024.0, rss / 1024.0, peak / 1024.0);
  return wrong == 0 ? 0 : 1;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
