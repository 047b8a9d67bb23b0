// Durable ingest over gRPC on loopback, against the 2-thread Ed25519 verify rate measured in the same
// run. The load generator (this process) pre-signs every attestation before the clock starts, then
// keeps several batches in flight; an attestation counts when the node acknowledged it (committed).
//
//   ingest_bench --attestd build/server/attestd [--attestations 300000] [--batch 1000] [--inflight 4]
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_support.h"
#include "bench/ingest_load.h"
#include "consensus/attestation.h"
#include "consensus/sha256.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"

namespace attest::bench {
namespace {

struct Args {
  std::string attestd;
  int attestations = 300000;
  int batch = 1000;
  int inflight = 4;
  double verify_seconds = 3.0;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    std::string value = argv[i + 1];
    if (flag == "--attestd") args.attestd = value;
    else if (flag == "--attestations") args.attestations = std::atoi(value.c_str());
    else if (flag == "--batch") args.batch = std::atoi(value.c_str());
    else if (flag == "--inflight") args.inflight = std::atoi(value.c_str());
    else if (flag == "--verify-seconds") args.verify_seconds = std::atof(value.c_str());
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.attestd.empty()) {
    std::fprintf(stderr, "usage: ingest_bench --attestd PATH [--attestations N] [--batch N] [--inflight N]\n");
    std::exit(2);
  }
  return args;
}

consensus::StorePath BenchPath(uint64_t i) { return BenchStorePath("ingest-bench", i); }

// Verifications per second with two threads, each verifying pre-made signatures in a loop.
double VerifyRate(const consensus::SecretKey& key, double seconds) {
  std::vector<consensus::Attestation> samples;
  for (int i = 0; i < 1000; ++i) {
    auto claim = consensus::PathInfo::Create(BenchPath(i), consensus::NarHash::FromDigest(consensus::Sha256(
                                                               absl::StrCat(i))),
                                             1000 + i, {});
    samples.push_back(consensus::SignAttestation(*claim, key));
  }
  const consensus::PublicKey pub = key.public_key();
  std::atomic<bool> stop{false};
  std::atomic<long> total{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (const auto& a : samples) {
          if (!consensus::VerifyAttestation(a, pub).ok()) std::abort();
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

int Main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  char dir_template[] = "/tmp/attest-ingest-bench-XXXXXX";
  std::string dir = mkdtemp(dir_template);

  const std::vector<consensus::SecretKey> builders = IngestBuilders();
  WriteNodeFiles(dir, PublicKeys(builders), 2, "attest.db");

  std::printf("pre-signing %d attestations (3 builders, 5 references each)...\n", args.attestations);
  const std::vector<attest::v1::SubmitRequest> requests = PresignIngestLoad(args.attestations, args.batch, builders);

  std::printf("measuring the 2-thread Ed25519 verify rate (%.0f s)...\n", args.verify_seconds);
  double verify_before = VerifyRate(builders[0], args.verify_seconds);

  NodeProcess node(args.attestd, dir);
  const SubmitFigures submitted = SubmitAll(node.address(), requests, args.inflight);
  const double elapsed = submitted.seconds;
  const long acknowledged = submitted.acknowledged;
  const long failed = submitted.failed;
  long rss = node.ResidentKiB();
  double verify_after = VerifyRate(builders[0], args.verify_seconds);
  double verify_rate = (verify_before + verify_after) / 2;
  double ingest_rate = acknowledged / elapsed;

  std::printf("\n");
  std::printf("ed25519 verify, 2 threads       : %.0f /s (before %.0f, after %.0f)\n", verify_rate,
              verify_before, verify_after);
  std::printf("acknowledged attestations       : %ld in %.2f s (%ld not accepted)\n", acknowledged,
              elapsed, failed);
  std::printf("durable ingest over gRPC        : %.0f /s (batch %d, %d in flight)\n", ingest_rate, args.batch,
              args.inflight);
  std::printf("ratio ingest / verify           : %.3f (target >= 0.35)\n", ingest_rate / verify_rate);
  std::printf("attestd resident memory         : %.1f MiB\n", rss / 1024.0);
  std::printf("state left in %s\n", dir.c_str());
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
