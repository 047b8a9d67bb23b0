// Closure verdicts: the latency of attest.v1 Attestations/Closure on a 1,000-path closure.
//
// Fills (or reuses) a SQLite database directly: a closure of --closure-paths store paths (a DAG: path i
// references 1-8 paths after it, every path reachable from path 0, the root; the last paths are leaves)
// attested by two builders of two operators (real signatures, quorum 2), plus --background other paths
// attested the same way (0-10 references among themselves), so the store is not tiny. Then starts a
// real attestd on it and asks the closure of the root over gRPC on loopback: 3 requests warm up, then
// --requests are timed by the client (including its decoding of the answer). Printed: median, p90 and
// max latency, the answer's size, attestd's CPU time per request (from /proc).
//
//   closure_status_bench --attestd build/server/attestd [--closure-paths 1000] [--background 100000]
//                        [--requests 50] [--dir DIR]
//
// --dir keeps the database between runs; it is reused when it holds the same sizes.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
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
  int64_t closure_paths = 1000;
  int64_t background = 100000;
  int requests = 50;
  std::string dir;
};

[[noreturn]] void Usage(const std::string& problem) {
  if (!problem.empty()) std::fprintf(stderr, "closure_status_bench: %s\n", problem.c_str());
  std::fprintf(stderr,
               "usage: closure_status_bench --attestd PATH [--closure-paths N] [--background N] [--requests N]\n"
               "         [--dir DIR]\n");
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const std::string value = argv[i + 1];
    if (flag == "--attestd") args.attestd = value;
    else if (flag == "--closure-paths") args.closure_paths = std::atoll(value.c_str());
    else if (flag == "--background") args.background = std::atoll(value.c_str());
    else if (flag == "--requests") args.requests = std::atoi(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else Usage("unknown flag " + flag);
  }
  if (args.attestd.empty()) Usage("--attestd is required");
  if (args.closure_paths < 1) Usage("--closure-paths must be positive");
  if (args.background < 0) Usage("--background must not be negative");
  if (args.requests < 1) Usage("--requests must be positive");
  return args;
}

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "closure_status_bench: %s\n", message.c_str());
  std::exit(1);
}

consensus::StorePath ClosurePath(int64_t i) { return BenchStorePath("closure-status-bench", i); }
consensus::StorePath BackgroundPath(int64_t i) { return BenchStorePath("closure-status-bench-background", i); }

// The closure's references: path i references 1-8 paths after it. Every path j > 0 first gets one
// referrer among the paths before it (a random one, so the DAG is about 2 e ln(n) levels deep, like a
// real closure, not a chain), then each path is topped up with random later paths to its drawn count.
std::vector<std::vector<int64_t>> ClosureReferences(int64_t n, std::mt19937_64& rng) {
  std::vector<std::vector<int64_t>> refs(n);
  for (int64_t j = 1; j < n; ++j) {
    int64_t referrer = static_cast<int64_t>(rng() % j);
    // Keep to 8 references: a few early paths would collect more (about ln(n / i) each).
    for (int tries = 0; tries < 8 && refs[referrer].size() >= 8; ++tries) referrer = static_cast<int64_t>(rng() % j);
    refs[referrer].push_back(j);
  }
  for (int64_t i = 0; i + 1 < n; ++i) {
    const size_t want = std::min<int64_t>(1 + static_cast<int64_t>(rng() % 8), n - 1 - i);
    for (int tries = 0; refs[i].size() < want && tries < 64; ++tries) {
      const int64_t j = i + 1 + static_cast<int64_t>(rng() % (n - 1 - i));
      if (std::find(refs[i].begin(), refs[i].end(), j) == refs[i].end()) refs[i].push_back(j);
    }
  }
  return refs;
}

// Signs every path with every builder (two threads) and writes them in batches.
void Fill(storage::AttestationStore& store, const std::vector<consensus::SecretKey>& builders,
          const std::vector<consensus::StorePath>& paths, const std::vector<std::vector<consensus::StorePath>>& refs,
          const std::string& what) {
  constexpr size_t kPathsPerBatch = 3000;
  const auto start = std::chrono::steady_clock::now();
  for (size_t first = 0; first < paths.size(); first += kPathsPerBatch) {
    const size_t last = std::min(paths.size(), first + kPathsPerBatch);
    std::vector<std::optional<storage::StoredAttestation>> made((last - first) * builders.size());
    std::vector<std::thread> signers;
    for (size_t t = 0; t < 2; ++t) {
      signers.emplace_back([&, t] {
        for (size_t p = first + t; p < last; p += 2) {
          auto claim = consensus::PathInfo::Create(
              paths[p], consensus::NarHash::FromDigest(consensus::Sha256(absl::StrCat("nar|", paths[p].full()))),
              4096 + p % 100000, refs[p]);
          if (!claim.ok()) Fail(std::string(claim.status().message()));
          consensus::BuildMetadata meta;
          meta.output_name = "out";
          meta.system = "x86_64-linux";
          meta.build_kind = consensus::BuildKind::kRebuild;
          meta.build_time_unix = 1790000000 + static_cast<int64_t>(p);
          for (size_t b = 0; b < builders.size(); ++b) {
            made[(p - first) * builders.size() + b] = storage::StoredAttestation{
                consensus::SignAttestation(*claim, builders[b], meta), 1790000000 + static_cast<int64_t>(p),
                std::nullopt, ""};
          }
        }
      });
    }
    for (auto& t : signers) t.join();
    storage::WriteBatch batch;
    for (auto& a : made) batch.attestations.push_back(std::move(*a));
    auto written = store.Write(batch);
    if (!written.ok()) Fail("write failed: " + std::string(written.status().message()));
  }
  std::printf("  %s: %zu paths x %zu builders in %.1f s\n", what.c_str(), paths.size(), builders.size(),
              SecondsSince(start));
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    char dir_template[] = "/var/tmp/attest-closure-status-bench-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) Fail("cannot make a directory under /var/tmp");
    dir = dir_template;
  }
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/attest.db";

  std::vector<consensus::SecretKey> builders;
  std::vector<std::string> publics;
  for (int b = 0; b < 2; ++b) {
    builders.push_back(BenchKey(absl::StrCat("closure-status-builder-", b)));
    publics.push_back(builders.back().public_key().ToString());
  }
  WriteNodeFiles(dir, publics, 2, "attest.db");

  const int64_t expected = (args.closure_paths + args.background) * 2;
  int64_t edges = 0;
  int64_t levels = 1;
  {
    auto store = storage::SqliteAttestationStore::Open(db, {});
    if (!store.ok()) Fail(std::string(store.status().message()));
    auto stats = (*store)->Stats();
    std::mt19937_64 rng(42);
    const std::vector<std::vector<int64_t>> closure_refs = ClosureReferences(args.closure_paths, rng);
    for (const auto& r : closure_refs) edges += static_cast<int64_t>(r.size());
    // Breadth-first from the root: the walk reads the store once per level.
    std::vector<int64_t> level(args.closure_paths, -1);
    std::vector<int64_t> frontier{0};
    level[0] = 0;
    while (!frontier.empty()) {
      std::vector<int64_t> next;
      for (int64_t i : frontier) {
        for (int64_t j : closure_refs[i]) {
          if (level[j] < 0) {
            level[j] = level[i] + 1;
            next.push_back(j);
          }
        }
      }
      if (!next.empty()) ++levels;
      frontier = std::move(next);
    }
    if (std::count(level.begin(), level.end(), -1) != 0) Fail("a closure path is not reachable from the root");
    if (stats.ok() && stats->attestations == expected) {
      std::printf("reusing %s with %lld attestations\n", db.c_str(), static_cast<long long>(stats->attestations));
    } else {
      if (stats.ok() && stats->attestations != 0) {
        Fail(absl::StrCat(db, " holds ", stats->attestations, " attestations, not the ", expected,
                          " of these sizes; use another --dir"));
      }
      std::printf("filling %s: a %lld-path closure and %lld background paths, 2 builders each...\n", db.c_str(),
                  static_cast<long long>(args.closure_paths), static_cast<long long>(args.background));
      std::vector<consensus::StorePath> paths;
      std::vector<std::vector<consensus::StorePath>> refs;
      for (int64_t i = 0; i < args.closure_paths; ++i) {
        paths.push_back(ClosurePath(i));
        std::vector<consensus::StorePath> r;
        for (int64_t j : closure_refs[i]) r.push_back(ClosurePath(j));
        std::sort(r.begin(), r.end());
        refs.push_back(std::move(r));
      }
      Fill(**store, builders, paths, refs, "closure");
      paths.clear();
      refs.clear();
      for (int64_t i = 0; i < args.background; ++i) {
        paths.push_back(BackgroundPath(i));
        std::vector<consensus::StorePath> r;
        const int count = i == 0 ? 0 : static_cast<int>(rng() % 11);
        for (int k = 0; k < count; ++k) r.push_back(BackgroundPath(static_cast<int64_t>(rng() % i)));
        std::sort(r.begin(), r.end());
        r.erase(std::unique(r.begin(), r.end()), r.end());
        refs.push_back(std::move(r));
      }
      if (!paths.empty()) Fill(**store, builders, paths, refs, "background");
    }
  }

  auto node_process = std::make_unique<NodeProcess>(args.attestd, dir);
  const NodeProcess& node = *node_process;
  auto stub = v1::Attestations::NewStub(grpc::CreateChannel(node.address(), grpc::InsecureChannelCredentials()));
  v1::ClosureRequest request;
  request.set_store_path(ClosurePath(0).full());
  std::vector<double> latencies_ms;
  double cpu_at_start = 0;
  size_t answer_bytes = 0;
  int members = 0, not_confirmed = 0;
  v1::Verdict verdict = v1::VERDICT_UNSPECIFIED;
  for (int r = 0; r < args.requests + 3; ++r) {
    if (r == 3) cpu_at_start = node.CpuSeconds();
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    context.set_wait_for_ready(true);
    v1::ClosureResponse response;
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status status = stub->Closure(&context, request, &response);
    const double ms = SecondsSince(start) * 1000;
    if (!status.ok()) Fail(absl::StrCat("Closure: code ", status.error_code(), ": ", status.error_message()));
    if (r >= 3) latencies_ms.push_back(ms);  // the first requests warm the page cache
    answer_bytes = response.ByteSizeLong();
    members = response.members_size();
    not_confirmed = response.not_confirmed_size();
    verdict = response.verdict();
  }
  const double cpu_ms_per_request = (node.CpuSeconds() - cpu_at_start) * 1000 / args.requests;
  const long rss = node.ResidentKiB();

  std::printf("\n");
  std::printf("database                          : %lld attestations (%lld closure paths, %lld references among "
              "them, %lld levels; %lld background paths)\n",
              static_cast<long long>(expected), static_cast<long long>(args.closure_paths),
              static_cast<long long>(edges), static_cast<long long>(levels), static_cast<long long>(args.background));
  std::printf("closure of the root, %d requests  : median %.2f ms, p90 %.2f ms, max %.2f ms (target median <= 50)\n",
              args.requests, NearestRankPercentile(latencies_ms, 0.5), NearestRankPercentile(latencies_ms, 0.9),
              NearestRankPercentile(latencies_ms, 1.0));
  std::printf("attestd CPU per request           : %.1f ms (user + system, over %d requests; 10 ms ticks)\n",
              cpu_ms_per_request, args.requests);
  std::printf("answer                            : %s, %d members (expected %lld), %d not confirmed, %.1f KiB\n",
              v1::Verdict_Name(verdict).c_str(), members, static_cast<long long>(args.closure_paths), not_confirmed,
              answer_bytes / 1024.0);
  std::printf("attestd resident memory           : %.1f MiB\n", rss / 1024.0);
  const bool right = verdict == v1::CONFIRMED && members == args.closure_paths && not_confirmed == 0;
  node_process.reset();  // stopped before its directory goes
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return right ? 0 : 1;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
