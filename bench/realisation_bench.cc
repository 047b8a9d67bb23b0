// Realisations (content-addressed derivation outputs) against store paths, side by side in one run.
//
// Ingest: the 2-thread Ed25519 verify rate over realisation fingerprints, then N pre-signed realisation
// attestations (Nix 2.8 format, one dependent realisation each, three builders of three operators,
// three per key) submitted over gRPC to a fresh attestd, then the same number of ingest_bench's path
// attestations to another fresh attestd. Target: realisation ingest >= 0.5 of the verify rate.
//
// Status: one database holding M path attestations (M/3 paths x 3 builders) and M realisation
// attestations (M/3 keys x 3 builders), written directly into the store; attestd is started on it and
// asked the status of 1,000 random paths and of 1,000 random realisation keys per request, the two
// kinds alternating request by request. Target: realisation median within 20% of the path median.
//
//   realisation_bench --attestd build/server/attestd [--ingest 300000] [--status-attestations 1000000]
//                     [--requests 200] [--dir DIR] [--skip-ingest] [--skip-status]
//
// --dir keeps the status database between runs (reused when it holds enough of both).
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
#include "bench/ingest_load.h"
#include "consensus/attestation.h"
#include "consensus/encoding.h"
#include "consensus/realisation.h"
#include "consensus/sha256.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::bench {
namespace {

struct Args {
  std::string attestd;
  int64_t ingest = 300000;
  int64_t status_attestations = 1000000;
  int requests = 200;
  int keys_per_request = 1000;
  int batch = 1000;
  int inflight = 4;
  double verify_seconds = 3.0;
  std::string dir;
  bool skip_ingest = false;
  bool skip_status = false;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--skip-ingest") {
      args.skip_ingest = true;
      continue;
    }
    if (flag == "--skip-status") {
      args.skip_status = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", flag.c_str());
      std::exit(2);
    }
    const std::string value = argv[++i];
    if (flag == "--attestd") args.attestd = value;
    else if (flag == "--ingest") args.ingest = std::atoll(value.c_str());
    else if (flag == "--status-attestations") args.status_attestations = std::atoll(value.c_str());
    else if (flag == "--requests") args.requests = std::atoi(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.attestd.empty() || args.ingest < 3 || args.status_attestations < 3 || args.requests < 1) {
    std::fprintf(stderr,
                 "usage: realisation_bench --attestd PATH [--ingest N] [--status-attestations N] [--requests N]\n"
                 "                         [--dir DIR] [--skip-ingest] [--skip-status]\n");
    std::exit(2);
  }
  return args;
}

// Key `k` of the load: a 2.8-format key over a made-up derivation hash.
consensus::RealisationKey LoadKey(const std::string& tag, uint64_t k) {
  const auto digest = consensus::Sha256(absl::StrCat(tag, "|drv|", k));
  return *consensus::RealisationKey::FromDrvHash(consensus::HexEncode(digest), "out");
}

// Realisation attestation `i` of the load: key i / 3, builder i % 3, one dependent realisation.
consensus::RealisationAttestation LoadRealisation(const std::string& tag, int64_t i,
                                                  const std::vector<consensus::SecretKey>& builders) {
  const uint64_t k = static_cast<uint64_t>(i) / 3;
  const uint64_t dependency = k + 10000000;
  auto claim = consensus::Realisation::Create(
      LoadKey(tag, k), BenchStorePath(tag, k),
      {{LoadKey(tag, dependency).ToString(), BenchStorePath(tag, dependency)}});
  if (!claim.ok()) {
    std::fprintf(stderr, "realisation %lld: %s\n", static_cast<long long>(i), std::string(claim.status().message()).c_str());
    std::exit(1);
  }
  consensus::BuildMetadata meta;
  meta.output_name = "out";
  meta.system = "x86_64-linux";
  meta.build_kind = consensus::BuildKind::kRebuild;
  return consensus::SignRealisation(*claim, builders[i % 3], meta);
}

// Calls make(b) for b in [0, count), on two threads.
template <typename Make>
void OnTwoThreads(int64_t count, Make make) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t b = t; b < count; b += 2) make(b);
    });
  }
  for (auto& t : threads) t.join();
}

// Verifications per second of realisation signatures with two threads.
double VerifyRate(const std::vector<consensus::SecretKey>& builders, double seconds) {
  std::vector<consensus::RealisationAttestation> samples;
  for (int i = 0; i < 999; ++i) samples.push_back(LoadRealisation("verify", i, builders));
  std::vector<consensus::PublicKey> keys;
  for (const auto& b : builders) keys.push_back(b.public_key());
  std::atomic<bool> stop{false};
  std::atomic<long> total{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (size_t i = 0; i < samples.size(); ++i) {
          if (!consensus::VerifyRealisation(samples[i], keys[i % 3]).ok()) std::abort();
          ++n;
        }
      }
      total += n;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  return total.load() / SecondsSince(start);
}

// Submits every request (realisations) to the node, `inflight` at a time; counts ACCEPTED results.
SubmitFigures SubmitRealisations(const std::string& address, const std::vector<v1::SubmitRequest>& requests,
                                 int inflight) {
  std::atomic<size_t> next{0};
  std::atomic<int64_t> accepted{0}, failed{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> senders;
  for (int s = 0; s < inflight; ++s) {
    senders.emplace_back([&] {
      auto stub = v1::Attestations::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      for (size_t r; (r = next.fetch_add(1)) < requests.size();) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        v1::SubmitResponse response;
        const grpc::Status status = stub->Submit(&context, requests[r], &response);
        if (!status.ok()) {
          std::fprintf(stderr, "submit failed: %s\n", status.error_message().c_str());
          failed += requests[r].realisations_size();
          continue;
        }
        for (const auto& result : response.results()) {
          if (result.outcome() == v1::SubmitResult::ACCEPTED) {
            ++accepted;
          } else {
            if (failed.fetch_add(1) == 0) std::fprintf(stderr, "not accepted: %s\n", result.message().c_str());
          }
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  SubmitFigures figures;
  figures.acknowledged = accepted.load();
  figures.failed = failed.load();
  figures.seconds = SecondsSince(start);
  return figures;
}

int Ingest(const Args& args, const std::vector<consensus::SecretKey>& builders) {
  std::printf("pre-signing %lld realisation attestations and %lld path attestations...\n",
              static_cast<long long>(args.ingest), static_cast<long long>(args.ingest));
  std::vector<v1::SubmitRequest> realisations((args.ingest + args.batch - 1) / args.batch);
  OnTwoThreads(static_cast<int64_t>(realisations.size()), [&](int64_t b) {
    for (int64_t i = b * args.batch; i < std::min(args.ingest, (b + 1) * args.batch); ++i) {
      *realisations[b].add_realisations() = proto::ToProto(LoadRealisation("ingest", i, builders));
    }
  });
  const std::vector<consensus::SecretKey> path_builders = IngestBuilders();
  const std::vector<v1::SubmitRequest> paths = PresignIngestLoad(args.ingest, args.batch, path_builders);

  std::printf("measuring the 2-thread Ed25519 verify rate over realisation fingerprints (%.0f s)...\n",
              args.verify_seconds);
  const double verify_before = VerifyRate(builders, args.verify_seconds);

  char realisation_template[] = "/tmp/attest-realisation-bench-ingest-XXXXXX";
  const std::string realisation_dir = mkdtemp(realisation_template);
  std::vector<std::string> publics;
  for (const auto& b : builders) publics.push_back(b.public_key().ToString());
  WriteNodeFiles(realisation_dir, publics, 2, "attest.db");
  SubmitFigures realised;
  {
    NodeProcess node(args.attestd, realisation_dir);
    realised = SubmitRealisations(node.address(), realisations, args.inflight);
  }
  char path_template[] = "/tmp/attest-realisation-bench-paths-XXXXXX";
  const std::string path_dir = mkdtemp(path_template);
  WriteNodeFiles(path_dir, PublicKeys(path_builders), 2, "attest.db");
  SubmitFigures pathed;
  {
    NodeProcess node(args.attestd, path_dir);
    pathed = SubmitAll(node.address(), paths, args.inflight);
  }
  const double verify_after = VerifyRate(builders, args.verify_seconds);
  const double verify = (verify_before + verify_after) / 2;

  std::printf("\n");
  std::printf("ed25519 verify, 2 threads         : %.0f /s (before %.0f, after %.0f)\n", verify, verify_before,
              verify_after);
  std::printf("realisation ingest over gRPC      : %.0f /s (%lld acknowledged in %.2f s, %lld not accepted)\n",
              realised.PerSecond(), static_cast<long long>(realised.acknowledged), realised.seconds,
              static_cast<long long>(realised.failed));
  std::printf("path ingest over gRPC (same run)  : %.0f /s (%lld acknowledged in %.2f s, %lld not accepted)\n",
              pathed.PerSecond(), static_cast<long long>(pathed.acknowledged), pathed.seconds,
              static_cast<long long>(pathed.failed));
  std::printf("ratio realisation ingest / verify : %.3f (target >= 0.5)\n", realised.PerSecond() / verify);
  std::printf("ratio path ingest / verify        : %.3f\n", pathed.PerSecond() / verify);
  std::printf("ratio realisations / paths        : %.3f\n", realised.PerSecond() / pathed.PerSecond());
  std::filesystem::remove_all(realisation_dir);
  std::filesystem::remove_all(path_dir);
  return realised.failed == 0 && pathed.failed == 0 ? 0 : 1;
}

// Fills the store with `count` of each kind (count / 3 subjects x 3 builders), in batches.
void Fill(storage::AttestationStore& store, const std::vector<consensus::SecretKey>& builders, int64_t count) {
  constexpr int64_t kPerBatch = 9000;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < count; first += kPerBatch) {
    const int64_t last = std::min(count, first + kPerBatch);
    std::vector<std::optional<storage::StoredAttestation>> paths(last - first);
    std::vector<std::optional<storage::StoredRealisation>> realisations(last - first);
    OnTwoThreads(last - first, [&](int64_t j) {
      const int64_t i = first + j;
      const uint64_t p = static_cast<uint64_t>(i) / 3;
      auto claim = consensus::PathInfo::Create(
          BenchStorePath("status", p), consensus::NarHash::FromDigest(consensus::Sha256(absl::StrCat("nar|", p))),
          4096 + p % 100000, {BenchStorePath("status", p + 10000000)});
      consensus::BuildMetadata meta;
      meta.output_name = "out";
      meta.system = "x86_64-linux";
      meta.build_kind = consensus::BuildKind::kRebuild;
      paths[j] = storage::StoredAttestation{consensus::SignAttestation(*claim, builders[i % 3], meta), 1790000000 + i,
                                            std::nullopt, ""};
      realisations[j] = storage::StoredRealisation{LoadRealisation("status", i, builders), 1790000000 + i,
                                                   std::nullopt, ""};
    });
    storage::WriteBatch batch;
    for (auto& a : paths) batch.attestations.push_back(std::move(*a));
    for (auto& r : realisations) batch.realisations.push_back(std::move(*r));
    auto written = store.Write(batch);
    if (!written.ok()) {
      std::fprintf(stderr, "write failed: %s\n", std::string(written.status().message()).c_str());
      std::exit(1);
    }
    if ((first / kPerBatch) % 20 == 0) {
      std::printf("  %lld of each (%.0f /s)\n", static_cast<long long>(last), last / SecondsSince(start));
      std::fflush(stdout);
    }
  }
}

int Status(const Args& args, const std::vector<consensus::SecretKey>& builders) {
  std::string dir = args.dir;
  if (dir.empty()) {
    char dir_template[] = "/var/tmp/attest-realisation-bench-status-XXXXXX";
    dir = mkdtemp(dir_template);
  }
  std::filesystem::create_directories(dir);
  const int64_t subjects = args.status_attestations / 3;
  const std::string db = dir + "/attest.db";
  std::vector<std::string> publics;
  for (const auto& b : builders) publics.push_back(b.public_key().ToString());
  WriteNodeFiles(dir, publics, 2, "attest.db");
  {
    auto store = storage::SqliteAttestationStore::Open(db, {});
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", std::string(store.status().message()).c_str());
      return 1;
    }
    auto stats = (*store)->Stats();
    if (stats.ok() && stats->attestations >= subjects * 3 && stats->realisations >= subjects * 3) {
      std::printf("reusing %s: %lld path and %lld realisation attestations\n", db.c_str(),
                  static_cast<long long>(stats->attestations), static_cast<long long>(stats->realisations));
    } else {
      std::printf("filling %s with %lld path and %lld realisation attestations...\n", db.c_str(),
                  static_cast<long long>(subjects * 3), static_cast<long long>(subjects * 3));
      Fill(**store, builders, subjects * 3);
    }
  }

  NodeProcess node(args.attestd, dir);
  auto stub = v1::Attestations::NewStub(grpc::CreateChannel(node.address(), grpc::InsecureChannelCredentials()));
  std::mt19937_64 rng(7);
  std::vector<double> latency[2];
  double cpu[2] = {0, 0};
  int wrong[2] = {0, 0};
  size_t bytes[2] = {0, 0};
  const int warmup = 4;
  for (int r = 0; r < 2 * (args.requests + warmup); ++r) {
    const int kind = r % 2;  // 0 paths, 1 realisations; alternating so both see the same machine
    v1::StatusRequest request;
    for (int i = 0; i < args.keys_per_request; ++i) {
      const uint64_t s = rng() % static_cast<uint64_t>(subjects);
      request.add_store_paths(kind == 0 ? BenchStorePath("status", s).full() : LoadKey("status", s).ToString());
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::StatusResponse response;
    const double cpu_before = node.CpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status status = stub->Status(&context, request, &response);
    const double ms = SecondsSince(start) * 1000;
    const double cpu_ms = (node.CpuSeconds() - cpu_before) * 1000;
    if (!status.ok()) {
      std::fprintf(stderr, "status failed: %s\n", status.error_message().c_str());
      return 1;
    }
    if (r < 2 * warmup) continue;
    latency[kind].push_back(ms);
    cpu[kind] += cpu_ms;
    bytes[kind] = response.ByteSizeLong();
    for (const auto& s : response.statuses()) {
      const auto& answered = s.has_repeat_of() ? response.statuses(s.repeat_of()) : s;
      if (answered.verdict() != v1::CONFIRMED || answered.attestations_size() != 3) ++wrong[kind];
    }
  }
  const double path_median = NearestRankPercentile(latency[0], 0.5);
  const double realisation_median = NearestRankPercentile(latency[1], 0.5);
  std::printf("\n");
  std::printf("database: %lld path and %lld realisation attestations\n", static_cast<long long>(subjects * 3),
              static_cast<long long>(subjects * 3));
  for (int kind = 0; kind < 2; ++kind) {
    std::printf("status of %d %-12s: median %.2f ms, p90 %.2f ms, CPU %.1f ms per request, answer %.0f KiB\n",
                args.keys_per_request, kind == 0 ? "paths" : "realisations", NearestRankPercentile(latency[kind], 0.5),
                NearestRankPercentile(latency[kind], 0.9), cpu[kind] / args.requests, bytes[kind] / 1024.0);
  }
  std::printf("realisations / paths: median %.2f, CPU %.2f (target median <= 1.20)\n",
              realisation_median / path_median, cpu[1] / cpu[0]);
  std::printf("answers not CONFIRMED by 3: paths %d, realisations %d (expected 0)\n", wrong[0], wrong[1]);
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return wrong[0] == 0 && wrong[1] == 0 ? 0 : 1;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::vector<consensus::SecretKey> builders;
  for (int b = 0; b < 3; ++b) builders.push_back(BenchKey(absl::StrCat("realisation-builder-", b)));
  int rc = 0;
  if (!args.skip_ingest) rc |= Ingest(args, builders);
  if (!args.skip_status) rc |= Status(args, builders);
  return rc;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
