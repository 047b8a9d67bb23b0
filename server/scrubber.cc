#include "server/scrubber.h"

#include <algorithm>
#include <optional>
#include <span>
#include <utility>

#include "consensus/merkle.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "server/log.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// Path rows per CheckPathRecords call: one read snapshot each, short enough not to hold back the WAL.
constexpr int kRowsPerChunk = 1000;
// At most this many problems are written to the node's log per pass (all are in the report).
constexpr size_t kLoggedProblems = 20;

consensus::MerkleHash HashAt(const std::string& tile, size_t i) {
  consensus::MerkleHash hash{};
  std::copy_n(reinterpret_cast<const uint8_t*>(tile.data()) + i * consensus::kTileHashBytes, hash.size(),
              hash.begin());
  return hash;
}

// The root of a full tile's 256 hashes (a perfect tree of subtrees of equal height).
consensus::MerkleHash RootOfFullTile(const std::string& tile) {
  std::vector<consensus::MerkleHash> level;
  level.reserve(consensus::kFullTileWidth);
  for (size_t i = 0; i < consensus::kFullTileWidth; ++i) level.push_back(HashAt(tile, i));
  while (level.size() > 1) {
    for (size_t i = 0; i < level.size() / 2; ++i) level[i] = consensus::NodeHash(level[2 * i], level[2 * i + 1]);
    level.resize(level.size() / 2);
  }
  return level.front();
}

}  // namespace

Scrubber::Scrubber(storage::TransparencyLogStore* store, storage::SqliteAttestationStore* sqlite, ScrubOptions options,
                   MetricsRegistry* metrics)
    : store_(store), sqlite_(sqlite), options_(options) {
  if (metrics != nullptr) {
    problems_gauge_ = &metrics
                           ->AddGauge("attest_scrub_problems",
                                      "Problems the last completed scrub pass found in the stored data (0: none).")
                           .Get();
    last_pass_gauge_ = &metrics
                            ->AddGauge("attest_scrub_last_pass_timestamp_seconds",
                                       "When the last scrub pass completed (unix seconds; 0: none yet).")
                            .Get();
    passes_counter_ = &metrics->AddCounter("attest_scrub_passes_total", "Scrub passes completed.").Get();
  }
}

Scrubber::~Scrubber() { Stop(); }

void Scrubber::Start() {
  if (options_.interval <= absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Run(); });
}

void Scrubber::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

ScrubHealth Scrubber::Health() const {
  absl::MutexLock lock(&mu_);
  return health_;
}

void Scrubber::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval);
    if (stopping_) break;
    mu_.Unlock();
    Record(RunPass());
    mu_.Lock();
  }
}

bool Scrubber::Pace(int64_t items) {
  absl::MutexLock lock(&mu_);
  if (options_.items_per_second > 0 && items > 0) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                         absl::Seconds(static_cast<double>(items) / options_.items_per_second));
  }
  return !stopping_;
}

void Scrubber::Record(const absl::StatusOr<ScrubReport>& report) {
  if (!report.ok()) {
    LogWarning(Cat("scrub: the pass stopped early: ", StdView(report.status().message()), " (tried again at the next pass)"));
    absl::MutexLock lock(&mu_);
    health_.error = std::string(StdView(report.status().message()));
    return;
  }
  for (size_t i = 0; i < report->problems.size() && i < kLoggedProblems; ++i) {
    LogError(Cat("scrub: ", report->problems[i]));
  }
  if (report->problems.empty()) {
    LogInfo(Cat("scrub: ", report->path_rows, " path rows, ", report->log_entries, " log entries and ",
                report->log_tiles, " log tiles check out"));
  } else {
    LogError(Cat("scrub: ", report->problems.size(), " problems in the stored data (", report->path_rows,
                 " path rows, ", report->log_entries, " log entries checked); restore from a backup or a replica"));
  }
  if (problems_gauge_ != nullptr) problems_gauge_->Set(static_cast<double>(report->problems.size()));
  if (last_pass_gauge_ != nullptr) last_pass_gauge_->Set(static_cast<double>(absl::ToUnixSeconds(absl::Now())));
  if (passes_counter_ != nullptr) passes_counter_->Increment();
  absl::MutexLock lock(&mu_);
  ++health_.passes;
  health_.last_pass_end = absl::Now();
  health_.problems = report->problems;
  health_.error.clear();
}

absl::StatusOr<ScrubReport> Scrubber::RunPass() {
  ScrubReport report;
  if (absl::Status s = CheckPathRows(report); !s.ok()) return s;
  if (absl::Status s = CheckLog(report); !s.ok()) return s;
  if (options_.quick_check && sqlite_ != nullptr) {
    absl::StatusOr<std::vector<std::string>> problems = sqlite_->QuickCheck();
    if (!problems.ok()) return problems.status();
    report.problems.insert(report.problems.end(), problems->begin(), problems->end());
  }
  return report;
}

absl::Status Scrubber::CheckPathRows(ScrubReport& report) {
  if (sqlite_ == nullptr) return absl::OkStatus();
  int64_t after = 0;
  while (true) {
    absl::StatusOr<storage::SqliteAttestationStore::RecordCheck> chunk = sqlite_->CheckPathRecords(after, kRowsPerChunk);
    if (!chunk.ok()) return chunk.status();
    report.path_rows += chunk->rows;
    report.problems.insert(report.problems.end(), chunk->problems.begin(), chunk->problems.end());
    if (chunk->rows < kRowsPerChunk) return absl::OkStatus();
    after = chunk->last_id;
    if (!Pace(chunk->rows)) return absl::CancelledError("the node is stopping");
  }
}

absl::Status Scrubber::CheckLog(ScrubReport& report) {
  absl::StatusOr<storage::LogHead> head = store_->GetLogHead();
  if (!head.ok()) return head.status();
  absl::StatusOr<std::optional<storage::StoredCheckpoint>> checkpoint = store_->LatestCheckpoint();
  if (!checkpoint.ok()) return checkpoint.status();
  const uint64_t size = head->size;
  // A checkpoint of a size the log no longer reaches is the publisher's alarm (it stops signing);
  // here it is one more problem.
  std::optional<storage::StoredCheckpoint> signed_checkpoint = *checkpoint;
  if (signed_checkpoint.has_value() && signed_checkpoint->size > size) {
    report.problems.push_back(Cat("the log holds ", size, " entries but a checkpoint of size ",
                                  signed_checkpoint->size, " was signed: entries were lost"));
    signed_checkpoint.reset();
  }

  // 1. Entries against the level-0 tiles, and the roots from all leaves.
  consensus::CompactRange leaves;
  if (signed_checkpoint.has_value() && signed_checkpoint->size == 0 &&
      signed_checkpoint->root != consensus::EmptyTreeHash()) {
    report.problems.push_back("the signed checkpoint of the empty log does not have the empty tree's root");
  }
  for (uint64_t n = 0; n * consensus::kFullTileWidth < size; ++n) {
    const consensus::TileId tile = *consensus::TileForSize(0, n, size);
    const uint64_t first = n * consensus::kFullTileWidth;
    absl::StatusOr<std::vector<std::string>> tiles = store_->LogTiles(std::span<const consensus::TileId>(&tile, 1));
    if (!tiles.ok()) return tiles.status();
    absl::StatusOr<std::vector<std::string>> entries = store_->LogEntries(first, static_cast<uint64_t>(tile.width));
    if (!entries.ok()) {
      if (absl::IsDataLoss(entries.status())) {
        report.problems.push_back(Cat("log entries ", first, " to ", first + tile.width - 1, ": ",
                                      StdView(entries.status().message())));
        return absl::OkStatus();  // the roots cannot be recomputed past a damaged entry
      }
      return entries.status();
    }
    ++report.log_tiles;
    const size_t want = static_cast<size_t>(tile.width) * consensus::kTileHashBytes;
    const bool tile_ok = tiles->size() == 1 && tiles->front().size() == want;
    if (!tile_ok) {
      report.problems.push_back(Cat("log tile ", consensus::TilePath(tile), " holds ",
                                    tiles->size() == 1 ? tiles->front().size() : 0, " bytes; expected ", want));
    }
    for (size_t i = 0; i < entries->size(); ++i) {
      const consensus::MerkleHash leaf = consensus::LeafHash((*entries)[i]);
      if (tile_ok && leaf != HashAt(tiles->front(), i)) {
        report.problems.push_back(Cat("log entry ", first + i, " does not hash to its leaf in ",
                                      consensus::TilePath(tile), " (the entry or the tile was changed)"));
      }
      leaves.Append(leaf);
      ++report.log_entries;
      if (signed_checkpoint.has_value() && leaves.size() == signed_checkpoint->size &&
          leaves.Root() != signed_checkpoint->root) {
        report.problems.push_back(Cat("the log's entries up to ", signed_checkpoint->size,
                                      " do not give the root of the checkpoint signed for that size"));
      }
    }
    if (!Pace(static_cast<int64_t>(entries->size()))) return absl::CancelledError("the node is stopping");
  }
  if (leaves.size() == size && leaves.Root() != head->root) {
    report.problems.push_back(Cat("the log's ", size, " entries do not give the root the writer keeps"));
  }

  // 2. Every hash of a higher tile is the root of the full tile below it.
  for (const consensus::TileId& tile : consensus::TilesForSize(size)) {
    if (tile.level == 0) continue;
    std::vector<consensus::TileId> wanted = {tile};
    for (int i = 0; i < tile.width; ++i) {
      wanted.push_back(*consensus::TileForSize(tile.level - 1, tile.index * consensus::kFullTileWidth + i, size));
    }
    absl::StatusOr<std::vector<std::string>> tiles = store_->LogTiles(wanted);
    if (!tiles.ok()) return tiles.status();
    ++report.log_tiles;
    if (tiles->size() != wanted.size()) {
      report.problems.push_back(Cat("log tile ", consensus::TilePath(tile), ": the store returned ", tiles->size(),
                                    " tiles for ", wanted.size()));
      continue;
    }
    const std::string& upper = tiles->front();
    if (upper.size() != static_cast<size_t>(tile.width) * consensus::kTileHashBytes) {
      report.problems.push_back(Cat("log tile ", consensus::TilePath(tile), " holds ", upper.size(), " bytes"));
      continue;
    }
    for (int i = 0; i < tile.width; ++i) {
      const std::string& below = (*tiles)[static_cast<size_t>(i) + 1];
      if (below.size() != consensus::kFullTileWidth * consensus::kTileHashBytes) {
        report.problems.push_back(Cat("log tile ", consensus::TilePath(wanted[static_cast<size_t>(i) + 1]), " holds ",
                                      below.size(), " bytes"));
        continue;
      }
      if (RootOfFullTile(below) != HashAt(upper, static_cast<size_t>(i))) {
        report.problems.push_back(Cat("log tile ", consensus::TilePath(tile), " hash ", i,
                                      " is not the root of ", consensus::TilePath(wanted[static_cast<size_t>(i) + 1]),
                                      " (one of the two was changed)"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace attest::server
