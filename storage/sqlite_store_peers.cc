// SqliteAttestationStore, followed peers: `peers` (cursor, frontier and checkpoints, advanced in the
// transaction that applies the entries), `peer_entries` (each peer's log as applied, verbatim),
// `peer_rejections` and `peer_forks`.
#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "consensus/text.h"
#include "storage/batch_validation.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage {
namespace {

using sqlite_store::Bytes;
using sqlite_store::Chars;
using sqlite_store::Corrupt;
using sqlite_store::PrepareStatements;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

absl::Status SqliteAttestationStore::Writer::PreparePeersStatements() {
  return PrepareStatements(*db_, {
      {&get_peer_, "SELECT cursor, frontier, checkpoint, checkpoint_size, cosigned FROM peers WHERE name = ?"},
      {&put_peer_,
       "INSERT OR REPLACE INTO peers(name, cursor, frontier, checkpoint, checkpoint_size, cosigned) "
       "VALUES (?, ?, ?, ?, ?, ?)"},
      {&insert_peer_entry_, "INSERT OR REPLACE INTO peer_entries(peer, idx, entry) VALUES (?, ?, ?)"},
      {&insert_rejection_,
       "INSERT OR IGNORE INTO peer_rejections(peer, idx, reason, entry, detected) VALUES (?, ?, ?, ?, ?)"},
      {&recent_rejections_,
       "SELECT peer, idx, reason, entry, detected FROM peer_rejections WHERE ? = '' OR peer = ? "
       "ORDER BY detected DESC, idx DESC, peer DESC LIMIT ?"},
      {&count_rejections_, "SELECT count(*) FROM peer_rejections WHERE ? = '' OR peer = ?"},
      {&insert_fork_,
       "INSERT OR IGNORE INTO peer_forks(peer, first, second, reason, detected) VALUES (?, ?, ?, ?, ?)"},
      {&list_forks_, "SELECT peer, first, second, reason, detected FROM peer_forks ORDER BY peer"},
  });
}

absl::StatusOr<std::optional<PeerProgress>> SqliteAttestationStore::Writer::GetPeerProgress(const std::string& peer) {
  auto use = get_peer_->Begin("reading a peer's progress");
  use.Bind(peer);
  auto row = use.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  PeerProgress progress{.peer = peer,
                        .cursor = static_cast<uint64_t>(use.Int(0)),
                        .frontier = {},
                        .checkpoint = std::string(use.Text(2)),
                        .checkpoint_size = static_cast<uint64_t>(use.Int(3)),
                        .cosigned_checkpoint = std::string(use.Text(4))};
  const std::span<const uint8_t> frontier = use.Blob(1);
  if (frontier.size() % sizeof(consensus::MerkleHash) != 0) {
    return Corrupt(db_->path(), consensus::Cat("a frontier of ", frontier.size(), " bytes for peer ", peer));
  }
  for (size_t at = 0; at < frontier.size(); at += sizeof(consensus::MerkleHash)) {
    consensus::MerkleHash hash;
    std::ranges::copy(frontier.subspan(at, sizeof(consensus::MerkleHash)), hash.begin());
    progress.frontier.push_back(hash);
  }
  if (absl::Status status = ValidatePeerProgress(progress); !status.ok()) {
    return Corrupt(db_->path(), consensus::StdView(status.message()));
  }
  return progress;
}

absl::StatusOr<std::vector<RejectedEntry>> SqliteAttestationStore::Writer::RecentRejectedEntries(
    const std::string& peer, int limit) {
  auto use = recent_rejections_->Begin("reading refused peer entries");
  use.Bind(peer).Bind(peer).Bind(static_cast<int64_t>(std::max(0, limit)));
  std::vector<RejectedEntry> out;
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(RejectedEntry{.peer = std::string(use.Text(0)),
                                .index = static_cast<uint64_t>(use.Int(1)),
                                .reason = std::string(use.Text(2)),
                                .entry = std::string(Chars(use.Blob(3))),
                                .detected_unix = use.Int(4)});
  }
  return out;
}

absl::StatusOr<int64_t> SqliteAttestationStore::Writer::CountRejectedEntries(const std::string& peer) {
  auto use = count_rejections_->Begin("counting refused peer entries");
  use.Bind(peer).Bind(peer);
  auto row = use.Step();
  if (!row.ok()) return row.status();
  return *row ? use.Int(0) : 0;
}

absl::Status SqliteAttestationStore::Writer::StoreForkEvidence(const ForkEvidence& evidence) {
  if (absl::Status status = ValidateForkEvidence(evidence); !status.ok()) return status;
  auto insert = insert_fork_->Begin("storing fork evidence");
  insert.Bind(evidence.peer)
      .Bind(evidence.first_checkpoint)
      .Bind(evidence.second_checkpoint)
      .Bind(evidence.reason)
      .Bind(evidence.detected_unix);
  return insert.Run();
}

absl::StatusOr<std::vector<ForkEvidence>> SqliteAttestationStore::Writer::ListForkEvidence() {
  auto use = list_forks_->Begin("reading fork evidence");
  std::vector<ForkEvidence> out;
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ForkEvidence{.peer = std::string(use.Text(0)),
                               .first_checkpoint = std::string(use.Text(1)),
                               .second_checkpoint = std::string(use.Text(2)),
                               .reason = std::string(use.Text(3)),
                               .detected_unix = use.Int(4)});
  }
  return out;
}

absl::Status SqliteAttestationStore::Writer::StorePeerProgress(const WriteBatch& batch) {
  const PeerProgress& progress = *batch.peer_progress;
  const std::vector<std::string>& entries = batch.peer_entries;
  auto stored = GetPeerProgress(progress.peer);
  if (!stored.ok()) return stored.status();
  const std::optional<uint64_t> stored_cursor =
      stored->has_value() ? std::optional((*stored)->cursor) : std::nullopt;
  if (absl::Status status = CheckCursorAdvance(progress, stored_cursor); !status.ok()) return status;
  if (absl::Status status = CheckPeerEntries(batch, stored_cursor); !status.ok()) return status;
  const uint64_t first = progress.cursor - entries.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    auto insert = insert_peer_entry_->Begin("keeping a peer's log entry");
    insert.Bind(progress.peer).Bind(static_cast<int64_t>(first + i)).BindBlob(Bytes(entries[i]));
    if (absl::Status status = insert.Run(); !status.ok()) return status;
  }
  std::string frontier;
  for (const consensus::MerkleHash& hash : progress.frontier) frontier.append(Chars(hash));
  auto put = put_peer_->Begin("storing a peer's progress");
  put.Bind(progress.peer)
      .Bind(static_cast<int64_t>(progress.cursor))
      .BindBlob(Bytes(frontier))
      .Bind(progress.checkpoint)
      .Bind(static_cast<int64_t>(progress.checkpoint_size))
      .Bind(progress.cosigned_checkpoint);
  return put.Run();
}

absl::Status SqliteAttestationStore::Writer::StoreRejectedEntries(const WriteBatch& batch) {
  for (const RejectedEntry& rejected : batch.rejected_entries) {
    auto insert = insert_rejection_->Begin("recording a refused peer entry");
    insert.Bind(rejected.peer)
        .Bind(static_cast<int64_t>(rejected.index))
        .Bind(rejected.reason)
        .BindBlob(Bytes(rejected.entry))
        .Bind(rejected.detected_unix);
    if (absl::Status status = insert.Run(); !status.ok()) return status;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Reader

absl::Status SqliteAttestationStore::Reader::PreparePeersStatements() {
  return PrepareStatements(*db_, {
      {&peer_entries_, "SELECT idx, entry FROM peer_entries WHERE peer = ? AND idx >= ? AND idx < ? ORDER BY idx"},
  });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::Reader::PeerLogEntries(
    const std::string& peer, uint64_t first, uint64_t count) {
  if (first > static_cast<uint64_t>(INT64_MAX) || count > static_cast<uint64_t>(INT64_MAX) - first) {
    return absl::NotFoundError(consensus::Cat("this node does not hold entries ", first, " (+", count,
                                              ") of peer '", peer, "'s log"));
  }
  std::vector<std::string> out;
  out.reserve(count);
  auto use = peer_entries_->Begin("reading a peer's kept log entries");
  use.Bind(peer).Bind(static_cast<int64_t>(first)).Bind(static_cast<int64_t>(first + count));
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (use.Int(0) != static_cast<int64_t>(first + out.size())) break;
    out.emplace_back(Chars(use.Blob(1)));
  }
  if (out.size() != count) {
    return absl::NotFoundError(consensus::Cat("this node does not hold entry ", first + out.size(), " of peer '",
                                              peer, "'s log"));
  }
  return out;
}

}  // namespace attest::storage
