// The node's transparency log: what it costs to keep, sign and serve.
//
// Fills two SQLite stores side by side with the same attestations, one appending them to the log and
// one not (as replicated entries are stored), then prints:
//   - write throughput with and without the log, and their ratio (the log's cost on ingest);
//   - storage bytes per log entry of the log's own tables (entries, tiles, checkpoints), from
//     SQLite's dbstat, and the whole file per attestation;
//   - checkpoint signing: recompute the root from stored tiles, compare, sign (per second);
//   - proof serving: inclusion proofs with the entry, consistency proofs, full entry bundles (per
//     second), all computed from the store as attestd serves them.
//
//   log_bench [--entries 1000000] [--dir DIR]
//
// Signatures are random bytes: the store does not verify them (ingest does, before writing), so
// real signatures would only make the fill slower.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_support.h"
#include "consensus/checkpoint.h"
#include "consensus/merkle.h"
#include "consensus/sha256.h"
#include "consensus/tlog_tiles.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::bench {
namespace {

struct Args {
  int64_t entries = 1000000;
  std::string dir;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--entries" && i + 1 < argc) {
      args.entries = std::atoll(argv[++i]);
    } else if (arg == "--dir" && i + 1 < argc) {
      args.dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: log_bench [--entries N] [--dir DIR]\n");
      std::exit(2);
    }
  }
  if (args.entries < 1000) {
    std::fprintf(stderr, "log_bench: --entries must be at least 1000\n");
    std::exit(2);
  }
  return args;
}

void Check(const absl::Status& status, const char* what) {
  if (!status.ok()) {
    std::fprintf(stderr, "log_bench: %s: %s\n", what, std::string(status.message()).c_str());
    std::exit(1);
  }
}

std::unique_ptr<storage::SqliteAttestationStore> OpenStore(const std::string& file) {
  auto store = storage::SqliteAttestationStore::Open(file, {});
  Check(store.status(), "opening the store");
  return std::move(*store);
}

// Attestations of paths [first, last): one builder each, 0-10 references, full metadata.
storage::WriteBatch MakeBatch(int64_t first, int64_t last, std::mt19937_64& rng) {
  storage::WriteBatch batch;
  for (int64_t p = first; p < last; ++p) {
    std::vector<consensus::StorePath> refs;
    const int count = p == 0 ? 0 : static_cast<int>(rng() % 11);
    for (int k = 0; k < count; ++k) refs.push_back(BenchStorePath("log-bench", rng() % p));
    std::sort(refs.begin(), refs.end());
    refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
    auto claim = consensus::PathInfo::Create(
        BenchStorePath("log-bench", p), consensus::NarHash::FromDigest(consensus::Sha256(absl::StrCat("nar|", p))),
        4096 + p % 100000, std::move(refs));
    consensus::Signature signature{.key_name = absl::StrCat("builder-", p % 3)};
    for (auto& b : signature.bytes) b = static_cast<uint8_t>(rng());
    consensus::BuildMetadata meta{.deriver = BenchStorePath("log-bench", p, ".drv").full(),
                                  .output_name = "out",
                                  .system = "x86_64-linux",
                                  .build_kind = consensus::BuildKind::kRebuild,
                                  .build_time_unix = 1790000000 + p};
    batch.attestations.push_back(storage::StoredAttestation{
        .attestation = {.claim = std::move(*claim), .signature = signature, .metadata = std::move(meta)},
        .received_unix = 1790000000 + p,
        .observed_key = std::nullopt,
        .origin = {}});
  }
  return batch;
}

// Bytes of the pages of the given tables and their indexes (dbstat).
int64_t TableBytes(const std::string& file, const std::string& like) {
  auto db = storage::sqlite::Connection::Open(file, storage::sqlite::OpenMode::kReadOnly, absl::Seconds(5));
  Check(db.status(), "opening the database for dbstat");
  auto bytes = (*db)->QueryInt(absl::StrCat("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE '", like, "'"),
                               "reading dbstat");
  Check(bytes.status(), "reading dbstat");
  return *bytes;
}

template <typename Fn>
double PerSecond(int iterations, Fn fn) {
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) fn(i);
  return iterations / SecondsSince(start);
}

int Main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    char dir_template[] = "/tmp/attest-log-bench-XXXXXX";
    dir = mkdtemp(dir_template);
  }
  std::filesystem::create_directories(dir);
  const std::string logged_file = dir + "/logged.db";
  const std::string plain_file = dir + "/plain.db";
  std::filesystem::remove(logged_file);
  std::filesystem::remove(plain_file);
  auto logged = OpenStore(logged_file);
  auto plain = OpenStore(plain_file);

  // Fill both, batch by batch, alternating which goes first; time each side's Write only.
  constexpr int64_t kBatch = 1000;
  std::mt19937_64 rng(7);
  double logged_seconds = 0, plain_seconds = 0;
  std::printf("filling %lld attestations into two stores (with and without the log)...\n",
              static_cast<long long>(args.entries));
  for (int64_t first = 0; first < args.entries; first += kBatch) {
    storage::WriteBatch batch = MakeBatch(first, std::min(args.entries, first + kBatch), rng);
    for (int side = 0; side < 2; ++side) {
      const bool log = (side == 0) == ((first / kBatch) % 2 == 0);
      batch.log_append = log ? storage::LogAppend::kAll : storage::LogAppend::kNone;
      auto start = std::chrono::steady_clock::now();
      Check((log ? logged : plain)->Write(batch).status(), "writing");
      (log ? logged_seconds : plain_seconds) += SecondsSince(start);
    }
  }
  auto head = logged->GetLogHead();
  Check(head.status(), "reading the log head");
  const uint64_t size = head->size;

  // Checkpoint signing as the publisher does it: root from stored tiles, compared, then signed.
  const consensus::SecretKey node_key = BenchKey("log-bench-node");
  consensus::TileHashReader reader(size, [&](std::span<const consensus::TileId> tiles) {
    return logged->LogTiles(tiles);
  });
  const double signs = PerSecond(200, [&](int) {
    auto root = consensus::TreeHash(size, reader);
    Check(root.status(), "recomputing the root");
    if (*root != head->root) Check(absl::DataLossError("root mismatch"), "recomputing the root");
    auto note = consensus::SignCheckpoint({.origin = node_key.name(), .size = size, .root = *root}, node_key);
    Check(note.status(), "signing");
  });
  auto note = consensus::SignCheckpoint({.origin = node_key.name(), .size = size, .root = head->root}, node_key);
  Check(logged->StoreCheckpoint({.size = size, .root = head->root, .note = note->Serialize(), .signed_unix = 1}),
        "storing the checkpoint");

  // Proof serving.
  std::mt19937_64 pick(11);
  const double inclusions = PerSecond(5000, [&](int) {
    const uint64_t index = pick() % size;
    auto proof = consensus::InclusionProof(index, size, reader);
    Check(proof.status(), "inclusion proof");
    auto entry = logged->LogEntries(index, 1);
    Check(entry.status(), "reading an entry");
  });
  const double consistencies = PerSecond(5000, [&](int) {
    const uint64_t old_size = 1 + pick() % (size - 1);
    auto proof = consensus::ConsistencyProof(old_size, size, reader);
    Check(proof.status(), "consistency proof");
  });
  const uint64_t bundles = size / consensus::kFullTileWidth;
  const double bundle_rate = PerSecond(300, [&](int) {
    const uint64_t tile = pick() % bundles;
    auto entries = logged->LogEntries(tile * consensus::kFullTileWidth, consensus::kFullTileWidth);
    Check(entries.status(), "reading a bundle's entries");
    auto bundle = consensus::EncodeEntryBundle(*entries);
    Check(bundle.status(), "encoding a bundle");
  });
  logged.reset();
  plain.reset();  // checkpoint the WALs into the files

  const double n = static_cast<double>(args.entries);
  const int64_t log_bytes = TableBytes(logged_file, "log\\_%' ESCAPE '\\");
  const int64_t logged_file_bytes = static_cast<int64_t>(std::filesystem::file_size(logged_file));
  const int64_t plain_file_bytes = static_cast<int64_t>(std::filesystem::file_size(plain_file));
  std::printf("\n");
  std::printf("log entries                      : %llu\n", static_cast<unsigned long long>(size));
  std::printf("write with the log               : %.0f attestations/s\n", n / logged_seconds);
  std::printf("write without the log            : %.0f attestations/s (ratio with/without %.2f)\n",
              n / plain_seconds, plain_seconds / logged_seconds);
  std::printf("log tables (entries, tiles, cps) : %.1f bytes per entry\n", log_bytes / n);
  std::printf("database file per attestation    : %.1f bytes with the log, %.1f without\n",
              logged_file_bytes / n, plain_file_bytes / n);
  std::printf("checkpoint: recompute root + sign: %.0f /s\n", signs);
  std::printf("inclusion proof + entry          : %.0f /s\n", inclusions);
  std::printf("consistency proof                : %.0f /s\n", consistencies);
  std::printf("full entry bundle (256 entries)  : %.0f /s (%.0f entries/s)\n", bundle_rate,
              bundle_rate * consensus::kFullTileWidth);
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
