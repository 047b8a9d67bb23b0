// SqliteAttestationStore, the schema: the tables of each version and how an older file is brought to
// the current one (kMigrations, one row per version). Opening refuses foreign and newer files
// (CheckIdentity) before anything changes; docs/storage.md explains the tables.
#include <algorithm>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "consensus/dispute.h"
#include "consensus/realisation.h"
#include "consensus/sha256.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "storage/path_record.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage::sqlite_store {
namespace {

using sqlite::Transaction;

// Schema version 2. See docs/storage.md for the reasoning; in short: one row per attested store
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

// Added in version 7: the derivations builders send so that rebuilders can build what is wanted
// (storage/derivation_store.h). One row per .drv file; its input derivations and output paths one row
// each. Paths are text: the input derivations need not be held, and output paths are not `paths`
// rows (nobody may have attested them yet).
constexpr std::string_view kDerivationTables = R"sql(
-- A rowid table: contents are a few KiB, too large for WITHOUT ROWID's B-tree cells. The path's
-- UNIQUE index answers HasDerivations without touching the contents.
CREATE TABLE derivations (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,   -- "/nix/store/<hash>-<name>.drv"
  contents BLOB NOT NULL,      -- the .drv file, byte for byte
  received INTEGER NOT NULL
) STRICT;
-- Sorted per derivation by the primary key, which is the order they are returned in.
CREATE TABLE derivation_inputs (
  drv_id INTEGER NOT NULL REFERENCES derivations(id),
  input TEXT NOT NULL,
  PRIMARY KEY (drv_id, input)
) STRICT, WITHOUT ROWID;
CREATE TABLE derivation_outputs (
  drv_id INTEGER NOT NULL REFERENCES derivations(id),
  name TEXT NOT NULL,
  path TEXT NOT NULL,
  PRIMARY KEY (drv_id, name)
) STRICT, WITHOUT ROWID;
-- Finds the derivations of an output path, and an output path by its hash part: every path with hash
-- part H lies in ['/nix/store/H-', '/nix/store/H.') in byte order, one range of this index. It holds
-- the primary key too, so both lookups read the index alone.
CREATE INDEX derivation_outputs_by_path ON derivation_outputs(path);
)sql";

// Added in version 8: the chain of policies the node adopted (storage/policy_store.h). The chain may
// be several segments (a node restarted with a policy file the chain does not hold starts a new one),
// and a new segment may reuse version numbers, so the links are keyed by `sequence`, the order they
// were stored in (rows are never deleted, so the rowid only grows), not by version. The TOML is kept
// as submitted (a BLOB: the bytes maintainers signed, whatever they are); one row per approval, in
// submission order.
constexpr std::string_view kPolicyTables = R"sql(
CREATE TABLE policy_links (
  sequence INTEGER PRIMARY KEY,  -- storage order
  version INTEGER NOT NULL,
  hash TEXT NOT NULL UNIQUE,     -- "sha256:<hex>" of the policy's canonical text
  parent TEXT NOT NULL,
  toml BLOB NOT NULL,
  received INTEGER NOT NULL,
  origin TEXT NOT NULL           -- '' when submitted to this node, else the peer's log name
) STRICT;
CREATE TABLE policy_approvals (
  link INTEGER NOT NULL REFERENCES policy_links(sequence),
  position INTEGER NOT NULL,
  signature TEXT NOT NULL,       -- "<key name>:<base64>"
  PRIMARY KEY (link, position)
) STRICT, WITHOUT ROWID;
)sql";

// Added in version 9: realisation attestations (consensus/realisation.h), one row per signature, with
// the claim's fingerprint as signed. Unique per (key, fingerprint, signing key), where the fingerprint
// is indexed as its SHA-256 (`claim_sha256`, 32 bytes) rather than itself: a 2.8 fingerprint with many
// dependent realisations runs to kilobytes. The table is clustered on that primary key (WITHOUT
// ROWID), so a key's rows sit together and RealisationsFor reads them in one B-tree descent; `realisations_by_out_path` answers RealisationKeysFor from the index alone. Key
// names, observed keys and labels (output, system, origin) are the dictionaries of attestations; 0
// means none for the optional ones, as in path records. The two counters are kept by every write.
constexpr std::string_view kRealisationTables = R"sql(
CREATE TABLE realisations (
  key TEXT NOT NULL,              -- RealisationKey::ToString(): "sha256:<hex>!<output>" or "<drv path>^<output>"
  claim_sha256 BLOB NOT NULL,     -- SHA-256 of `fingerprint`
  key_id INTEGER NOT NULL REFERENCES keys(id),
  fingerprint TEXT NOT NULL,      -- Realisation::Fingerprint(), the bytes signed
  out_path TEXT NOT NULL,         -- the claim's output path, "/nix/store/<hash>-<name>"
  signature BLOB NOT NULL,        -- 64 bytes
  received INTEGER NOT NULL,      -- the earliest receipt seen
  observed_key_id INTEGER NOT NULL,  -- observed_keys(id), 0 for a policy key
  deriver TEXT NOT NULL,          -- '' when none
  output_id INTEGER NOT NULL,     -- labels(id), 0 when none
  system_id INTEGER NOT NULL,     -- labels(id), 0 when none
  build_kind INTEGER NOT NULL,
  build_time INTEGER NOT NULL,
  origin_id INTEGER NOT NULL,     -- labels(id) of the peer it was replicated from, 0 when submitted here
  PRIMARY KEY (key, claim_sha256, key_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX realisations_by_out_path ON realisations(out_path, key);
INSERT INTO counters(name, value) VALUES ('realisations', 0), ('realisation_keys', 0);
)sql";

// Version 10: a dispute is about a store path or a derivation output (consensus/dispute_subject.h).
// SQLite cannot relax `path_id`'s NOT NULL in place, so the table is rebuilt with the subject as either
// `path_id` or `realisation_key` (exactly one set); the rows are copied as they are.
constexpr std::string_view kDisputeSubjects = R"sql(
CREATE TABLE disputes_v10 (
  id TEXT PRIMARY KEY,
  path_id INTEGER REFERENCES paths(id),  -- the store path's; NULL for a derivation output's dispute
  realisation_key TEXT,                  -- RealisationKey::ToString(); NULL for a store path's
  signed_record TEXT NOT NULL,
  opened INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  fingerprint_count INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  operators TEXT NOT NULL DEFAULT '',
  CHECK ((path_id IS NULL) <> (realisation_key IS NULL))
) STRICT, WITHOUT ROWID;
INSERT INTO disputes_v10(id, path_id, realisation_key, signed_record, opened, updated, fingerprint_count,
                         state, operators)
  SELECT id, path_id, NULL, signed_record, opened, updated, fingerprint_count, state, operators FROM disputes;
DROP TABLE disputes;
ALTER TABLE disputes_v10 RENAME TO disputes;
CREATE INDEX disputes_open_first ON disputes(state <> 0, id);
)sql";

// Version 11: realisation attestations as one record per derivation output (storage/path_record.h), like
// paths: each claim once, then its signatures. Filled from the `realisations` rows of versions 9 and
// 10 by BackfillVersion11, which then drops them.
constexpr std::string_view kRealisationRecords = R"sql(
CREATE TABLE realisation_records (
  id INTEGER PRIMARY KEY,         -- RealisationRowId(key)
  key TEXT NOT NULL,              -- RealisationKey::ToString()
  record BLOB NOT NULL            -- EncodeRealisationRecord, bound to the key by its checksum
) STRICT;
-- The keys whose claims name an output path, one row per (output path, key).
CREATE TABLE realisation_out_paths (
  out_path TEXT NOT NULL,
  key TEXT NOT NULL,
  PRIMARY KEY (out_path, key)
) STRICT, WITHOUT ROWID;
)sql";

// Version 1 (one row per signature, claims and paths normalised) was only ever written by
// development builds. An empty version-1 database is rebuilt as version 2; one holding attestations
// is refused (see CreateOrMigrate): there is nothing in the field to convert.
constexpr std::string_view kDropSchemaV1 = R"sql(
DROP TABLE signatures; DROP TABLE claims; DROP TABLE disputes; DROP TABLE paths; DROP TABLE keys;
DROP TABLE observed_keys; DROP TABLE labels; DROP TABLE counters;
)sql";
static_assert(kSqliteSchemaVersion == 11);

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

// Turns the rows of `realisations` (one per signature, versions 9 and 10) into version 11's records (one per key)
// and drops them. Each row's claim is checked against its SHA-256 as a read would, so a damaged row
// stops the upgrade instead of being carried into a record.
absl::Status BackfillVersion11(Connection& db) {
  auto select = db.Prepare(
      "SELECT key, fingerprint, claim_sha256, out_path, key_id, signature, received, observed_key_id, deriver, "
      "output_id, system_id, build_kind, build_time, origin_id FROM realisations ORDER BY key");
  if (!select.ok()) return select.status();
  auto insert_record = db.Prepare("INSERT INTO realisation_records(id, key, record) VALUES (?, ?, ?)");
  if (!insert_record.ok()) return insert_record.status();
  auto insert_out_path = db.Prepare("INSERT OR IGNORE INTO realisation_out_paths(out_path, key) VALUES (?, ?)");
  if (!insert_out_path.ok()) return insert_out_path.status();
  auto find_label = db.Prepare("SELECT text FROM labels WHERE id = ?");
  if (!find_label.ok()) return find_label.status();
  std::string key;
  RealisationRecord record;
  std::vector<uint8_t> encoded;
  auto flush = [&]() -> absl::Status {
    if (key.empty()) return absl::OkStatus();
    encoded.clear();
    EncodeRealisationRecord(record, key, encoded);
    auto use = (*insert_record)->Begin("storing a realisation record");
    use.Bind(RealisationRowId(key)).Bind(key).BindBlob(encoded);
    record = RealisationRecord{};
    return use.Run();
  };
  auto use = (*select)->Begin("reading realisations to upgrade");
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (use.Text(0) != key) {
      if (absl::Status status = flush(); !status.ok()) return status;
      key = std::string(use.Text(0));
    }
    const std::string_view fingerprint = use.Text(1);
    if (!std::ranges::equal(use.Blob(2), consensus::Sha256(fingerprint))) {
      return Corrupt(db.path(), consensus::Cat("the stored realisation of ", key, " does not match its SHA-256"));
    }
    auto claim = consensus::Realisation::ParseFingerprint(fingerprint);
    if (!claim.ok()) return Corrupt(db.path(), consensus::Cat("the stored realisation of ", key, ": ", claim.status().message()));
    size_t index = std::find(record.fingerprints.begin(), record.fingerprints.end(), fingerprint) - record.fingerprints.begin();
    if (index == record.fingerprints.size()) {
      record.fingerprints.emplace_back(fingerprint);
      auto out = (*insert_out_path)->Begin("storing a realisation's output path");
      out.Bind(use.Text(3)).Bind(key);
      if (absl::Status status = out.Run(); !status.ok()) return status;
    }
    RecordSignature signature{.claim = static_cast<uint32_t>(index),
                              .key_id = use.Int(4),
                              .signature = {},
                              .received_unix = use.Int(6),
                              .observed_key_id = use.Int(7),
                              .deriver = {},
                              .output_id = use.Int(9),
                              .system_id = use.Int(10),
                              .build_kind = use.Int(11),
                              .build_time_unix = use.Int(12),
                              .origin_id = use.Int(13)};
    if (use.Blob(5).size() != signature.signature.size()) {
      return Corrupt(db.path(), consensus::Cat("a realisation signature of ", use.Blob(5).size(), " bytes"));
    }
    std::ranges::copy(use.Blob(5), signature.signature.begin());
    if (!use.Text(8).empty()) {
      // Records hold the deriver as paths' records do, relative to the name Nix implies for the output.
      std::string output_name;
      if (use.Int(9) != 0) {
        auto label = (*find_label)->Begin("reading an output name");
        label.Bind(use.Int(9));
        auto found = label.Step();
        if (!found.ok()) return found.status();
        if (*found) output_name = std::string(label.Text(0));
      }
      auto out_path = consensus::StorePath::Parse(use.Text(3));
      if (!out_path.ok()) return Corrupt(db.path(), consensus::Cat("a realisation's output path: ", out_path.status().message()));
      auto deriver = EncodeDeriver(use.Text(8), *out_path, output_name);
      if (!deriver.ok()) return Corrupt(db.path(), consensus::Cat("a realisation's deriver: ", deriver.status().message()));
      signature.deriver.assign(deriver->begin(), deriver->end());
    }
    record.signatures.push_back(std::move(signature));
  }
  if (absl::Status status = flush(); !status.ok()) return status;
  return db.Execute("DROP INDEX realisations_by_out_path; DROP TABLE realisations;", "dropping the realisation rows");
}

// How a file of one version becomes the next. A new file gets every step's tables (`creating`); an
// older file gets the steps after its version (`adding`), and what a step adds for data already
// stored (`backfill`), in one transaction with the new PRAGMA user_version.
struct Migration final {
  int version;                 // the version this step brings the file to
  std::string_view sql;        // "" when only the version changes
  std::string_view creating;   // context of `sql` in a new file
  std::string_view adding;     // context of `sql` when migrating
  absl::Status (*backfill)(Connection& db);  // or nullptr
};
constexpr Migration kMigrations[] = {
    {2, kSchemaV2, "creating the schema", "", nullptr},
    {3, kFederationTables, "creating the federation tables", "adding the federation tables", nullptr},
    {4, kResolutionTables, "creating the resolution tables", "adding the resolution tables", BackfillVersion4},
    // Version 5 writes path records with a checksum (format 3); the format-2 records of version 4 stay
    // readable, so only the version changes (an older attestd then refuses the file instead of
    // calling its new records corrupt).
    {5, "", "", "", nullptr},
    // Entries replicated before version 6 are not kept (documented in docs/federation.md).
    {6, kPeerEntriesTable, "creating the peer entries table", "adding the peer entries table", nullptr},
    // Derivations are new in version 7: nothing to backfill (their counters start at zero).
    {7, kDerivationTables, "creating the derivation tables", "adding the derivation tables", nullptr},
    // Nodes before version 8 adopted no policy update: the chain starts empty.
    {8, kPolicyTables, "creating the policy chain tables", "adding the policy chain tables", nullptr},
    // Realisations are new in version 9: nothing to backfill (their counters start at zero).
    {9, kRealisationTables, "creating the realisation tables", "adding the realisation tables", nullptr},
    // Disputes about derivation outputs are new in version 10: the rows copied are all about paths.
    // Disputes about derivation outputs are new in version 10: the rows copied are all about paths.
    {10, kDisputeSubjects, "creating the disputes table", "letting disputes be about derivation outputs", nullptr},
    // Realisations as one record per key, converted from the rows by the backfill.
    {11, kRealisationRecords, "creating the realisation records", "storing realisations as one record per key",
     BackfillVersion11},
};
static_assert(std::size(kMigrations) == kSqliteSchemaVersion - 1);

// Brings a version-2..10 file to kSqliteSchemaVersion (inside the caller's transaction).
absl::Status Migrate(Connection& db, int64_t from_version) {
  for (const Migration& step : kMigrations) {
    if (step.version <= from_version) continue;
    if (!step.sql.empty()) {
      if (absl::Status status = db.Execute(step.sql, step.adding); !status.ok()) return status;
    }
    if (step.backfill != nullptr) {
      if (absl::Status status = step.backfill(db); !status.ok()) return status;
    }
  }
  return db.Execute(consensus::Cat("PRAGMA user_version = ", kSqliteSchemaVersion), "recording the schema version");
}

// Creates every table of kSqliteSchemaVersion in an empty file (inside the caller's transaction).
absl::Status Create(Connection& db) {
  for (const Migration& step : kMigrations) {
    if (!step.sql.empty()) {
      if (absl::Status status = db.Execute(step.sql, step.creating); !status.ok()) return status;
    }
    // On an empty file a backfill finds nothing to convert; it still finishes its step (version 11's
    // drops the table it converted).
    if (step.backfill != nullptr) {
      if (absl::Status status = step.backfill(db); !status.ok()) return status;
    }
  }
  // PRAGMAs take no parameters; both values are constants of this program.
  return db.Execute(consensus::Cat("PRAGMA application_id = ", kSqliteApplicationId, "; PRAGMA user_version = ",
                                   kSqliteSchemaVersion),
                    "recording the schema version");
}

}  // namespace

absl::Status CheckIdentity(Connection& db, const Identity& identity) {
  const auto [application_id, version, objects] = identity;
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

absl::Status CreateOrMigrate(Connection& db) {
  auto tx = Transaction::Begin(db, Transaction::Kind::kWrite);
  if (!tx.ok()) return tx.status();
  // Read again under the write lock: another process may have created the schema meanwhile.
  auto identity = ReadIdentity(db);
  if (!identity.ok()) return identity.status();
  if (absl::Status status = CheckIdentity(db, *identity); !status.ok()) return status;
  if (identity->version == kSqliteSchemaVersion) return absl::OkStatus();
  if (identity->version >= 2) {
    if (absl::Status status = Migrate(db, identity->version); !status.ok()) return status;
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
  if (absl::Status status = Create(db); !status.ok()) return status;
  return tx->Commit();
}

}  // namespace attest::storage::sqlite_store
