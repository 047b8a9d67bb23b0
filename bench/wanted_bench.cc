// The rebuild queue's cost: `wanted` (top 1,000) on a node with many paths of which many have demand,
// and the cost of counting demand itself.
//
// Builds (or reuses, with --dir) a SQLite store of N paths, each attested by one builder of one
// operator (PENDING under quorum 2 of 3), every tenth also by a second operator (CONFIRMED), each
// attestation naming its deriver; a demand book with D of those paths (random request counts from
// distinct client addresses, spread over two days so that decay orders them); then times
// RebuildQueue::Wanted with limit 1,000 (and with an operator filter) over --runs runs, and
// DemandBook::Record over one million requests (new paths, repeats, rate-limited clients).
//
//   wanted_bench [--paths 1000000] [--demand 100000] [--runs 30] [--limit 1000] [--dir DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/bench_support.h"
#include "consensus/attestation.h"
#include "consensus/policy.h"
#include "consensus/sha256.h"
#include "server/demand_book.h"
#include "server/rebuild_book.h"
#include "server/rebuild_queue.h"
#include "server/policy_book.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::bench {
namespace {

struct Args {
  int64_t paths = 1000000;
  int64_t demand = 100000;
  int runs = 30;
  int limit = 1000;
  std::string dir;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--paths") args.paths = std::atoll(value.c_str());
    else if (flag == "--demand") args.demand = std::atoll(value.c_str());
    else if (flag == "--runs") args.runs = std::atoi(value.c_str());
    else if (flag == "--limit") args.limit = std::atoi(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else {
      std::fprintf(stderr, "unknown flag %s\nusage: wanted_bench [--paths N] [--demand N] [--runs N] [--limit N] "
                           "[--dir DIR]\n", flag.c_str());
      std::exit(2);
    }
  }
  return args;
}

void Die(const absl::Status& status, const char* what) {
  std::fprintf(stderr, "wanted_bench: %s: %s\n", what, std::string(status.message()).c_str());
  std::exit(1);
}

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * static_cast<double>(values.size() - 1))];
}

}  // namespace

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  const std::string dir =
      args.dir.empty() ? (std::filesystem::temp_directory_path() / absl::StrCat("wanted-bench-", getpid())).string()
                       : args.dir;
  std::filesystem::create_directories(dir);
  const std::string database = dir + "/attest.db";
  const bool fresh = !std::filesystem::exists(database);

  std::vector<consensus::SecretKey> builders;
  for (const char* name : {"builder-a", "builder-b", "builder-c"}) builders.push_back(BenchKey(name));
  std::vector<consensus::Operator> operators;
  for (size_t i = 0; i < builders.size(); ++i) {
    operators.push_back(consensus::Operator{.name = "operator-" + std::string(1, static_cast<char>('a' + i)),
                                            .builders = {builders[i].public_key()}});
  }
  absl::StatusOr<consensus::Policy> policy = consensus::Policy::Create(2, operators, {});
  if (!policy.ok()) Die(policy.status(), "policy");

  absl::StatusOr<std::unique_ptr<storage::SqliteAttestationStore>> store =
      storage::SqliteAttestationStore::Open(database, storage::SqliteOptions{});
  if (!store.ok()) Die(store.status(), "opening the store");

  auto path_of = [](int64_t i) { return BenchStorePath("wanted", static_cast<uint64_t>(i)); };
  auto deriver_of = [](int64_t i) { return BenchStorePath("wanted-drv", static_cast<uint64_t>(i), ".drv"); };
  if (fresh) {
    const auto start = std::chrono::steady_clock::now();
    constexpr int64_t kBatch = 10000;
    for (int64_t first = 0; first < args.paths; first += kBatch) {
      storage::WriteBatch batch;
      for (int64_t i = first; i < std::min(args.paths, first + kBatch); ++i) {
        const auto digest = consensus::Sha256(absl::StrCat("nar ", i));
        absl::StatusOr<consensus::PathInfo> claim =
            consensus::PathInfo::Create(path_of(i), consensus::NarHash::FromDigest(digest), 4096, {});
        if (!claim.ok()) Die(claim.status(), "claim");
        consensus::BuildMetadata metadata{.deriver = deriver_of(i).full(),
                                          .output_name = "out",
                                          .system = "x86_64-linux",
                                          .build_kind = consensus::BuildKind::kFirstBuild,
                                          .build_time_unix = 1700000000};
        const size_t first_builder = static_cast<size_t>(i % 3);
        batch.attestations.push_back(storage::StoredAttestation{
            .attestation = consensus::SignAttestation(*claim, builders[first_builder], metadata),
            .received_unix = 1700000000,
            .observed_key = std::nullopt,
            .origin = ""});
        if (i % 10 == 0) {
          batch.attestations.push_back(storage::StoredAttestation{
              .attestation = consensus::SignAttestation(*claim, builders[(first_builder + 1) % 3], metadata),
              .received_unix = 1700000000,
            .observed_key = std::nullopt,
            .origin = ""});
        }
      }
      absl::StatusOr<std::vector<storage::WriteOutcome>> written = (*store)->Write(batch);
      if (!written.ok()) Die(written.status(), "writing attestations");
    }
    std::printf("filled %lld paths in %.1f s\n", static_cast<long long>(args.paths), SecondsSince(start));
  } else {
    std::printf("reusing %s\n", database.c_str());
  }

  // Demand: D random paths, 1..20 requests each from distinct addresses, at times over two days.
  const absl::Time now = absl::FromUnixSeconds(1700000000 + 2 * 86400);
  server::DemandBook demand;
  std::mt19937_64 random(42);
  {
    std::vector<int64_t> chosen(static_cast<size_t>(args.paths));
    for (int64_t i = 0; i < args.paths; ++i) chosen[static_cast<size_t>(i)] = i;
    std::shuffle(chosen.begin(), chosen.end(), random);
    chosen.resize(static_cast<size_t>(std::min(args.demand, args.paths)));
    for (int64_t i : chosen) {
      const int requests = 1 + static_cast<int>(random() % 20);
      const absl::Time when = now - absl::Seconds(static_cast<int64_t>(random() % (2 * 86400)));
      for (int r = 0; r < requests; ++r) demand.Record(path_of(i), absl::StrCat("10.", r, ".0.1"), when);
    }
  }
  std::printf("demand: %zu paths\n", demand.stats().paths);

  server::RebuildBook book;
  const server::PolicyBook policy_book(*policy);
  server::RebuildQueue queue(policy_book, store->get(), store->get(), &demand, &book, nullptr, [now] { return now; });
  for (const std::string& operator_name : {std::string(), std::string("operator-a")}) {
    std::vector<double> millis;
    size_t listed = 0;
    for (int run = 0; run < args.runs; ++run) {
      const auto start = std::chrono::steady_clock::now();
      absl::StatusOr<server::WantedList> list =
          queue.Wanted(server::WantedQuery{.operator_name = operator_name, .limit = args.limit});
      millis.push_back(SecondsSince(start) * 1000);
      if (!list.ok()) Die(list.status(), "wanted");
      listed = list->wanted.size();
    }
    std::printf("wanted top %d%s: %zu listed; median %.1f ms, p90 %.1f ms, max %.1f ms over %d runs\n", args.limit,
                operator_name.empty() ? "" : absl::StrCat(" (--operator ", operator_name, ")").c_str(), listed,
                Percentile(millis, 0.5), Percentile(millis, 0.9), Percentile(millis, 1.0), args.runs);
  }

  // Where a query's time goes: the store reads it makes for 1,000 listed paths.
  {
    std::vector<consensus::StorePath> top;
    demand.ForEachByDemand(now, [&](const server::DemandEntry& entry) {
      top.push_back(entry.path);
      return top.size() < static_cast<size_t>(args.limit);
    });
    std::vector<consensus::StorePath> derivers;
    for (const consensus::StorePath& path : top) derivers.push_back(path);  // stand-ins of the same count
    auto time_ms = [](auto&& call) {
      const auto start = std::chrono::steady_clock::now();
      call();
      return SecondsSince(start) * 1000;
    };
    const double walk = time_ms([&] {
      size_t n = 0;
      demand.ForEachByDemand(now, [&](const server::DemandEntry&) { return ++n < static_cast<size_t>(args.limit); });
    });
    const double attestations = time_ms([&] { (void)(*store)->AttestationsFor(top); });
    const double producing = time_ms([&] { (void)(*store)->DerivationsProducing(top); });
    const double has = time_ms([&] { (void)(*store)->HasDerivations(derivers); });
    std::printf("parts for %zu paths: demand walk %.1f ms, AttestationsFor %.1f ms, DerivationsProducing %.1f ms, "
                "HasDerivations %.1f ms\n", top.size(), walk, attestations, producing, has);
  }

  // Counting: a million requests, a quarter of them for new paths, from 1,000 client addresses.
  {
    server::DemandBook counting;
    const auto start = std::chrono::steady_clock::now();
    constexpr int kRequests = 1000000;
    for (int r = 0; r < kRequests; ++r) {
      const int64_t path = (r % 4 == 0) ? r : static_cast<int64_t>(random() % 10000);
      counting.Record(path_of(path), absl::StrCat("10.1.", r % 1000 / 250, ".", r % 250), now);
    }
    const double seconds = SecondsSince(start);
    const server::DemandStats stats = counting.stats();
    std::printf("Record: %.0f requests/s (%.2f us each); %zu paths, %llu counted, %llu repeats, %llu rate-limited\n",
                kRequests / seconds, seconds * 1e6 / kRequests, stats.paths,
                static_cast<unsigned long long>(stats.counted), static_cast<unsigned long long>(stats.repeats),
                static_cast<unsigned long long>(stats.rate_limited));
  }
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
