// SqliteAttestationStore, the node's transparency log: `log_entries` (an attestation entry is a
// reference to its path row and signature, rebuilt when read; a realisation entry is kept whole; other
// entries keep their note), `log_tiles` (tlog-tiles hash tiles, kept by the writer's LogTree) and
// `log_checkpoints` (one root per signed size). Entries are appended in the write transaction of what they record.
#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "consensus/log_entry.h"
#include "consensus/text.h"
#include "storage/batch_validation.h"
#include "storage/log_tree.h"
#include "storage/path_record.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage {
namespace {

using consensus::StorePath;
using sqlite::Statement;
using sqlite::Transaction;
using sqlite_store::Bytes;
using sqlite_store::Chars;
using sqlite_store::Corrupt;
using sqlite_store::ForEachChunk;
using sqlite_store::PathFromRow;
using sqlite_store::PrepareStatements;

// A realisation entry kept whole in `note` (other notes are signed notes or dispute part and policy
// entries, which EncodeNoteEntry turns into entries).
bool IsRealisationEntry(std::string_view note) {
  const std::string_view header = consensus::kRealisationEntryHeader;
  return note.size() > header.size() && note.starts_with(header) && note[header.size()] == '\n';
}

// Log tiles, read by the writer (to resume) and by readers (to serve them).
absl::StatusOr<std::vector<std::string>> ReadTiles(Statement& get_tile,
                                                   std::span<const consensus::TileId> tiles) {
  std::vector<std::string> out;
  out.reserve(tiles.size());
  for (const consensus::TileId& tile : tiles) {
    if (tile.entries) return absl::InvalidArgumentError("hash tiles only; entry bundles are built from entries");
    auto use = get_tile.Begin("reading a log tile");
    use.Bind(TileRowId(TileKey{.level = tile.level, .index = tile.index}));
    auto row = use.Step();
    if (!row.ok()) return row.status();
    auto bytes = TilePrefix(tile, *row ? Chars(use.Blob(0)) : std::string_view());
    if (!bytes.ok()) return bytes.status();
    out.push_back(std::move(*bytes));
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

absl::Status SqliteAttestationStore::Writer::PrepareLogStatements() {
  return PrepareStatements(*db_, {
      {&insert_log_entry_,
       "INSERT INTO log_entries(idx, path_id, signature, note) VALUES (?, ?, ?, ?)"},
      {&put_tile_, "INSERT OR REPLACE INTO log_tiles(id, hashes) VALUES (?, ?)"},
      {&get_tile_, "SELECT hashes FROM log_tiles WHERE id = ?"},
      {&find_checkpoint_, "SELECT root FROM log_checkpoints WHERE size = ?"},
      {&insert_checkpoint_,
       "INSERT INTO log_checkpoints(size, root, note, signed) VALUES (?, ?, ?, ?)"},
  });
}

absl::Status SqliteAttestationStore::Writer::ResumeLog() {
  auto size = db_->QueryInt("SELECT coalesce(max(idx) + 1, 0) FROM log_entries", "reading the log size");
  if (!size.ok()) return size.status();
  auto tree = LogTree::Resume(static_cast<uint64_t>(*size),
                              [this](std::span<const consensus::TileId> tiles) {
                                return ReadTiles(*get_tile_, tiles);
                              });
  if (!tree.ok()) {
    return Corrupt(db_->path(), consensus::Cat("the log's tiles do not match its ", *size,
                                               " entries: ", tree.status().message()));
  }
  log_ = std::move(*tree);
  committed_log_ = log_;
  return absl::OkStatus();
}

absl::Status SqliteAttestationStore::Writer::AppendLogEntry(std::optional<int64_t> path_id,
                                                            std::optional<int64_t> signature,
                                                            std::optional<std::string_view> note,
                                                            std::string_view entry) {
  auto insert = insert_log_entry_->Begin("appending to the log");
  insert.Bind(static_cast<int64_t>(log_.size()));
  if (path_id.has_value()) {
    insert.Bind(*path_id).Bind(*signature).BindNull();
  } else {
    insert.BindNull().BindNull().Bind(*note);
  }
  if (absl::Status status = insert.Run(); !status.ok()) return status;
  log_.Append(consensus::LeafHash(entry));
  return absl::OkStatus();
}

absl::Status SqliteAttestationStore::Writer::StoreCheckpoint(const StoredCheckpoint& checkpoint) {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kWrite);
  if (!tx.ok()) return tx.status();
  std::optional<StoredCheckpoint> existing;
  {
    auto use = find_checkpoint_->Begin("reading a checkpoint");
    use.Bind(static_cast<int64_t>(checkpoint.size));
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (*row) {
      existing = StoredCheckpoint{.size = checkpoint.size, .root = {}, .note = "x", .signed_unix = 0};
      if (use.Blob(0).size() != existing->root.size()) {
        return Corrupt(db_->path(), "a checkpoint root that is not 32 bytes");
      }
      std::ranges::copy(use.Blob(0), existing->root.begin());
    }
  }
  if (absl::Status status = CheckNewCheckpoint(checkpoint, committed_log_.size(),
                                               existing.has_value() ? &*existing : nullptr);
      !status.ok() || existing.has_value()) {
    return status;
  }
  auto insert = insert_checkpoint_->Begin("storing a checkpoint");
  insert.Bind(static_cast<int64_t>(checkpoint.size))
      .BindBlob(checkpoint.root)
      .Bind(checkpoint.note)
      .Bind(checkpoint.signed_unix);
  if (absl::Status status = insert.Run(); !status.ok()) return status;
  return tx->Commit();
}

absl::Status SqliteAttestationStore::Writer::StoreChangedTiles() {
  for (auto& [key, hashes] : log_.TakeChangedTiles()) {
    auto put = put_tile_->Begin("storing a log tile");
    put.Bind(TileRowId(key)).BindBlob(Bytes(hashes));
    if (absl::Status status = put.Run(); !status.ok()) return status;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Reader

absl::Status SqliteAttestationStore::Reader::PrepareLogStatements() {
  return PrepareStatements(*db_, {
      {&log_entries_,
       "SELECT idx, path_id, signature, note FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx"},
      {&get_tile_, "SELECT hashes FROM log_tiles WHERE id = ?"},
      {&latest_checkpoint_,
       "SELECT size, root, note, signed FROM log_checkpoints ORDER BY size DESC LIMIT 1"},
  });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::Reader::LogEntries(uint64_t first, uint64_t count,
                                                                                    uint64_t size) {
  if (absl::Status status = CheckLogRange(first, count, size); !status.ok()) return status;
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  struct Slot {
    int64_t path_id = 0;
    int64_t signature = 0;
    std::string note;
  };
  std::vector<Slot> slots;
  slots.reserve(count);
  std::vector<int64_t> path_ids;
  absl::flat_hash_set<int64_t> seen;
  {
    auto use = log_entries_->Begin("reading log entries");
    use.Bind(static_cast<int64_t>(first)).Bind(static_cast<int64_t>(first + count));
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (use.Int(0) != static_cast<int64_t>(first + slots.size())) {
        return Corrupt(db_->path(), consensus::Cat("log entry ", first + slots.size(), " is missing"));
      }
      Slot& slot = slots.emplace_back();
      if (use.IsNull(3)) {
        slot.path_id = use.Int(1);
        slot.signature = use.Int(2);
        if (seen.insert(slot.path_id).second) path_ids.push_back(slot.path_id);
      } else {
        slot.note = std::string(use.Text(3));
      }
    }
  }
  if (slots.size() != count) {
    return Corrupt(db_->path(), consensus::Cat("log entry ", first + slots.size(), " is missing"));
  }
  struct Row {
    StorePath path;
    PathRecord record;
  };
  absl::flat_hash_map<int64_t, Row> rows;
  absl::Status status = ForEachChunk<int64_t>(
      *paths_by_id_, path_ids, "reading logged store paths",
      [](Statement::Use& use, int64_t id) { use.Bind(id); },
      [&](Statement::Use& row) -> absl::Status {
        auto path = PathFromRow(row.Int(1), row.Blob(2), row.Text(3), db_->path());
        if (!path.ok()) return path.status();
        auto record = DecodePathRecord(row.Blob(4), path->full());
        if (!record.ok()) return Corrupt(db_->path(), consensus::StdView(record.status().message()));
        rows.emplace(row.Int(0), Row{.path = std::move(*path), .record = std::move(*record)});
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  if (status = tx->Commit(); !status.ok()) return status;

  std::vector<std::string> entries;
  entries.reserve(count);
  for (Slot& slot : slots) {
    absl::StatusOr<std::string> entry;
    if (slot.path_id == 0 && IsRealisationEntry(slot.note)) {
      // Kept whole when appended (sqlite_attestation_store.cc); checked as every entry read is.
      if (auto parsed = consensus::ParseLogEntry(slot.note); !parsed.ok()) {
        entry = parsed.status();
      } else {
        entry = std::move(slot.note);
      }
    } else if (slot.path_id == 0) {
      entry = consensus::EncodeNoteEntry(slot.note);
    } else {
      auto row = rows.find(slot.path_id);
      if (row == rows.end() || slot.signature < 0 ||
          static_cast<size_t>(slot.signature) >= row->second.record.signatures.size()) {
        return Corrupt(db_->path(), consensus::Cat("log entry ", first + entries.size(),
                                                   " names a missing attestation"));
      }
      const PathRecord& record = row->second.record;
      const RecordSignature& sig = record.signatures[slot.signature];
      const RecordClaim& claim = record.claims[sig.claim];
      auto stored = BuildOne(row->second.path, sig,
                             consensus::PathInfo{.path = row->second.path,
                                                 .nar_hash = consensus::NarHash::FromDigest(claim.nar_hash),
                                                 .nar_size = claim.nar_size,
                                                 .references = claim.references});
      if (!stored.ok()) return stored.status();
      entry = consensus::EncodeAttestationEntry(consensus::AttestationEntry{
          .attestation = std::move(stored->attestation),
          .observed_key = std::move(stored->observed_key),
          .received_unix = stored->received_unix});
    }
    if (!entry.ok()) {
      return Corrupt(db_->path(), consensus::Cat("log entry ", first + entries.size(), ": ",
                                                 entry.status().message()));
    }
    entries.push_back(std::move(*entry));
  }
  return entries;
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::Reader::LogTiles(
    std::span<const consensus::TileId> tiles) {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  auto out = ReadTiles(*get_tile_, tiles);
  if (!out.ok()) return out.status();
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  return out;
}

absl::StatusOr<std::optional<StoredCheckpoint>> SqliteAttestationStore::Reader::LatestCheckpoint() {
  auto use = latest_checkpoint_->Begin("reading the latest checkpoint");
  auto row = use.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  StoredCheckpoint checkpoint{.size = static_cast<uint64_t>(use.Int(0)),
                              .root = {},
                              .note = std::string(use.Text(2)),
                              .signed_unix = use.Int(3)};
  if (use.Blob(1).size() != checkpoint.root.size()) {
    return Corrupt(db_->path(), "a checkpoint root that is not 32 bytes");
  }
  std::ranges::copy(use.Blob(1), checkpoint.root.begin());
  return checkpoint;
}

}  // namespace attest::storage
