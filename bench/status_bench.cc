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
//
//   status_bench ... --compare-nested [--rounds 5]
//
// compares, in one run, the flat policy (any 2 of the three operators) with a nested one over the same
// builder keys (operator-0 and a group of operator-1, operator-2 with threshold 1, plus 20 per-package
// rules, two of which match some of the bench's paths): attestd is started on the same database under
// each in turn, `--rounds` times alternately, and every round times `--requests` requests.
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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
  bool compare_nested = false;
  int rounds = 5;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--compare-nested") {
      args.compare_nested = true;
      --i;  // a flag without a value
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      std::exit(2);
    }
    std::string value = argv[i + 1];
    if (flag == "--attestd") args.attestd = value;
    else if (flag == "--attestations") args.attestations = std::atoll(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else if (flag == "--requests") args.requests = std::atoi(value.c_str());
    else if (flag == "--paths-per-request") args.paths_per_request = std::atoi(value.c_str());
    else if (flag == "--rounds") args.rounds = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.attestd.empty()) {
    std::fprintf(stderr,
                 "usage: status_bench --attestd PATH [--attestations N] [--dir DIR] [--requests N]\n"
                 "         [--paths-per-request N] [--compare-nested [--rounds N]]\n");
    std::exit(2);
  }
  if (args.requests < 1 || args.rounds < 1 || args.paths_per_request < 1) {
    std::fprintf(stderr, "--requests, --rounds and --paths-per-request must be positive\n");
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

// What one series of timed requests gave.
struct Timed final {
  std::vector<double> latencies_ms;  // sorted
  double cpu_ms_per_request = 0;
  int wrong = 0;  // answers not CONFIRMED by all 3 builders
  size_t answer_bytes = 0;
  std::string last_answer;  // serialised, to time the client's share of a request
};

// 3 warm-up requests (they warm the page cache), then `requests` timed ones of `paths_per_request`
// random paths each, against the running `node`. Exits on a failed request.
Timed TimeRequests(const NodeProcess& node, const Args& args, int64_t paths, std::mt19937_64& rng) {
  auto stub = attest::v1::Attestations::NewStub(
      grpc::CreateChannel(node.address(), grpc::InsecureChannelCredentials()));
  Timed timed;
  double cpu_at_start = 0;
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
      std::exit(1);
    }
    for (const auto& s : response.statuses()) {
      // A path drawn twice in one request is answered by reference to its first answer (repeat_of).
      const auto& answered = s.has_repeat_of() ? response.statuses(s.repeat_of()) : s;
      if (answered.verdict() != attest::v1::CONFIRMED || answered.attestations_size() != 3) ++timed.wrong;
    }
    if (r >= 3) timed.latencies_ms.push_back(ms);
    timed.answer_bytes = response.ByteSizeLong();
    if (r == args.requests + 2) response.SerializeToString(&timed.last_answer);
  }
  timed.cpu_ms_per_request = (node.CpuSeconds() - cpu_at_start) * 1000 / args.requests;
  std::sort(timed.latencies_ms.begin(), timed.latencies_ms.end());
  return timed;
}

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

// The nested policy over the same builder keys as WriteNodeFiles' flat one (operator-<i> signs with
// status-builder-<i>): operator-0 and at least one of operator-1, operator-2; 20 per-package rules, of
// which "package-12*" (about one path in ten here) and "package-*7" (one in ten) match the bench's
// path names ("package-<index>") and need all three operators (every path has all three, so verdicts
// do not change), and 18 name packages the bench does not have, as a real policy's rules mostly do.
std::string NestedPolicyToml(const std::vector<std::string>& builder_public_keys) {
  std::string text =
      "[quorum]\nthreshold = 2\nmembers = [\"operator-0\", \"independent\"]\n\n"
      "[[group]]\nname = \"independent\"\nthreshold = 1\nmembers = [\"operator-1\", \"operator-2\"]\n";
  const char* unmatched[] = {"openssl-*", "linux-*",  "glibc-*",   "gcc-*",   "python3-*",  "firefox-*",
                             "chromium-*", "rustc-*", "go-1.*",    "nodejs-*", "systemd-*", "curl-*",
                             "openssh-*", "gnupg-*",  "sudo-*",    "bash-5.?", "coreutils-*", "perl-*"};
  for (size_t i = 0; i < std::size(unmatched); ++i) {
    // Alternate the two quorum forms, as a real policy would mix them.
    absl::StrAppend(&text, "\n[[rule]]\nnames = [\"", unmatched[i], "\"]\n",
                    i % 2 == 0 ? "quorum = 3\n"
                               : "quorum = {threshold = 2, members = [\"operator-0\", \"independent\"]}\n");
  }
  absl::StrAppend(&text, "\n[[rule]]\nnames = [\"package-12*\"]\nquorum = 3\n");
  absl::StrAppend(&text,
                  "\n[[rule]]\nnames = [\"package-*7\"]\n"
                  "quorum = {threshold = 3, members = [\"operator-0\", \"operator-1\", \"operator-2\"]}\n");
  for (size_t i = 0; i < builder_public_keys.size(); ++i) {
    absl::StrAppend(&text, "\n[[operator]]\nname = \"operator-", i, "\"\nbuilders = [\"", builder_public_keys[i],
                    "\"]\n");
  }
  return text;
}

// --compare-nested: attestd on the same database under the flat and the nested policy, alternately
// (the machine's load drifts within minutes, so each round runs both, the first one alternating).
int CompareNested(const Args& args, const std::string& dir, const std::string& db,
                  const std::vector<std::string>& publics, int64_t paths) {
  const std::string flat_dir = dir + "/flat";
  const std::string nested_dir = dir + "/nested";
  std::filesystem::create_directories(flat_dir);
  std::filesystem::create_directories(nested_dir);
  WriteNodeFiles(flat_dir, publics, 2, db);
  WriteNodeFiles(nested_dir, publics, 2, db);
  {
    std::ofstream policy(nested_dir + "/policy.toml", std::ios::trunc);
    policy << NestedPolicyToml(publics);
    if (!policy.flush()) {
      std::fprintf(stderr, "cannot write %s/policy.toml\n", nested_dir.c_str());
      return 1;
    }
  }
  std::printf("comparing flat and nested policies: %d rounds of %d requests each, %d paths per request\n",
              args.rounds, args.requests, args.paths_per_request);
  std::vector<double> latency[2], cpu[2];
  int wrong[2] = {0, 0};
  std::string policy_seen[2];
  std::mt19937_64 rng(7);
  for (int round = 0; round < args.rounds; ++round) {
    for (int k = 0; k < 2; ++k) {
      const int which = (round + k) % 2;  // 0 flat, 1 nested
      NodeProcess node(args.attestd, which == 0 ? flat_dir : nested_dir);
      if (policy_seen[which].empty()) {
        // The node must decide under the policy of its file (the store's chain restarts from an
        // unrelated file), and the rules must be the ones this bench wrote.
        auto stub = attest::v1::Policy::NewStub(grpc::CreateChannel(node.address(), grpc::InsecureChannelCredentials()));
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        attest::v1::PolicyInfo info;
        grpc::Status status = stub->GetPolicy(&context, {}, &info);
        if (!status.ok()) {
          std::fprintf(stderr, "GetPolicy failed: %s\n", status.error_message().c_str());
          return 1;
        }
        policy_seen[which] = info.hash();
        int rules = 0;
        for (size_t at = 0; (at = info.canonical_text().find("\nrule ", at)) != std::string::npos; ++at) ++rules;
        std::printf("  %s policy %s, quorum %s, %d rules\n", which == 0 ? "flat  " : "nested", info.hash().c_str(),
                    info.quorum() == 0 ? "table" : std::to_string(info.quorum()).c_str(), rules);
      }
      Timed timed = TimeRequests(node, args, paths, rng);
      latency[which].insert(latency[which].end(), timed.latencies_ms.begin(), timed.latencies_ms.end());
      cpu[which].push_back(timed.cpu_ms_per_request);
      wrong[which] += timed.wrong;
      std::printf("  round %d %s: median %.2f ms, CPU %.1f ms per request\n", round + 1,
                  which == 0 ? "flat  " : "nested", timed.latencies_ms[timed.latencies_ms.size() / 2],
                  timed.cpu_ms_per_request);
      std::fflush(stdout);
    }
  }
  auto at = [](std::vector<double> v, double fraction) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(fraction * static_cast<double>(v.size())))];
  };
  const double flat_median = at(latency[0], 0.5), nested_median = at(latency[1], 0.5);
  const double flat_p90 = at(latency[0], 0.9), nested_p90 = at(latency[1], 0.9);
  const double flat_cpu = at(cpu[0], 0.5), nested_cpu = at(cpu[1], 0.5);
  std::printf("\n");
  std::printf("status of %d paths, %d rounds x %d requests each:\n", args.paths_per_request, args.rounds,
              args.requests);
  std::printf("  flat   (any 2 of 3)                 : median %.2f ms, p90 %.2f ms, CPU %.1f ms per request\n",
              flat_median, flat_p90, flat_cpu);
  std::printf("  nested (2 of op-0 + group, 20 rules) : median %.2f ms, p90 %.2f ms, CPU %.1f ms per request\n",
              nested_median, nested_p90, nested_cpu);
  std::printf("  nested / flat                        : median %.2f, p90 %.2f, CPU %.2f (target median <= 1.20)\n",
              nested_median / flat_median, nested_p90 / flat_p90, nested_cpu / flat_cpu);
  std::printf("answers not CONFIRMED by 3           : flat %d, nested %d (expected 0)\n", wrong[0], wrong[1]);
  return wrong[0] == 0 && wrong[1] == 0 ? 0 : 1;
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
  if (args.compare_nested) return CompareNested(args, dir, std::filesystem::absolute(db).string(), publics, paths);

  NodeProcess node(args.attestd, dir);
  long rss_idle = node.ResidentKiB();
  std::mt19937_64 rng(7);
  Timed timed = TimeRequests(node, args, paths, rng);
  std::vector<double>& latencies_ms = timed.latencies_ms;
  const int wrong = timed.wrong;
  const size_t answer_bytes = timed.answer_bytes;
  const std::string& last_answer = timed.last_answer;
  // What the client spends decoding an answer, part of every latency above (same process, same cores).
  std::vector<double> parse_ms;
  for (int i = 0; i < 21; ++i) {
    attest::v1::StatusResponse parsed;
    auto start = std::chrono::steady_clock::now();
    if (!parsed.ParseFromString(last_answer)) return 1;
    parse_ms.push_back(SecondsSince(start) * 1000);
  }
  std::sort(parse_ms.begin(), parse_ms.end());
  const double cpu_ms_per_request = timed.cpu_ms_per_request;
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
