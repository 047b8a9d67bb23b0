// The SQLite store. Long because it holds every job of the file in one place: the schema and its
// migrations, the writer (one connection, group transactions, the log's tiles), the readers (path
// index, status reads, disputes, the log) and the integrity checks. Splitting it by role (ledger,
// log, peers) behind smaller interfaces would shorten it.
#include "storage/sqlite_attestation_store.h"

#include <algorithm>
#include <array>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/log_entry.h"
#include "consensus/signed_note.h"
#include "storage/batch_validation.h"
#include "storage/log_tree.h"
#include "storage/path_record.h"
#include "storage/sqlite.h"

namespace attest::storage {
namespace {

using consensus::StorePath;
using sqlite::Connection;
using sqlite::Statement;
using sqlite::Transaction;

constexpr size_t kPathHashBytes = 20;

// Schema version 2. See storage/README.md for the reasoning; in short: one row per attested store
// path holds everything a status answer needs for it (its claims with their references written out,
// and its signatures) as one PathRecord blob, so that a status read is one index lookup and one row
// per path. Short repeated strings (key names, systems, output names) live in dictionaries.
constexpr std::string_view kSchemaV2 = R"sql(
-- The 32-character nix32 hash part, decoded (20 bytes), is split in two so that the index holds
-- an 8-byte integer (compact, and compared as an integer) rather than a 20-byte blob.
CREATE TABLE paths (
  id INTEGER PRIMARY KEY,
  hash_head INTEGER NOT NULL,  -- the hash's first 8 bytes, big-endian, as a signed integer
  hash_tail BLOB NOT NULL,     -- the other 12 bytes
  name TEXT NOT NULL,
  record BLOB NOT NULL         -- storage/path_record.h: claims and signatures
) STRICT;
-- Not UNIQUE: lookups compare hash_tail and name themselves, so that a path sharing another's hash
-- part (never in practice) cannot squat on it, without paying for the name in the index.
CREATE INDEX paths_by_hash ON paths(hash_head);

CREATE TABLE keys (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE    -- signature key name
) STRICT;

CREATE TABLE observed_keys (
  id INTEGER PRIMARY KEY,
  public_key BLOB NOT NULL UNIQUE  -- 32 bytes; the key's name is the signature's
) STRICT;

CREATE TABLE labels (
  id INTEGER PRIMARY KEY,
  text TEXT NOT NULL UNIQUE    -- systems and output names
) STRICT;

CREATE TABLE disputes (
  id TEXT PRIMARY KEY,
  path_id INTEGER NOT NULL REFERENCES paths(id),
  signed_record TEXT NOT NULL,
  opened INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  fingerprint_count INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The node's own log (consensus/log_entry.h). An attestation entry is the signature at position
-- `signature` of the record of path `path_id`: its bytes are rebuilt from there, not stored twice.
-- A dispute entry keeps the signed record it logged (later versions replace the one in `disputes`).
CREATE TABLE log_entries (
  idx INTEGER PRIMARY KEY,
  path_id INTEGER REFERENCES paths(id),
  signature INTEGER,
  note TEXT,
  CHECK ((path_id IS NULL) = (signature IS NULL) AND (path_id IS NULL) <> (note IS NULL))
) STRICT;
-- tlog-tiles hash tiles (storage/log_tree.h): id = level << 56 | index; hashes = 32 bytes each, up to
-- 256; the rightmost tile of a level grows until full.
CREATE TABLE log_tiles (
  id INTEGER PRIMARY KEY,
  hashes BLOB NOT NULL
) STRICT;
-- Every checkpoint the node signed; one root per size, ever.
CREATE TABLE log_checkpoints (
  size INTEGER PRIMARY KEY,
  root BLOB NOT NULL,
  note TEXT NOT NULL,
  signed INTEGER NOT NULL
) STRICT;

-- Maintained by every write, so that Stats() does not count millions of rows.
CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO counters(name, value) VALUES ('attestations', 0), ('paths', 0);
)sql";

// Added in version 3 (federation); a version-2 file gets them on open, and keeps its path records
// (format 1 records read as submitted to this node).
constexpr std::string_view kFederationTables = R"sql(
-- Following peers (server/replication.h). How far each peer's log is applied: the cursor, the
-- compact range of the peer's tree at the cursor (32-byte hashes), its latest verified checkpoint and
-- that checkpoint with this node's cosignature.
CREATE TABLE peers (
  name TEXT PRIMARY KEY,
  cursor INTEGER NOT NULL,
  frontier BLOB NOT NULL,
  checkpoint TEXT NOT NULL,
  checkpoint_size INTEGER NOT NULL,
  cosigned TEXT NOT NULL
) STRICT, WITHOUT ROWID;
-- Entries of a peer's log this node refused (a forged attestation in a validly signed log, ...).
CREATE TABLE peer_rejections (
  peer TEXT NOT NULL,
  idx INTEGER NOT NULL,
  reason TEXT NOT NULL,
  entry BLOB NOT NULL,
  detected INTEGER NOT NULL,
  PRIMARY KEY (peer, idx)
) STRICT, WITHOUT ROWID;
-- Two signed checkpoints of a peer that cannot both hold; the first evidence per peer is kept.
CREATE TABLE peer_forks (
  peer TEXT PRIMARY KEY,
  first TEXT NOT NULL,
  second TEXT NOT NULL,
  reason TEXT NOT NULL,
  detected INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
)sql";

// Added in version 4 (resolutions); a version-2 or -3 file gets them on open. Disputes gain their
// state (consensus::DisputeState) and operators ("\n"-separated, with a "\n" before the first and
// after the last, so a filter matches whole names with instr()); per-key attestation counters are
// rows 'key:<name>' of `counters`.
constexpr std::string_view kResolutionTables = R"sql(
ALTER TABLE disputes ADD COLUMN state INTEGER NOT NULL DEFAULT 0;
ALTER TABLE disputes ADD COLUMN operators TEXT NOT NULL DEFAULT '';
-- Maintainers' resolution statements (consensus/resolution.h); one row per signed note.
CREATE TABLE resolutions (
  id INTEGER PRIMARY KEY,
  dispute_id TEXT NOT NULL,
  note TEXT NOT NULL UNIQUE,
  outcome INTEGER NOT NULL,
  maintainer TEXT NOT NULL,
  time INTEGER NOT NULL,
  received INTEGER NOT NULL,
  origin TEXT NOT NULL
) STRICT;
CREATE INDEX resolutions_by_dispute ON resolutions(dispute_id, time);
-- Listing order (open first, then id), so a page reads only its own rows.
CREATE INDEX disputes_open_first ON disputes(state <> 0, id);
)sql";

// Added in version 6: the entries of each peer's log as this node applied them, verbatim, so it can
// serve a peer that lost its database its own log back (server/restore.h). A rowid table: entries are
// up to 64 KiB, too large for WITHOUT ROWID's B-tree cells.
constexpr std::string_view kPeerEntriesTable = R"sql(
CREATE TABLE peer_entries (
  peer TEXT NOT NULL,
  idx INTEGER NOT NULL,
  entry BLOB NOT NULL,
  UNIQUE (peer, idx)
) STRICT;
)sql";

// Version 1 (one row per signature, claims and paths normalised) was only ever written by
// development builds. An empty version-1 database is rebuilt as version 2; one holding attestations
// is refused (see CreateOrMigrate): there is nothing in the field to convert.
constexpr std::string_view kDropSchemaV1 = R"sql(
DROP TABLE signatures; DROP TABLE claims; DROP TABLE disputes; DROP TABLE paths; DROP TABLE keys;
DROP TABLE observed_keys; DROP TABLE labels; DROP TABLE counters;
)sql";
static_assert(kSqliteSchemaVersion == 6);

// Path rows are ~600 bytes: on 4 KiB pages the unused tail of each page is ~6% of the file, on 8 KiB
// pages ~3%. Larger pages save little more and make every read copy more (status_bench).
constexpr int kPageSizeBytes = 8192;

// ---------------------------------------------------------------------------------------------
// Encodings

using PathHashBytes = std::array<uint8_t, kPathHashBytes>;
constexpr size_t kHashHeadBytes = 8;
constexpr size_t kHashTailBytes = kPathHashBytes - kHashHeadBytes;

absl::StatusOr<PathHashBytes> PathHash(const StorePath& path) {
  auto bytes = consensus::Nix32Decode(path.hash_part(), kPathHashBytes);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        consensus::Cat("store path ", path.full(), " has an undecodable hash part: ",
                     bytes.status().message()));
  }
  PathHashBytes hash;
  std::ranges::copy(*bytes, hash.begin());
  return hash;
}

int64_t HashHead(const PathHashBytes& hash) {
  uint64_t head = 0;
  for (size_t i = 0; i < kHashHeadBytes; ++i) head = head << 8 | hash[i];
  return static_cast<int64_t>(head);
}

std::span<const uint8_t> HashTail(const PathHashBytes& hash) {
  return std::span<const uint8_t>(hash).subspan(kHashHeadBytes);
}

// Per-key attestation counters are rows "key:<key name>" of `counters`; ';' sorts right after ':'.
constexpr std::string_view kKeyCounterPrefix = "key:";
constexpr std::string_view kKeyCounterEnd = "key;";

// The filters of a DisputeQuery, as parameters ?2 (state, -1 for any), ?3 (name part) and ?4
// (operator); `d` is disputes, `p` its path.
constexpr std::string_view kDisputeFilters =
    "AND (?2 < 0 OR d.state = ?2) AND (?3 = '' OR instr(p.name, ?3) > 0) "
    "AND (?4 = '' OR instr(d.operators, char(10) || ?4 || char(10)) > 0)";

std::string JoinOperators(const std::vector<std::string>& operators) {
  if (operators.empty()) return "";
  std::string joined = "\n";
  for (const std::string& name : operators) joined += consensus::Cat(name, "\n");
  return joined;
}

std::vector<std::string> SplitOperators(std::string_view joined) {
  std::vector<std::string> out;
  for (absl::string_view name : absl::StrSplit(consensus::AbslView(joined), '\n', absl::SkipEmpty())) {
    out.emplace_back(consensus::StdView(name));
  }
  return out;
}

absl::Status Corrupt(const std::string& file, std::string_view what) {
  return absl::DataLossError(consensus::Cat(
      "database file ", file, " is corrupt or not an attest database (", what,
      "): restore from a replica or backup"));
}

absl::StatusOr<StorePath> PathFromHash(std::span<const uint8_t> hash, std::string_view name,
                                       const std::string& file) {
  auto path = StorePath::Parse(
      consensus::Cat(consensus::kStoreDir, "/", consensus::Nix32Encode(hash), "-", name));
  if (!path.ok()) return Corrupt(file, consensus::Cat("bad store path: ", path.status().message()));
  return path;
}

// A store path from its row in `paths`.
absl::StatusOr<StorePath> PathFromRow(int64_t head, std::span<const uint8_t> tail,
                                      std::string_view name, const std::string& file) {
  if (tail.size() != kHashTailBytes) {
    return Corrupt(file, consensus::Cat("a store path hash tail of ", tail.size(), " bytes"));
  }
  PathHashBytes hash;
  for (size_t i = 0; i < kHashHeadBytes; ++i) {
    hash[i] = static_cast<uint8_t>(static_cast<uint64_t>(head) >> (8 * (kHashHeadBytes - 1 - i)));
  }
  std::ranges::copy(tail, hash.begin() + kHashHeadBytes);
  return PathFromHash(hash, name, file);
}

// The deriver Nix would record for output `output_name` of `path`: "<name>.drv", where <name> is the
// path's name without the "-<output>" suffix Nix appends for outputs other than "out".
std::string ImpliedDeriverName(std::string_view path_name, std::string_view output_name) {
  std::string_view base = path_name;
  if (!output_name.empty() && output_name != "out") {
    std::string suffix = consensus::Cat("-", output_name);
    if (base.size() > suffix.size() && base.ends_with(suffix)) {
      base.remove_suffix(suffix.size());
    }
  }
  return consensus::Cat(base, ".drv");
}

// A deriver takes 20 bytes in the common case: its name is almost always the implied one.
absl::StatusOr<std::vector<uint8_t>> EncodeDeriver(std::string_view deriver, const StorePath& path,
                                                   std::string_view output_name) {
  auto drv = StorePath::Parse(deriver);
  if (!drv.ok()) {
    return absl::InvalidArgumentError(
        consensus::Cat("deriver ", deriver, " is not a store path: ", drv.status().message()));
  }
  auto hash = PathHash(*drv);
  if (!hash.ok()) return hash.status();
  std::vector<uint8_t> bytes(hash->begin(), hash->end());
  if (drv->name() != ImpliedDeriverName(path.name(), output_name)) {
    bytes.insert(bytes.end(), drv->name().begin(), drv->name().end());
  }
  return bytes;
}

absl::StatusOr<std::string> DecodeDeriver(std::span<const uint8_t> blob, const StorePath& path,
                                          std::string_view output_name, const std::string& file) {
  if (blob.size() < kPathHashBytes) {
    return Corrupt(file, consensus::Cat("a deriver of ", blob.size(), " bytes"));
  }
  std::string name =
      blob.size() == kPathHashBytes
          ? ImpliedDeriverName(path.name(), output_name)
          : std::string(reinterpret_cast<const char*>(blob.data()) + kPathHashBytes,
                        blob.size() - kPathHashBytes);
  // Formatted, not parsed: it was a valid store path when written, and this runs for every
  // attestation read.
  return consensus::Cat(consensus::kStoreDir, "/", consensus::Nix32Encode(blob.first(kPathHashBytes)),
                        "-", name);
}

// Binds ?2..?4 of kDisputeFilters (after ?1 was bound).
template <typename Use>
Use& BindDisputeFilters(Use& use, const DisputeQuery& query) {
  return use.Bind(query.state.has_value() ? static_cast<int64_t>(*query.state) : int64_t{-1})
      .Bind(query.name_contains)
      .Bind(query.operator_name);
}

// Retries `attempt` while it fails with UNAVAILABLE (busy past the busy timeout, or a transient I/O
// error), at most options.busy_retries more times, with a short growing pause.
inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

template <typename Attempt>
auto WithBusyRetries(const SqliteOptions& options, Attempt&& attempt) -> decltype(attempt()) {
  for (int tries = 1;; ++tries) {
    auto result = attempt();
    if (result.ok() || !absl::IsUnavailable(StatusOf(result))) return result;
    if (tries > options.busy_retries) {
      return absl::UnavailableError(
          consensus::Cat(StatusOf(result).message(), " (gave up after ", tries, " attempts)"));
    }
    absl::SleepFor(absl::Milliseconds(10) * (1 << std::min(tries, 6)));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Batched lookups. One statement execution costs far more than one more row, so paths, claims and
// references are looked up kChunk at a time with `IN (?, ?, ...)`; a short last chunk binds NULL,
// which matches nothing.

namespace {

constexpr int kChunk = 100;

std::string InList(std::string_view sql_prefix) {
  std::string sql(sql_prefix);
  sql += " IN (";
  for (int i = 0; i < kChunk; ++i) sql += i == 0 ? "?" : ", ?";
  sql += ")";
  return sql;
}

// Runs `statement` (with kChunk parameters) over `values`, bind(use, value) binding one value and
// on_row(use) consuming each result row.
template <typename T, typename BindFn, typename RowFn>
absl::Status ForEachChunk(Statement& statement, std::span<const T> values, std::string_view context,
                          BindFn bind, RowFn on_row) {
  for (size_t start = 0; start < values.size(); start += kChunk) {
    auto use = statement.Begin(context);
    const size_t end = std::min(values.size(), start + kChunk);
    for (size_t i = start; i < end; ++i) bind(use, values[i]);
    for (size_t i = end; i < start + kChunk; ++i) use.BindNull();
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (absl::Status status = on_row(use); !status.ok()) return status;
    }
  }
  return absl::OkStatus();
}

// Unpredictable, so that nobody can choose store paths that crowd one place of the path index.
uint64_t RandomSeed() {
  std::random_device device;
  return uint64_t{device()} << 32 | device();
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::string_view Chars(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Log tiles, read by the writer (to resume) and by readers (to serve them).

namespace {

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
// A reader's id -> value dictionaries. Each reader keeps its own (they are small, and a status read
// looks several up per attestation, which should not take a lock each time).

struct SqliteAttestationStore::Lookups {
  absl::flat_hash_map<int64_t, std::string> key_names;
  absl::flat_hash_map<int64_t, std::array<uint8_t, 32>> observed_keys;
  absl::flat_hash_map<int64_t, std::string> labels;
};

// ---------------------------------------------------------------------------------------------
// Writer: the one connection that writes, with its statements and name -> id dictionaries.

class SqliteAttestationStore::Writer {
 public:
  static absl::StatusOr<std::unique_ptr<Writer>> Create(std::unique_ptr<Connection> db) {
    auto writer = std::unique_ptr<Writer>(new Writer(std::move(db)));
    if (absl::Status status = writer->PrepareAll(); !status.ok()) return status;
    if (absl::Status status = writer->ResumeLog(); !status.ok()) return status;
    return writer;
  }

  Connection& connection() { return *db_; }

  // The log as of the last commit.
  LogHead log_head() const { return LogHead{.size = committed_log_.size(), .root = committed_log_.Root()}; }

  absl::Status StoreCheckpoint(const StoredCheckpoint& checkpoint) {
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

  // One transaction. On failure nothing of the batch is stored; call ForgetUncommitted().
  absl::StatusOr<std::vector<WriteOutcome>> WriteOnce(const WriteBatch& batch) {
    if (batch.peer_progress.has_value()) {
      if (absl::Status status = ValidatePeerProgress(*batch.peer_progress); !status.ok()) return status;
    } else if (absl::Status status = CheckPeerEntries(batch, std::nullopt); !status.ok()) {
      return status;
    }
    auto entries = LogEntriesOf(batch);
    if (!entries.ok()) return entries.status();
    auto tx = Transaction::Begin(*db_, Transaction::Kind::kWrite);
    if (!tx.ok()) return tx.status();
    paths_.clear();
    // Attestations to append to the log: their row, the signature's position in it, their entry.
    struct Logged {
      const PathRow* row;
      size_t signature;
      size_t entry;
    };
    std::vector<Logged> logged;

    // Every store path the batch writes to, with its stored row when there is one, in a few
    // statements.
    std::vector<const StorePath*> mentioned;
    for (const StoredAttestation& stored : batch.attestations) {
      mentioned.push_back(&stored.attestation.claim.path);
    }
    for (const StoredDispute& dispute : batch.disputes) mentioned.push_back(&dispute.path);
    if (absl::Status status = LoadPaths(mentioned); !status.ok()) return status;

    std::vector<WriteOutcome> outcomes;
    outcomes.reserve(batch.attestations.size());
    int64_t inserted = 0;
    absl::flat_hash_map<std::string_view, int64_t> per_key;
    for (size_t i = 0; i < batch.attestations.size(); ++i) {
      const StoredAttestation& stored = batch.attestations[i];
      // Validated here rather than up front: it is cheap, and a refused item in the middle of a
      // batch then exercises the same rollback that disk-full and I/O errors rely on.
      if (absl::Status status = ValidateStoredAttestation(stored, i, batch.attestations.size());
          !status.ok()) {
        return status;
      }
      auto outcome = AddAttestation(stored);
      if (!outcome.ok()) {
        return absl::Status(outcome.status().code(),
                            consensus::Cat("attestation ", i + 1, " of ", batch.attestations.size(),
                                           ": ", outcome.status().message()));
      }
      if (*outcome == WriteOutcome::kInserted) {
        ++inserted;
        ++per_key[stored.attestation.key_name()];
        if (batch.log_append == LogAppend::kAll) {
          const PathRow& row = paths_.at(stored.attestation.claim.path.full());
          logged.push_back(Logged{.row = &row, .signature = row.record.signatures.size() - 1, .entry = i});
        }
      }
      outcomes.push_back(*outcome);
    }
    int64_t new_paths = 0;
    if (absl::Status status = StoreChangedPaths(new_paths); !status.ok()) return status;
    for (size_t i = 0; i < batch.disputes.size(); ++i) {
      if (absl::Status status = ValidateStoredDispute(batch.disputes[i], i, batch.disputes.size());
          !status.ok()) {
        return status;
      }
      if (absl::Status status = UpsertDispute(batch.disputes[i]); !status.ok()) {
        return absl::Status(status.code(), consensus::Cat("dispute ", i + 1, " of ",
                                                          batch.disputes.size(), ": ",
                                                          status.message()));
      }
    }
    for (const Logged& item : logged) {
      if (absl::Status status = AppendLogEntry(item.row->id, static_cast<int64_t>(item.signature),
                                               std::nullopt, entries->attestations[item.entry]);
          !status.ok()) {
        return status;
      }
    }
    for (size_t i = 0; entries->logged && i < batch.disputes.size(); ++i) {
      const std::vector<std::string>& dispute_entries = entries->disputes[i];
      for (const std::string& entry : dispute_entries) {
        // A record logged whole keeps its signed note in the row; a record logged in parts keeps
        // each part entry itself (EncodeNoteEntry gives both back as entries).
        const std::string_view kept = dispute_entries.size() == 1 ? std::string_view(batch.disputes[i].signed_record)
                                                                   : std::string_view(entry);
        if (absl::Status status = AppendLogEntry(std::nullopt, std::nullopt, kept, entry); !status.ok()) {
          return status;
        }
      }
    }
    for (size_t i = 0; i < batch.resolutions.size(); ++i) {
      const StoredResolution& resolution = batch.resolutions[i];
      if (absl::Status status = ValidateStoredResolution(resolution, i, batch.resolutions.size()); !status.ok()) {
        return status;
      }
      auto stored = InsertResolution(resolution);
      if (!stored.ok()) return stored.status();
      if (*stored && batch.log_append == LogAppend::kAll) {
        if (absl::Status status =
                AppendLogEntry(std::nullopt, std::nullopt, resolution.signed_note, entries->resolutions[i]);
            !status.ok()) {
          return status;
        }
      }
    }
    for (const DisputeStateUpdate& update : batch.dispute_states) {
      auto set = set_dispute_state_->Begin("updating a dispute's state");
      set.Bind(static_cast<int64_t>(update.state)).Bind(update.id);
      if (absl::Status status = set.Run(); !status.ok()) return status;
    }
    for (auto& [key, hashes] : log_.TakeChangedTiles()) {
      auto put = put_tile_->Begin("storing a log tile");
      put.Bind(TileRowId(key)).BindBlob(Bytes(hashes));
      if (absl::Status status = put.Run(); !status.ok()) return status;
    }
    if (batch.peer_progress.has_value()) {
      if (absl::Status status = StorePeerProgress(batch); !status.ok()) return status;
    }
    for (const RejectedEntry& rejected : batch.rejected_entries) {
      auto insert = insert_rejection_->Begin("recording a refused peer entry");
      insert.Bind(rejected.peer)
          .Bind(static_cast<int64_t>(rejected.index))
          .Bind(rejected.reason)
          .BindBlob(Bytes(rejected.entry))
          .Bind(rejected.detected_unix);
      if (absl::Status status = insert.Run(); !status.ok()) return status;
    }
    if (absl::Status status = BumpCounter("attestations", inserted); !status.ok()) return status;
    if (absl::Status status = BumpCounter("paths", new_paths); !status.ok()) return status;
    for (const auto& [key_name, count] : per_key) {
      if (absl::Status status = BumpCounter(consensus::Cat(kKeyCounterPrefix, key_name), count); !status.ok()) {
        return status;
      }
    }
    if (absl::Status status = tx->Commit(); !status.ok()) return status;
    paths_.clear();  // its keys view the caller's batch
    committed_log_ = log_;
    return outcomes;
  }

  absl::StatusOr<std::optional<PeerProgress>> GetPeerProgress(const std::string& peer) {
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

  absl::StatusOr<std::vector<RejectedEntry>> RecentRejectedEntries(const std::string& peer, int limit) {
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

  absl::StatusOr<int64_t> CountRejectedEntries(const std::string& peer) {
    auto use = count_rejections_->Begin("counting refused peer entries");
    use.Bind(peer).Bind(peer);
    auto row = use.Step();
    if (!row.ok()) return row.status();
    return *row ? use.Int(0) : 0;
  }

  absl::Status StoreForkEvidence(const ForkEvidence& evidence) {
    if (absl::Status status = ValidateForkEvidence(evidence); !status.ok()) return status;
    auto insert = insert_fork_->Begin("storing fork evidence");
    insert.Bind(evidence.peer)
        .Bind(evidence.first_checkpoint)
        .Bind(evidence.second_checkpoint)
        .Bind(evidence.reason)
        .Bind(evidence.detected_unix);
    return insert.Run();
  }

  absl::StatusOr<std::vector<ForkEvidence>> ListForkEvidence() {
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

  // After a rollback, ids handed out during the transaction no longer exist.
  void ForgetUncommitted() {
    log_ = committed_log_;
    key_ids_.clear();
    observed_key_ids_.clear();
    label_ids_.clear();
    paths_.clear();
  }

 private:
  // A store path the batch writes to: its row (id 0 until inserted) and record.
  struct PathRow {
    const StorePath* path = nullptr;
    PathHashBytes hash{};
    int64_t id = 0;
    PathRecord record;
    size_t stored_signatures = 0;  // in the row before this batch
    bool changed = false;
  };

  explicit Writer(std::unique_ptr<Connection> db) : db_(std::move(db)) {}

  absl::Status ResumeLog() {
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

  absl::Status AppendLogEntry(std::optional<int64_t> path_id, std::optional<int64_t> signature,
                              std::optional<std::string_view> note, std::string_view entry) {
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

  absl::Status PrepareAll() {
    struct {
      std::unique_ptr<Statement>* statement;
      std::string sql;
    } const all[] = {
        {&find_paths_,
         InList("SELECT id, hash_head, hash_tail, name, record FROM paths WHERE hash_head")},
        {&insert_path_,
         "INSERT INTO paths(hash_head, hash_tail, name, record) VALUES (?, ?, ?, ?)"},
        {&update_path_, "UPDATE paths SET record = ? WHERE id = ?"},
        {&find_key_, "SELECT id FROM keys WHERE name = ?"},
        {&insert_key_, "INSERT INTO keys(name) VALUES (?)"},
        {&find_observed_key_, "SELECT id FROM observed_keys WHERE public_key = ?"},
        {&insert_observed_key_, "INSERT INTO observed_keys(public_key) VALUES (?)"},
        {&find_label_, "SELECT id FROM labels WHERE text = ?"},
        {&insert_label_, "INSERT INTO labels(text) VALUES (?)"},
        {&upsert_dispute_,
         "INSERT INTO disputes(id, path_id, signed_record, opened, updated, fingerprint_count, state, operators) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (id) DO UPDATE SET path_id = excluded.path_id, "
         "signed_record = excluded.signed_record, updated = excluded.updated, "
         "fingerprint_count = excluded.fingerprint_count, state = excluded.state, "
         "operators = excluded.operators"},
        {&bump_counter_,
         "INSERT INTO counters(name, value) VALUES (?2, ?1) "
         "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"},
        {&insert_resolution_,
         "INSERT OR IGNORE INTO resolutions(dispute_id, note, outcome, maintainer, time, received, origin) "
         "VALUES (?, ?, ?, ?, ?, ?, ?)"},
        {&set_dispute_state_, "UPDATE disputes SET state = ? WHERE id = ?"},
        {&insert_log_entry_,
         "INSERT INTO log_entries(idx, path_id, signature, note) VALUES (?, ?, ?, ?)"},
        {&put_tile_, "INSERT OR REPLACE INTO log_tiles(id, hashes) VALUES (?, ?)"},
        {&get_tile_, "SELECT hashes FROM log_tiles WHERE id = ?"},
        {&find_checkpoint_, "SELECT root FROM log_checkpoints WHERE size = ?"},
        {&insert_checkpoint_,
         "INSERT INTO log_checkpoints(size, root, note, signed) VALUES (?, ?, ?, ?)"},
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
    };
    for (const auto& [statement, sql] : all) {
      auto prepared = db_->Prepare(sql);
      if (!prepared.ok()) return prepared.status();
      *statement = std::move(*prepared);
    }
    return absl::OkStatus();
  }

  // Fills paths_ for `paths` with their stored rows, if any.
  absl::Status LoadPaths(std::span<const StorePath* const> paths) {
    std::vector<int64_t> heads;
    absl::flat_hash_map<int64_t, std::vector<PathRow*>> by_head;
    for (const StorePath* path : paths) {
      auto [it, inserted] = paths_.try_emplace(path->full());
      if (!inserted) continue;
      auto hash = PathHash(*path);
      if (!hash.ok()) return hash.status();
      it->second.path = path;
      it->second.hash = *hash;
      std::vector<PathRow*>& same_head = by_head[HashHead(*hash)];
      if (same_head.empty()) heads.push_back(HashHead(*hash));
      same_head.push_back(&it->second);
    }
    return ForEachChunk<int64_t>(
        *find_paths_, heads, "looking up store paths",
        [](Statement::Use& use, int64_t head) { use.Bind(head); },
        [&](Statement::Use& row) -> absl::Status {
          auto candidates = by_head.find(row.Int(1));
          if (candidates == by_head.end()) return absl::OkStatus();
          for (PathRow* wanted : candidates->second) {
            if (!std::ranges::equal(row.Blob(2), HashTail(wanted->hash)) ||
                row.Text(3) != wanted->path->name()) {
              continue;
            }
            auto record = DecodePathRecord(row.Blob(4), wanted->path->full());
            if (!record.ok()) return Corrupt(db_->path(), consensus::StdView(record.status().message()));
            wanted->id = row.Int(0);
            wanted->stored_signatures = record->signatures.size();
            wanted->record = std::move(*record);
            break;
          }
          return absl::OkStatus();
        });
  }

  // Get-or-insert in a small dictionary table.
  enum class ValueType { kText, kBlob };
  absl::StatusOr<int64_t> DictionaryId(absl::flat_hash_map<std::string, int64_t>& cache,
                                       Statement& find, Statement& insert, std::string_view value,
                                       ValueType type, std::string_view context) {
    if (auto it = cache.find(consensus::AbslView(value)); it != cache.end()) return it->second;
    const bool is_blob = type == ValueType::kBlob;
    std::optional<int64_t> id;
    {
      auto use = find.Begin(context);
      if (is_blob) {
        use.BindBlob(Bytes(value));
      } else {
        use.Bind(value);
      }
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (*row) id = use.Int(0);
    }
    if (!id.has_value()) {
      auto use = insert.Begin(context);
      if (is_blob) {
        use.BindBlob(Bytes(value));
      } else {
        use.Bind(value);
      }
      if (absl::Status status = use.Run(); !status.ok()) return status;
      id = db_->LastInsertRowId();
    }
    cache.emplace(std::string(value), *id);
    return *id;
  }

  // 0 (none) for an empty label.
  absl::StatusOr<int64_t> LabelId(std::string_view text) {
    if (text.empty()) return 0;
    return DictionaryId(label_ids_, *find_label_, *insert_label_, text, ValueType::kText,
                        "storing a label");
  }

  absl::StatusOr<WriteOutcome> AddAttestation(const StoredAttestation& stored) {
    const consensus::Attestation& a = stored.attestation;
    const consensus::BuildMetadata& meta = a.metadata;
    PathRow& row = paths_.at(a.claim.path.full());
    auto key_id = DictionaryId(key_ids_, *find_key_, *insert_key_, a.key_name(), ValueType::kText,
                               "storing a key name");
    if (!key_id.ok()) return key_id.status();

    uint32_t claim = 0;
    const auto& nar_hash = a.claim.nar_hash.digest();
    while (claim < row.record.claims.size()) {
      const RecordClaim& c = row.record.claims[claim];
      if (c.nar_size == a.claim.nar_size && c.nar_hash == nar_hash &&
          c.references == a.claim.references) {
        break;
      }
      ++claim;
    }
    if (claim < row.record.claims.size()) {
      for (const RecordSignature& sig : row.record.signatures) {
        if (sig.claim == claim && sig.key_id == *key_id) return WriteOutcome::kAlreadyPresent;
      }
    }

    RecordSignature sig{.claim = claim,
                        .key_id = *key_id,
                        .signature = a.signature.bytes,
                        .received_unix = stored.received_unix,
                        .observed_key_id = 0,
                        .deriver = {},
                        .output_id = 0,
                        .system_id = 0,
                        .build_kind = static_cast<int64_t>(meta.build_kind),
                        .build_time_unix = meta.build_time_unix};
    if (stored.observed_key.has_value()) {
      const auto& bytes = stored.observed_key->bytes();
      auto id = DictionaryId(observed_key_ids_, *find_observed_key_, *insert_observed_key_,
                             Chars(bytes), ValueType::kBlob, "storing an observed key");
      if (!id.ok()) return id.status();
      sig.observed_key_id = *id;
    }
    if (!meta.deriver.empty()) {
      auto encoded = EncodeDeriver(meta.deriver, a.claim.path, meta.output_name);
      if (!encoded.ok()) return encoded.status();
      sig.deriver.assign(encoded->begin(), encoded->end());
    }
    auto output_id = LabelId(meta.output_name);
    if (!output_id.ok()) return output_id.status();
    sig.output_id = *output_id;
    auto system_id = LabelId(meta.system);
    if (!system_id.ok()) return system_id.status();
    sig.system_id = *system_id;
    auto origin_id = LabelId(stored.origin);
    if (!origin_id.ok()) return origin_id.status();
    sig.origin_id = *origin_id;

    if (claim == row.record.claims.size()) {
      row.record.claims.push_back(RecordClaim{
          .nar_hash = nar_hash, .nar_size = a.claim.nar_size, .references = a.claim.references});
    }
    row.record.signatures.push_back(std::move(sig));
    row.changed = true;
    return WriteOutcome::kInserted;
  }

  // Writes every changed record back (and rows for dispute paths that have none yet); counts the
  // paths that got their first attestation.
  absl::Status StoreChangedPaths(int64_t& new_paths) {
    std::vector<uint8_t> encoded;
    for (auto& [full, row] : paths_) {
      if (!row.changed && row.id != 0) continue;
      encoded.clear();
      EncodePathRecord(row.record, row.path->full(), encoded);
      if (row.id == 0) {
        auto insert = insert_path_->Begin("inserting a store path");
        insert.Bind(HashHead(row.hash)).BindBlob(HashTail(row.hash)).Bind(row.path->name()).BindBlob(
            encoded);
        if (absl::Status status = insert.Run(); !status.ok()) return status;
        row.id = db_->LastInsertRowId();
      } else {
        auto update = update_path_->Begin("updating a store path");
        update.BindBlob(encoded).Bind(row.id);
        if (absl::Status status = update.Run(); !status.ok()) return status;
      }
      if (row.stored_signatures == 0 && !row.record.signatures.empty()) ++new_paths;
      row.stored_signatures = row.record.signatures.size();
      row.changed = false;
    }
    return absl::OkStatus();
  }

  // The progress and the entries it advances over (WriteBatch::peer_entries).
  absl::Status StorePeerProgress(const WriteBatch& batch) {
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

  absl::Status UpsertDispute(const StoredDispute& dispute) {
    auto upsert = upsert_dispute_->Begin("storing a dispute");
    upsert.Bind(dispute.id)
        .Bind(paths_.at(dispute.path.full()).id)
        .Bind(dispute.signed_record)
        .Bind(dispute.opened_unix)
        .Bind(dispute.updated_unix)
        .Bind(static_cast<int64_t>(dispute.fingerprint_count))
        .Bind(static_cast<int64_t>(dispute.state))
        .Bind(JoinOperators(dispute.operators));
    return upsert.Run();
  }

  // Stores the statement unless its note is already held; whether it was inserted.
  absl::StatusOr<bool> InsertResolution(const StoredResolution& resolution) {
    auto insert = insert_resolution_->Begin("storing a resolution");
    insert.Bind(resolution.dispute_id)
        .Bind(resolution.signed_note)
        .Bind(static_cast<int64_t>(resolution.outcome))
        .Bind(resolution.maintainer)
        .Bind(resolution.time_unix)
        .Bind(resolution.received_unix)
        .Bind(resolution.origin);
    if (absl::Status status = insert.Run(); !status.ok()) return status;
    return db_->Changes() == 1;
  }

  absl::Status BumpCounter(std::string_view name, int64_t delta) {
    if (delta == 0) return absl::OkStatus();
    auto bump = bump_counter_->Begin("updating counters");
    bump.Bind(delta).Bind(name);
    return bump.Run();
  }

  std::unique_ptr<Connection> db_;
  std::unique_ptr<Statement> find_paths_, insert_path_, update_path_, find_key_, insert_key_,
      find_observed_key_, insert_observed_key_, find_label_, insert_label_, upsert_dispute_,
      bump_counter_, insert_resolution_, set_dispute_state_, insert_log_entry_, put_tile_, get_tile_, find_checkpoint_, insert_checkpoint_, get_peer_,
      put_peer_, insert_peer_entry_, insert_rejection_, recent_rejections_, count_rejections_, insert_fork_, list_forks_;
  // The log as this transaction grows it, and as of the last commit (restored on rollback).
  LogTree log_;
  LogTree committed_log_;
  absl::flat_hash_map<std::string, int64_t> key_ids_;
  absl::flat_hash_map<std::string, int64_t> observed_key_ids_;  // by raw key bytes
  absl::flat_hash_map<std::string, int64_t> label_ids_;
  // This transaction's store paths, by full path (viewing the batch). node_hash_map: PathRow
  // pointers are kept while it is filled.
  absl::node_hash_map<std::string_view, PathRow> paths_;
};

// ---------------------------------------------------------------------------------------------
// Reader: one read-only connection with its statements; used by one call at a time.

class SqliteAttestationStore::Reader {
 public:
  static absl::StatusOr<std::unique_ptr<Reader>> Open(const std::string& path,
                                                      const SqliteOptions& options,
                                                      PathIdIndex& path_ids) {
    auto db = Connection::Open(path, sqlite::OpenMode::kReadWrite, options.busy_timeout);
    if (!db.ok()) return db.status();
    if (absl::Status status = (*db)->Execute(
            consensus::Cat("PRAGMA query_only = ON; PRAGMA cache_size = -", options.reader_cache_kib,
                           "; PRAGMA mmap_size = ", options.mmap_bytes),
            "configuring a reader");
        !status.ok()) {
      return status;
    }
    auto reader = std::unique_ptr<Reader>(new Reader(std::move(*db), path_ids));
    if (absl::Status status = reader->PrepareAll(); !status.ok()) return status;
    return reader;
  }

  // Rows of `paths` after `after_id`, up to `limit` of them, each checked as a read would (the store
  // path it names, its record's checksum and structure) and found again through paths_by_hash.
  absl::StatusOr<RecordCheck> CheckPathRecords(int64_t after_id, int limit) {
    auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
    if (!tx.ok()) return tx.status();
    if (!check_rows_) {
      for (auto [statement, sql] : {std::pair{&check_rows_, "SELECT id, hash_head, hash_tail, name, record FROM paths "
                                                           "WHERE id > ? ORDER BY id LIMIT ?"},
                                    std::pair{&check_index_, "SELECT count(*) FROM paths INDEXED BY paths_by_hash "
                                                            "WHERE hash_head = ? AND id = ?"}}) {
        auto prepared = db_->Prepare(sql);
        if (!prepared.ok()) return prepared.status();
        *statement = *std::move(prepared);
      }
    }
    RecordCheck check;
    check.last_id = after_id;
    std::vector<std::pair<int64_t, int64_t>> rows;  // id, head
    {
      auto use = check_rows_->Begin("checking path records");
      use.Bind(after_id).Bind(static_cast<int64_t>(limit));
      while (true) {
        auto row = use.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        ++check.rows;
        check.last_id = use.Int(0);
        rows.emplace_back(use.Int(0), use.Int(1));
        auto path = PathFromRow(use.Int(1), use.Blob(2), use.Text(3), db_->path());
        if (!path.ok()) {
          check.problems.push_back(consensus::Cat("path row ", use.Int(0), ": ", path.status().message()));
          continue;
        }
        auto record = DecodePathRecord(use.Blob(4), path->full());
        if (!record.ok()) {
          check.problems.push_back(consensus::Cat("path row ", use.Int(0), " (", path->full(), "): ",
                                                  record.status().message()));
        }
      }
    }
    for (auto [id, head] : rows) {
      auto use = check_index_->Begin("checking the path index");
      use.Bind(head).Bind(id);
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row || use.Int(0) != 1) {
        check.problems.push_back(consensus::Cat("path row ", id,
                                                " is not found through the index paths_by_hash (a read of "
                                                "its path would answer UNKNOWN): rebuild it with REINDEX"));
      }
    }
    if (absl::Status status = tx->Commit(); !status.ok()) return status;
    return check;
  }

  // PRAGMA quick_check: SQLite's own check of every page, table and index entry (all of the file).
  absl::StatusOr<std::vector<std::string>> QuickCheck() {
    auto statement = db_->Prepare("PRAGMA quick_check");
    if (!statement.ok()) return statement.status();
    auto use = (*statement)->Begin("checking the database file");
    std::vector<std::string> problems;
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (use.Text(0) != "ok") problems.push_back(consensus::Cat("SQLite quick_check: ", use.Text(0)));
    }
    return problems;
  }

  absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const StorePath> paths) {
    // Distinct paths ("slots"); a path asked for twice is read once.
    absl::flat_hash_map<std::string_view, size_t> slot_of_path;
    std::vector<size_t> slot_of_input(paths.size());
    std::vector<Slot> slots;
    absl::flat_hash_map<int64_t, std::vector<size_t>> slots_of_head;
    std::vector<int64_t> heads;
    for (size_t i = 0; i < paths.size(); ++i) {
      auto [it, inserted] = slot_of_path.try_emplace(paths[i].full(), slots.size());
      slot_of_input[i] = it->second;
      if (!inserted) continue;
      auto hash = PathHash(paths[i]);
      if (!hash.ok()) return hash.status();
      std::vector<size_t>& same_head = slots_of_head[HashHead(*hash)];
      if (same_head.empty()) heads.push_back(HashHead(*hash));
      same_head.push_back(slots.size());
      slots.push_back(Slot{.path = &paths[i], .hash = *hash, .attestations = {}, .uses = 0});
    }
    for (size_t slot : slot_of_input) ++slots[slot].uses;

    auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
    if (!tx.ok()) return tx.status();
    // The rows' ids from the in-memory index when it is up to this snapshot (one table descent per
    // path), else SQLite's index on hash_head (two). Either way kChunk keys per statement, ascending
    // (SQLite sorts an IN list) so that consecutive seeks share pages; each row carries the whole
    // record, and its hash and name are compared below, so extra candidates are harmless.
    auto ids = CandidateIds(heads);
    if (!ids.ok()) return ids.status();
    const bool by_id = ids->has_value();
    absl::Status status = ForEachChunk<int64_t>(
        by_id ? *paths_by_id_ : *paths_by_head_, by_id ? std::span<const int64_t>(**ids) : heads,
        "reading store paths", [](Statement::Use& use, int64_t key) { use.Bind(key); },
        [&](Statement::Use& row) -> absl::Status {
          auto same_head = slots_of_head.find(row.Int(1));
          if (same_head == slots_of_head.end()) return absl::OkStatus();
          for (size_t candidate : same_head->second) {
            Slot& slot = slots[candidate];
            if (std::ranges::equal(row.Blob(2), HashTail(slot.hash)) && row.Text(3) == slot.path->name()) {
              auto record = DecodePathRecord(row.Blob(4), slot.path->full());
              if (!record.ok()) return Corrupt(db_->path(), consensus::StdView(record.status().message()));
              auto built = BuildAttestations(*slot.path, std::move(*record));
              if (!built.ok()) return built.status();
              slot.attestations = std::move(*built);
              break;
            }
          }
          // Otherwise another path with the same hash head (or hash part): not asked for.
          return absl::OkStatus();
        });
    if (!status.ok()) return status;
    status = tx->Commit();
    if (!status.ok()) return status;

    std::vector<std::vector<StoredAttestation>> result(paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
      Slot& slot = slots[slot_of_input[i]];
      if (--slot.uses == 0) {
        result[i] = std::move(slot.attestations);
      } else {
        result[i] = slot.attestations;
      }
    }
    return result;
  }

  // Brings the shared path index up to this reader's snapshot (see PathIdIndex). Call in a read
  // transaction.
  absl::Status SyncPathIds() {
    if (!path_ids_.usable()) return absl::OkStatus();
    auto newest = [&]() -> absl::StatusOr<int64_t> {
      auto use = newest_path_id_->Begin("reading the newest path id");
      auto row = use.Step();
      if (!row.ok()) return row.status();
      return use.Int(0);
    }();
    if (!newest.ok()) return newest.status();
    return path_ids_.CatchUp(*newest, [&](int64_t after, PathIdIndex::AddRow add) -> absl::Status {
      Statement& scan = (*newest - after) * 16 > *newest ? *all_path_ids_after_ : *path_ids_after_;
      auto use = scan.Begin("indexing store paths");
      use.Bind(after);
      while (true) {
        auto row = use.Step();
        if (!row.ok()) return row.status();
        if (!*row) return absl::OkStatus();
        add(use.Int(1), use.Int(0));
      }
    });
  }

  // The ids of the rows that may hold these heads, ascending and distinct; nullopt when the in-memory
  // index cannot be used. Call in a read transaction.
  absl::StatusOr<std::optional<std::vector<int64_t>>> CandidateIds(std::span<const int64_t> heads) {
    if (absl::Status status = SyncPathIds(); !status.ok()) return status;
    if (!path_ids_.usable()) return std::nullopt;
    std::vector<int64_t> ids;
    ids.reserve(heads.size() + heads.size() / 8);
    path_ids_.Find(heads, [&ids](size_t, int64_t id) { ids.push_back(id); });
    std::ranges::sort(ids);
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
  }

  absl::Status LoadPathIndex() {
    auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
    if (!tx.ok()) return tx.status();
    if (absl::Status status = SyncPathIds(); !status.ok()) return status;
    return tx->Commit();
  }

  absl::StatusOr<std::optional<StoredDispute>> GetDispute(const std::string& id) {
    auto use = dispute_by_id_->Begin("reading a dispute");
    use.Bind(id);
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::nullopt;
    return DisputeFromRow(use);
  }

  absl::StatusOr<std::vector<StoredDispute>> ListDisputes(const DisputeQuery& query) {
    // The sort key "<0|1><id>" as (state <> 0, id); "" sorts before every dispute.
    int64_t after_rank = -1;
    std::string after_id;
    if (!query.after_key.empty()) {
      // Keys compare as strings: a first character other than 0 or 1 sorts before or after all.
      const char rank = query.after_key[0];
      after_rank = rank < '0' ? -1 : rank > '1' ? 2 : rank - '0';
      after_id = rank == '0' || rank == '1' ? query.after_key.substr(1) : std::string();
    }
    auto use = disputes_after_->Begin("listing disputes");
    BindDisputeFilters(use.Bind(after_rank), query).Bind(static_cast<int64_t>(query.limit)).Bind(after_id);
    std::vector<StoredDispute> page;
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      auto dispute = DisputeFromRow(use);
      if (!dispute.ok()) return dispute.status();
      page.push_back(std::move(*dispute));
    }
    return page;
  }

  absl::StatusOr<int64_t> CountDisputes(const DisputeQuery& query) {
    auto use = count_matching_disputes_->Begin("counting disputes");
    BindDisputeFilters(use.Bind(""), query);
    auto row = use.Step();
    if (!row.ok()) return row.status();
    return *row ? use.Int(0) : 0;
  }

  absl::StatusOr<std::vector<StoredResolution>> ResolutionsFor(const std::string& dispute_id) {
    auto use = resolutions_for_->Begin("reading a dispute's resolutions");
    use.Bind(dispute_id);
    return ResolutionRows(use);
  }

  absl::StatusOr<std::vector<StoredResolution>> AllResolutions() {
    auto use = all_resolutions_->Begin("reading resolutions");
    return ResolutionRows(use);
  }

  absl::StatusOr<std::vector<StoredResolution>> ResolutionRows(Statement::Use& use) {
    std::vector<StoredResolution> out;
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      auto resolution = ResolutionFromRow(use);
      if (!resolution.ok()) return resolution.status();
      out.push_back(std::move(*resolution));
    }
    return out;
  }

  absl::StatusOr<std::vector<std::string>> PeerLogEntries(const std::string& peer, uint64_t first, uint64_t count) {
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

  absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count, uint64_t size) {
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
      if (slot.path_id == 0) {
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

  absl::StatusOr<std::vector<std::string>> LogTiles(std::span<const consensus::TileId> tiles) {
    auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
    if (!tx.ok()) return tx.status();
    auto out = ReadTiles(*get_tile_, tiles);
    if (!out.ok()) return out.status();
    if (absl::Status status = tx->Commit(); !status.ok()) return status;
    return out;
  }

  absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint() {
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

  absl::StatusOr<std::vector<KeyAttestationCount>> AttestationsPerKey() {
    auto use = key_counters_->Begin("reading per-key counters");
    use.Bind(kKeyCounterPrefix).Bind(kKeyCounterEnd);
    std::vector<KeyAttestationCount> out;
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      out.push_back({.key_name = std::string(use.Text(0).substr(kKeyCounterPrefix.size())),
                     .attestations = use.Int(1)});
    }
    return out;
  }

  absl::StatusOr<StoreStats> Stats() {
    auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
    if (!tx.ok()) return tx.status();
    StoreStats stats;
    {
      auto use = counters_->Begin("reading counters");
      while (true) {
        auto row = use.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        if (use.Text(0) == "attestations") stats.attestations = use.Int(1);
        if (use.Text(0) == "paths") stats.paths = use.Int(1);
      }
    }
    for (auto [statement, out] : {std::pair{count_disputes_.get(), &stats.disputes},
                                  std::pair{count_open_disputes_.get(), &stats.open_disputes},
                                  std::pair{count_resolutions_.get(), &stats.resolutions}}) {
      auto use = statement->Begin("counting disputes and resolutions");
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (*row) *out = use.Int(0);
    }
    if (absl::Status status = tx->Commit(); !status.ok()) return status;
    return stats;
  }

 private:
  struct Slot {
    const StorePath* path;
    PathHashBytes hash;
    std::vector<StoredAttestation> attestations;
    int uses;  // inputs that asked for this path
  };

  Reader(std::unique_ptr<Connection> db, PathIdIndex& path_ids) : db_(std::move(db)), path_ids_(path_ids) {}

  absl::Status PrepareAll() {
    struct {
      std::unique_ptr<Statement>* statement;
      std::string sql;
    } const all[] = {
        // Both give (id, hash_head, hash_tail, name, record), so one row handler reads either.
        {&paths_by_head_, InList("SELECT id, hash_head, hash_tail, name, record FROM paths WHERE hash_head")},
        {&newest_path_id_, "SELECT coalesce(max(id), 0) FROM paths"},
        // A few new rows: a range of the table. Many: the whole index, which holds both columns and is
        // a thirtieth of the table's size.
        {&path_ids_after_, "SELECT id, hash_head FROM paths WHERE id > ?"},
        {&all_path_ids_after_, "SELECT id, hash_head FROM paths INDEXED BY paths_by_hash WHERE id > ?"},
        {&key_name_, "SELECT name FROM keys WHERE id = ?"},
        {&observed_key_, "SELECT public_key FROM observed_keys WHERE id = ?"},
        {&label_, "SELECT text FROM labels WHERE id = ?"},
        {&dispute_by_id_,
         "SELECT d.id, p.hash_head, p.hash_tail, p.name, d.signed_record, d.opened, d.updated, "
         "d.fingerprint_count, d.state, d.operators "
         "FROM disputes d JOIN paths p ON p.id = d.path_id WHERE d.id = ?"},
        // Open first, then by id: the order of DisputeSortKey.
        {&disputes_after_,
         "SELECT d.id, p.hash_head, p.hash_tail, p.name, d.signed_record, d.opened, d.updated, "
         "d.fingerprint_count, d.state, d.operators "
         "FROM disputes d JOIN paths p ON p.id = d.path_id "
         "WHERE (d.state <> 0, d.id) > (?1, ?6) " + std::string(kDisputeFilters) +
             " ORDER BY d.state <> 0, d.id LIMIT ?5"},
        {&count_matching_disputes_,
         "SELECT count(*) FROM disputes d JOIN paths p ON p.id = d.path_id WHERE ?1 = ?1 " +
             std::string(kDisputeFilters)},
        {&resolutions_for_,
         "SELECT dispute_id, note, outcome, maintainer, time, received, origin FROM resolutions "
         "WHERE dispute_id = ? ORDER BY time, note"},
        {&all_resolutions_,
         "SELECT dispute_id, note, outcome, maintainer, time, received, origin FROM resolutions "
         "ORDER BY dispute_id, time, note"},
        {&count_open_disputes_, "SELECT count(*) FROM disputes WHERE state = 0"},
        {&count_resolutions_, "SELECT count(*) FROM resolutions"},
        {&counters_, "SELECT name, value FROM counters"},
        {&count_disputes_, "SELECT count(*) FROM disputes"},
        {&key_counters_, "SELECT name, value FROM counters WHERE name >= ? AND name < ? ORDER BY name"},
        {&log_entries_,
         "SELECT idx, path_id, signature, note FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx"},
        {&paths_by_id_, InList("SELECT id, hash_head, hash_tail, name, record FROM paths WHERE id")},
        {&get_tile_, "SELECT hashes FROM log_tiles WHERE id = ?"},
        {&latest_checkpoint_,
         "SELECT size, root, note, signed FROM log_checkpoints ORDER BY size DESC LIMIT 1"},
        {&peer_entries_, "SELECT idx, entry FROM peer_entries WHERE peer = ? AND idx >= ? AND idx < ? ORDER BY idx"},
    };
    for (const auto& [statement, sql] : all) {
      auto prepared = db_->Prepare(sql);
      if (!prepared.ok()) return prepared.status();
      *statement = std::move(*prepared);
    }
    return absl::OkStatus();
  }

  // The attestation of one signature of `path`'s record, over `claim`.
  absl::StatusOr<StoredAttestation> BuildOne(const StorePath& path, const RecordSignature& sig,
                                             consensus::PathInfo claim) {
    consensus::Signature signature;
    auto key_name = KeyName(sig.key_id);
    if (!key_name.ok()) return key_name.status();
    signature.key_name = std::move(*key_name);
    signature.bytes = sig.signature;

    consensus::BuildMetadata meta;
    if (sig.output_id != 0) {
      auto output = Label(sig.output_id);
      if (!output.ok()) return output.status();
      meta.output_name = std::move(*output);
    }
    if (sig.system_id != 0) {
      auto system = Label(sig.system_id);
      if (!system.ok()) return system.status();
      meta.system = std::move(*system);
    }
    if (!sig.deriver.empty()) {
      auto deriver = DecodeDeriver(Bytes(sig.deriver), path, meta.output_name, db_->path());
      if (!deriver.ok()) return deriver.status();
      meta.deriver = std::move(*deriver);
    }
    if (sig.build_kind < 0 || sig.build_kind > static_cast<int64_t>(consensus::BuildKind::kImported)) {
      return Corrupt(db_->path(), consensus::Cat("unknown build kind ", sig.build_kind));
    }
    meta.build_kind = static_cast<consensus::BuildKind>(sig.build_kind);
    meta.build_time_unix = sig.build_time_unix;

    std::optional<consensus::PublicKey> observed_key;
    if (sig.observed_key_id != 0) {
      auto bytes = ObservedKey(sig.observed_key_id);
      if (!bytes.ok()) return bytes.status();
      auto key = consensus::PublicKey::FromBytes(signature.key_name, *bytes);
      if (!key.ok()) {
        return Corrupt(db_->path(), consensus::Cat("an unusable observed key: ", key.status().message()));
      }
      observed_key = std::move(*key);
    }
    std::string origin;
    if (sig.origin_id != 0) {
      auto label = Label(sig.origin_id);
      if (!label.ok()) return label.status();
      origin = std::move(*label);
    }
    return StoredAttestation{.attestation = consensus::Attestation{.claim = std::move(claim),
                                                                   .signature = std::move(signature),
                                                                   .metadata = std::move(meta)},
                             .received_unix = sig.received_unix,
                             .observed_key = std::move(observed_key),
                             .origin = std::move(origin)};
  }

  // The attestations of `path`, ordered by (fingerprint, key name).
  absl::StatusOr<std::vector<StoredAttestation>> BuildAttestations(const StorePath& path,
                                                                   PathRecord record) {
    struct Built {
      consensus::PathInfo info;
      std::string fingerprint;
      int uses = 0;  // signatures over this claim not yet built; the last one takes `info`
    };
    std::vector<Built> claims;
    claims.reserve(record.claims.size());
    // Fingerprints only order attestations of different claims; most paths have one claim.
    const bool needs_fingerprints = record.claims.size() > 1;
    for (RecordClaim& claim : record.claims) {
      consensus::PathInfo info{.path = path,
                               .nar_hash = consensus::NarHash::FromDigest(claim.nar_hash),
                               .nar_size = claim.nar_size,
                               .references = std::move(claim.references)};
      std::string fingerprint = needs_fingerprints ? info.Fingerprint() : std::string();
      claims.push_back(Built{.info = std::move(info), .fingerprint = std::move(fingerprint)});
    }
    for (const RecordSignature& sig : record.signatures) ++claims[sig.claim].uses;
    std::vector<std::pair<const Built*, StoredAttestation>> found;
    found.reserve(record.signatures.size());
    for (RecordSignature& sig : record.signatures) {
      Built& claim = claims[sig.claim];
      auto stored = BuildOne(path, sig, --claim.uses == 0 ? std::move(claim.info) : claim.info);
      if (!stored.ok()) return stored.status();
      found.emplace_back(&claim, std::move(*stored));
    }
    std::ranges::sort(found, [](const auto& a, const auto& b) {
      if (a.first->fingerprint != b.first->fingerprint) {
        return a.first->fingerprint < b.first->fingerprint;
      }
      return a.second.attestation.key_name() < b.second.attestation.key_name();
    });
    std::vector<StoredAttestation> out;
    out.reserve(found.size());
    for (auto& [claim, stored] : found) out.push_back(std::move(stored));
    return out;
  }

  absl::StatusOr<StoredDispute> DisputeFromRow(const Statement::Use& row) {
    auto path = PathFromRow(row.Int(1), row.Blob(2), row.Text(3), db_->path());
    if (!path.ok()) return path.status();
    const int64_t state = row.Int(8);
    if (state < 0 || state > static_cast<int64_t>(consensus::DisputeState::kResolved)) {
      return Corrupt(db_->path(), consensus::Cat("dispute state ", state));
    }
    return StoredDispute{.id = std::string(row.Text(0)),
                         .path = std::move(*path),
                         .signed_record = std::string(row.Text(4)),
                         .opened_unix = row.Int(5),
                         .updated_unix = row.Int(6),
                         .fingerprint_count = static_cast<int>(row.Int(7)),
                         .state = static_cast<consensus::DisputeState>(state),
                         .operators = SplitOperators(row.Text(9))};
  }

  absl::StatusOr<StoredResolution> ResolutionFromRow(const Statement::Use& row) {
    const int64_t outcome = row.Int(2);
    if (outcome < 1 || outcome > static_cast<int64_t>(consensus::ResolutionOutcome::kResolved)) {
      return Corrupt(db_->path(), consensus::Cat("resolution outcome ", outcome));
    }
    return StoredResolution{.dispute_id = std::string(row.Text(0)),
                            .signed_note = std::string(row.Text(1)),
                            .outcome = static_cast<consensus::ResolutionOutcome>(outcome),
                            .maintainer = std::string(row.Text(3)),
                            .time_unix = row.Int(4),
                            .received_unix = row.Int(5),
                            .origin = std::string(row.Text(6))};
  }

  // Looks `id` up in one of this reader's dictionaries, reading and remembering it on a miss. Only
  // ids of committed rows are ever seen here, so a remembered entry never goes stale.
  template <typename Value, typename FromRow>
  absl::StatusOr<Value> Dictionary(absl::flat_hash_map<int64_t, Value>& cache, Statement& statement,
                                   int64_t id, std::string_view what, FromRow from_row) {
    if (auto it = cache.find(id); it != cache.end()) return it->second;
    auto use = statement.Begin("reading a dictionary entry");
    use.Bind(id);
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) return Corrupt(db_->path(), consensus::Cat("reference to missing ", what, " ", id));
    auto value = from_row(use);
    if (!value.ok()) return value.status();
    cache.emplace(id, *value);
    return *value;
  }

  absl::StatusOr<std::string> KeyName(int64_t id) {
    return Dictionary<std::string>(lookups_.key_names, *key_name_, id, "key",
                                   [](const Statement::Use& row) -> absl::StatusOr<std::string> {
                                     return std::string(row.Text(0));
                                   });
  }

  absl::StatusOr<std::string> Label(int64_t id) {
    return Dictionary<std::string>(lookups_.labels, *label_, id, "label",
                                   [](const Statement::Use& row) -> absl::StatusOr<std::string> {
                                     return std::string(row.Text(0));
                                   });
  }

  absl::StatusOr<std::array<uint8_t, 32>> ObservedKey(int64_t id) {
    const std::string& file = db_->path();
    return Dictionary<std::array<uint8_t, 32>>(
        lookups_.observed_keys, *observed_key_, id, "observed key",
        [&file](const Statement::Use& row) -> absl::StatusOr<std::array<uint8_t, 32>> {
          auto blob = row.Blob(0);
          if (blob.size() != 32) {
            return Corrupt(file, consensus::Cat("an observed key of ", blob.size(), " bytes"));
          }
          std::array<uint8_t, 32> bytes;
          std::ranges::copy(blob, bytes.begin());
          return bytes;
        });
  }

  std::unique_ptr<Connection> db_;
  Lookups lookups_;
  PathIdIndex& path_ids_;
  std::unique_ptr<Statement> newest_path_id_, path_ids_after_, all_path_ids_after_, paths_by_head_, paths_by_id_, log_entries_, get_tile_, latest_checkpoint_, peer_entries_,
      key_name_, observed_key_, label_,
      dispute_by_id_, disputes_after_, counters_, count_disputes_, count_matching_disputes_, resolutions_for_,
      all_resolutions_, count_open_disputes_, count_resolutions_, key_counters_;
  // Prepared on first use (only the scrub uses them).
  std::unique_ptr<Statement> check_rows_, check_index_;
};

// Returns a reader to the pool when the call is done with it.
class SqliteAttestationStore::ReaderLease {
 public:
  ReaderLease(SqliteAttestationStore& store, std::unique_ptr<Reader> reader)
      : store_(store), reader_(std::move(reader)) {}
  ~ReaderLease() { store_.ReleaseReader(std::move(reader_)); }
  ReaderLease(const ReaderLease&) = delete;
  ReaderLease& operator=(const ReaderLease&) = delete;
  Reader* operator->() { return reader_.get(); }

 private:
  SqliteAttestationStore& store_;
  std::unique_ptr<Reader> reader_;
};

// ---------------------------------------------------------------------------------------------
// Checkpointer: copies the WAL back into the database file on its own thread and connection, so
// that writers only append to the WAL and fsync it. The writer's WAL hook nudges it; when the WAL
// still grows past a hard limit (the checkpointer cannot catch up while writes keep coming), the
// writer checkpoints itself and restarts the WAL, which bounds the WAL and the cost of reading it.

class SqliteAttestationStore::Checkpointer {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpointer>> Start(const std::string& path,
                                                             const SqliteOptions& options) {
    auto db = Connection::Open(path, sqlite::OpenMode::kReadWrite, options.busy_timeout);
    if (!db.ok()) return db.status();
    return std::unique_ptr<Checkpointer>(new Checkpointer(std::move(*db)));
  }

  ~Checkpointer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  void Nudge() {
    absl::MutexLock lock(&mu_);
    pending_ = true;
  }

 private:
  explicit Checkpointer(std::unique_ptr<Connection> db)
      : db_(std::move(db)), thread_([this] { Run(); }) {}

  void Run() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Checkpointer* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->pending_ || self->stop_;
            },
            this));
        if (stop_) return;
        pending_ = false;
      }
      // A failure (another checkpoint running, a busy reader) is retried on the next nudge; the
      // writer's hard limit bounds the WAL meanwhile.
      db_->Checkpoint(Connection::CheckpointMode::kPassive).IgnoreError();
    }
  }

  std::unique_ptr<Connection> db_;
  absl::Mutex mu_;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Opening and the schema

namespace {

absl::Status CheckIdentity(Connection& db, int64_t application_id, int64_t version,
                           int64_t objects) {
  if (application_id != kSqliteApplicationId && (application_id != 0 || objects > 0)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "database file %s is an SQLite database of another application (application_id 0x%08x, "
        "%d schema objects), not an attest database: point attestd at its own database file",
        db.path(), static_cast<uint32_t>(application_id), objects));
  }
  if (version > kSqliteSchemaVersion) {
    return absl::FailedPreconditionError(
        consensus::Cat("database schema version ", version,
                     " is newer than this attestd supports (", kSqliteSchemaVersion,
                     "): upgrade attestd (database file ", db.path(), ")"));
  }
  if (version < 0) return Corrupt(db.path(), consensus::Cat("schema version ", version));
  return absl::OkStatus();
}

struct Identity {
  int64_t application_id;
  int64_t version;
  int64_t objects;
};

absl::StatusOr<Identity> ReadIdentity(Connection& db) {
  // The first statements read the file header: a file that is not SQLite fails here (DATA_LOSS).
  auto application_id = db.QueryInt("PRAGMA application_id", "reading the database header");
  if (!application_id.ok()) return application_id.status();
  auto version = db.QueryInt("PRAGMA user_version", "reading the schema version");
  if (!version.ok()) return version.status();
  auto objects = db.QueryInt("SELECT count(*) FROM sqlite_schema", "reading the schema");
  if (!objects.ok()) return objects.status();
  return Identity{*application_id, *version, *objects};
}

// Fills what version 4 added for data written by older versions: each dispute's operators (from its
// signed record) and the per-key attestation counters (one pass over the path records).
absl::Status BackfillVersion4(Connection& db) {
  {
    auto select = db.Prepare("SELECT id, signed_record FROM disputes");
    if (!select.ok()) return select.status();
    auto update = db.Prepare("UPDATE disputes SET operators = ? WHERE id = ?");
    if (!update.ok()) return update.status();
    std::vector<std::pair<std::string, std::string>> rows;  // id, operators
    auto use = (*select)->Begin("reading disputes to upgrade");
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      auto record = consensus::DisputeRecord::FromSignedNote(use.Text(1));
      if (!record.ok()) {
        return Corrupt(db.path(), consensus::Cat("dispute ", use.Text(0), ": ", record.status().message()));
      }
      std::vector<std::string> operators;
      for (const consensus::DisputeSide& side : record->sides) {
        for (const consensus::DisputeSide::Entry& entry : side.entries) operators.push_back(entry.operator_name);
      }
      std::ranges::sort(operators);
      operators.erase(std::unique(operators.begin(), operators.end()), operators.end());
      rows.emplace_back(std::string(use.Text(0)), JoinOperators(operators));
    }
    for (const auto& [id, operators] : rows) {
      auto set = (*update)->Begin("storing a dispute's operators");
      set.Bind(operators).Bind(id);
      if (absl::Status status = set.Run(); !status.ok()) return status;
    }
  }
  absl::flat_hash_map<int64_t, int64_t> per_key_id;
  {
    auto select = db.Prepare("SELECT hash_head, hash_tail, name, record FROM paths");
    if (!select.ok()) return select.status();
    auto use = (*select)->Begin("counting attestations per key");
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      auto path = PathFromRow(use.Int(0), use.Blob(1), use.Text(2), db.path());
      if (!path.ok()) return path.status();
      auto record = DecodePathRecord(use.Blob(3), path->full());
      if (!record.ok()) return Corrupt(db.path(), consensus::StdView(record.status().message()));
      for (const RecordSignature& signature : record->signatures) ++per_key_id[signature.key_id];
    }
  }
  auto insert = db.Prepare(
      "INSERT OR REPLACE INTO counters(name, value) SELECT ? || name, ? FROM keys WHERE id = ?");
  if (!insert.ok()) return insert.status();
  for (const auto& [key_id, count] : per_key_id) {
    auto use = (*insert)->Begin("storing per-key counters");
    use.Bind(kKeyCounterPrefix).Bind(count).Bind(key_id);
    if (absl::Status status = use.Run(); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status CreateOrMigrate(Connection& db) {
  auto tx = Transaction::Begin(db, Transaction::Kind::kWrite);
  if (!tx.ok()) return tx.status();
  // Read again under the write lock: another process may have created the schema meanwhile.
  auto identity = ReadIdentity(db);
  if (!identity.ok()) return identity.status();
  if (absl::Status status =
          CheckIdentity(db, identity->application_id, identity->version, identity->objects);
      !status.ok()) {
    return status;
  }
  if (identity->version == kSqliteSchemaVersion) return absl::OkStatus();
  if (identity->version == 4 || identity->version == 5) {
    // Version 5 writes path records with a checksum (format 3); the format-2 records of version 4 stay
    // readable, so only the version changes (an older attestd then refuses the file instead of
    // calling its new records corrupt). Version 6 adds peer_entries: entries replicated before it are
    // not kept (documented in docs/federation.md).
    if (absl::Status status = db.Execute(kPeerEntriesTable, "adding the peer entries table"); !status.ok()) {
      return status;
    }
    if (absl::Status status =
            db.Execute(consensus::Cat("PRAGMA user_version = ", kSqliteSchemaVersion), "recording the schema version");
        !status.ok()) {
      return status;
    }
    return tx->Commit();
  }
  if (identity->version == 2 || identity->version == 3) {
    if (identity->version == 2) {
      if (absl::Status status = db.Execute(kFederationTables, "adding the federation tables"); !status.ok()) {
        return status;
      }
    }
    if (absl::Status status = db.Execute(kResolutionTables, "adding the resolution tables"); !status.ok()) {
      return status;
    }
    if (absl::Status status = BackfillVersion4(db); !status.ok()) return status;
    if (absl::Status status = db.Execute(kPeerEntriesTable, "adding the peer entries table"); !status.ok()) {
      return status;
    }
    if (absl::Status status =
            db.Execute(consensus::Cat("PRAGMA user_version = ", kSqliteSchemaVersion), "recording the schema version");
        !status.ok()) {
      return status;
    }
    return tx->Commit();
  }
  if (identity->version == 1) {
    auto held = db.QueryInt("SELECT count(*) FROM signatures", "reading a version-1 database");
    if (!held.ok()) return held.status();
    if (*held != 0) {
      return absl::FailedPreconditionError(consensus::Cat(
          "database file ", db.path(), " uses schema version 1 of a development build and holds ",
          *held, " attestations, which this attestd cannot convert: move the file away and start "
          "with an empty database (builders' spools and peers resend what they hold)"));
    }
    if (absl::Status status = db.Execute(kDropSchemaV1, "removing the empty version-1 schema");
        !status.ok()) {
      return status;
    }
  }
  if (absl::Status status = db.Execute(kSchemaV2, "creating the schema"); !status.ok()) {
    return status;
  }
  if (absl::Status status = db.Execute(kFederationTables, "creating the federation tables"); !status.ok()) {
    return status;
  }
  if (absl::Status status = db.Execute(kResolutionTables, "creating the resolution tables"); !status.ok()) {
    return status;
  }
  if (absl::Status status = db.Execute(kPeerEntriesTable, "creating the peer entries table"); !status.ok()) {
    return status;
  }
  // PRAGMAs take no parameters; both values are constants of this program.
  if (absl::Status status = db.Execute(
          consensus::Cat("PRAGMA application_id = ", kSqliteApplicationId, "; PRAGMA user_version = ",
                       kSqliteSchemaVersion),
          "recording the schema version");
      !status.ok()) {
    return status;
  }
  return tx->Commit();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteAttestationStore>> SqliteAttestationStore::Open(
    const std::string& path, const SqliteOptions& options) {
  if (options.max_readers < 1 || options.busy_retries < 0 ||
      options.busy_timeout < absl::ZeroDuration() || options.writer_cache_kib < 0 ||
      options.reader_cache_kib < 0 || options.mmap_bytes < 0 || options.checkpoint_pages < 1) {
    return absl::InvalidArgumentError(
        "SqliteOptions: max_readers and checkpoint_pages must be >= 1; retries, timeout, cache "
        "and mmap sizes >= 0");
  }
  return WithBusyRetries(
      options, [&]() -> absl::StatusOr<std::unique_ptr<SqliteAttestationStore>> {
        auto db = Connection::Open(path, sqlite::OpenMode::kReadWriteCreate, options.busy_timeout);
        if (!db.ok()) return db.status();
        // Refuse foreign and newer files before changing anything in them (journal mode included).
        auto identity = ReadIdentity(**db);
        if (!identity.ok()) return identity.status();
        if (absl::Status status = CheckIdentity(**db, identity->application_id, identity->version,
                                                identity->objects);
            !status.ok()) {
          return status;
        }
        if ((*db)->IsReadOnly()) {
          return absl::FailedPreconditionError(consensus::Cat(
              "database file ", path,
              " is read-only for this user: attestd needs to write it, its directory and its "
              "-wal and -shm files (check owner and permissions)"));
        }
        // The page size can only be chosen before the first table exists (and before WAL).
        if (identity->objects == 0) {
          if (absl::Status status = (*db)->Execute(
                  consensus::Cat("PRAGMA page_size = ", kPageSizeBytes), "choosing the page size");
              !status.ok()) {
            return status;
          }
        }
        auto journal_mode = (*db)->QueryText("PRAGMA journal_mode = WAL", "enabling WAL");
        if (!journal_mode.ok()) return journal_mode.status();
        if (*journal_mode != "wal") {
          return absl::FailedPreconditionError(consensus::Cat(
              "database file ", path, " cannot use WAL (journal mode stays ", *journal_mode,
              "): put it on a local file system that supports shared memory"));
        }
        // Option values are integers of this program's config, not outside input.
        if (absl::Status status = (*db)->Execute(
                consensus::Cat("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
                               "PRAGMA cache_size = -",
                               options.writer_cache_kib, "; PRAGMA mmap_size = ", options.mmap_bytes),
                "configuring the database");
            !status.ok()) {
          return status;
        }
        if (absl::Status status = CreateOrMigrate(**db); !status.ok()) return status;
        auto writer = Writer::Create(std::move(*db));
        if (!writer.ok()) return writer.status();
        auto checkpointer = Checkpointer::Start(path, options);
        if (!checkpointer.ok()) return checkpointer.status();
        // Replaces SQLite's automatic checkpoint, which would copy pages back into the file
        // inside the committing Write.
        Connection* writer_db = &(*writer)->connection();
        const int soft = options.checkpoint_pages;
        const int hard = options.checkpoint_pages * 4;
        (*writer)->connection().SetWalHook(
            [checkpointer = checkpointer->get(), writer_db, soft, hard](int pages) {
              if (pages >= hard) {
                writer_db->Checkpoint(Connection::CheckpointMode::kRestart).IgnoreError();
              } else if (pages >= soft) {
                checkpointer->Nudge();
              }
            });
        auto store = std::unique_ptr<SqliteAttestationStore>(new SqliteAttestationStore(
            path, options, std::move(*writer), std::move(*checkpointer)));
        if (absl::Status status = store->LoadPathIndex(); !status.ok()) return status;
        return store;
      });
}

SqliteAttestationStore::SqliteAttestationStore(std::string path, SqliteOptions options,
                                               std::unique_ptr<Writer> writer,
                                               std::unique_ptr<Checkpointer> checkpointer)
    : path_(std::move(path)),
      options_(options),
      writer_(std::move(writer)),
      path_ids_(std::make_unique<PathIdIndex>(options_.path_index_max_bytes, RandomSeed())),
      checkpointer_(std::move(checkpointer)) {}

absl::Status SqliteAttestationStore::LoadPathIndex() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->LoadPathIndex(); });
}

SqliteAttestationStore::~SqliteAttestationStore() = default;

absl::StatusOr<std::unique_ptr<SqliteAttestationStore::Reader>>
SqliteAttestationStore::AcquireReader() {
  {
    absl::MutexLock lock(&pool_mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
      return !idle_readers_.empty() || open_readers_ < options_.max_readers;
    };
    pool_mu_.Await(absl::Condition(&available));
    if (!idle_readers_.empty()) {
      std::unique_ptr<Reader> reader = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return reader;
    }
    ++open_readers_;
  }
  auto reader = Reader::Open(path_, options_, *path_ids_);
  if (!reader.ok()) {
    absl::MutexLock lock(&pool_mu_);
    --open_readers_;
  }
  return reader;
}

void SqliteAttestationStore::ReleaseReader(std::unique_ptr<Reader> reader) {
  absl::MutexLock lock(&pool_mu_);
  idle_readers_.push_back(std::move(reader));
}

absl::StatusOr<std::vector<WriteOutcome>> SqliteAttestationStore::Write(const WriteBatch& batch) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    auto outcomes = writer_->WriteOnce(batch);
    if (!outcomes.ok()) writer_->ForgetUncommitted();
    return outcomes;
  });
}

absl::StatusOr<std::vector<std::vector<StoredAttestation>>> SqliteAttestationStore::AttestationsFor(
    std::span<const consensus::StorePath> paths) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->AttestationsFor(paths); });
}

absl::StatusOr<std::optional<StoredDispute>> SqliteAttestationStore::GetDispute(
    const std::string& id) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->GetDispute(id); });
}

absl::StatusOr<std::vector<StoredDispute>> SqliteAttestationStore::ListDisputes(
    const DisputeQuery& query) {
  if (query.limit < 1) {
    return absl::InvalidArgumentError("dispute page limit must be at least 1");
  }
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->ListDisputes(query); });
}

absl::StatusOr<int64_t> SqliteAttestationStore::CountDisputes(const DisputeQuery& query) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->CountDisputes(query); });
}

absl::StatusOr<std::vector<StoredResolution>> SqliteAttestationStore::ResolutionsFor(const std::string& dispute_id) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->ResolutionsFor(dispute_id); });
}

absl::StatusOr<std::vector<StoredResolution>> SqliteAttestationStore::AllResolutions() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->AllResolutions(); });
}

absl::StatusOr<std::vector<KeyAttestationCount>> SqliteAttestationStore::AttestationsPerKey() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->AttestationsPerKey(); });
}

absl::StatusOr<StoreStats> SqliteAttestationStore::Stats() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->Stats(); });
}

absl::StatusOr<SqliteAttestationStore::RecordCheck> SqliteAttestationStore::CheckPathRecords(int64_t after_id,
                                                                                           int limit) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->CheckPathRecords(after_id, limit); });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::QuickCheck() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->QuickCheck(); });
}

absl::StatusOr<LogHead> SqliteAttestationStore::GetLogHead() {
  absl::MutexLock lock(&write_mu_);
  return writer_->log_head();
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::LogEntries(uint64_t first,
                                                                            uint64_t count) {
  // The size first: entries below it are committed and never change.
  auto head = GetLogHead();
  if (!head.ok()) return head.status();
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->LogEntries(first, count, head->size); });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::LogTiles(
    std::span<const consensus::TileId> tiles) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->LogTiles(tiles); });
}

absl::Status SqliteAttestationStore::StoreCheckpoint(const StoredCheckpoint& checkpoint) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->StoreCheckpoint(checkpoint);
  });
}

absl::StatusOr<std::optional<PeerProgress>> SqliteAttestationStore::GetPeerProgress(const std::string& peer) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->GetPeerProgress(peer);
  });
}

absl::StatusOr<std::vector<RejectedEntry>> SqliteAttestationStore::RecentRejectedEntries(const std::string& peer,
                                                                                       int limit) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->RecentRejectedEntries(peer, limit);
  });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::PeerLogEntries(const std::string& peer,
                                                                                 uint64_t first, uint64_t count) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->PeerLogEntries(peer, first, count); });
}

absl::StatusOr<int64_t> SqliteAttestationStore::CountRejectedEntries(const std::string& peer) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->CountRejectedEntries(peer);
  });
}

absl::Status SqliteAttestationStore::StoreForkEvidence(const ForkEvidence& evidence) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->StoreForkEvidence(evidence);
  });
}

absl::StatusOr<std::vector<ForkEvidence>> SqliteAttestationStore::ListForkEvidence() {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->ListForkEvidence();
  });
}

absl::StatusOr<std::optional<StoredCheckpoint>> SqliteAttestationStore::LatestCheckpoint() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->LatestCheckpoint(); });
}

}  // namespace attest::storage
