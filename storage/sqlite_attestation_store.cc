#include "storage/sqlite_attestation_store.h"

#include <algorithm>
#include <cstdlib>  // EXPERIMENT-REMOVE
#include <array>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "consensus/encoding.h"
#include "storage/batch_validation.h"
#include "storage/sqlite.h"

namespace attest::storage {
namespace {

using consensus::StorePath;
using sqlite::Connection;
using sqlite::Statement;
using sqlite::Transaction;

constexpr size_t kPathHashBytes = 20;

// Schema version 1. See storage/README.md for the reasoning; in short: every store path is stored
// once (20 raw hash bytes + name) and referenced by a small integer id; a claim (the signed
// fingerprint) is stored once per distinct (path, nar hash, nar size, references) and numbered per
// path; one row per signature, clustered by path so that the attestations of a path are one range
// scan. Short repeated strings (key names, systems, output names) live in dictionaries.
constexpr std::string_view kSchemaV1 = R"sql(
CREATE TABLE paths (
  id INTEGER PRIMARY KEY,
  hash BLOB NOT NULL,          -- the 32-character nix32 hash part, decoded: 20 bytes
  name TEXT NOT NULL
) STRICT;
-- Not UNIQUE: the writer matches (hash, name) itself, so that a path sharing another's hash part
-- (never in practice) cannot squat on it, without paying for the name in the index.
CREATE INDEX paths_by_hash ON paths(hash);

CREATE TABLE claims (
  path_id INTEGER NOT NULL REFERENCES paths(id),
  seq INTEGER NOT NULL,        -- 0, 1, ... per path, in order of arrival
  nar_hash BLOB NOT NULL,      -- 32 bytes
  nar_size INTEGER NOT NULL,
  refs BLOB NOT NULL,          -- LEB128 varints of paths.id, in the claim's (sorted) order
  PRIMARY KEY (path_id, seq)
) STRICT, WITHOUT ROWID;

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

CREATE TABLE signatures (
  path_id INTEGER NOT NULL,
  claim_seq INTEGER NOT NULL,
  key_id INTEGER NOT NULL REFERENCES keys(id),
  sig BLOB NOT NULL,           -- 64 bytes, Ed25519
  received INTEGER NOT NULL,   -- unix seconds
  observed_key_id INTEGER REFERENCES observed_keys(id),  -- NULL for policy keys
  deriver BLOB,                -- 20 hash bytes [+ name when not the one implied by path and output]
  output_id INTEGER REFERENCES labels(id),
  system_id INTEGER REFERENCES labels(id),
  build_kind INTEGER NOT NULL,
  build_time INTEGER NOT NULL,
  PRIMARY KEY (path_id, claim_seq, key_id),
  FOREIGN KEY (path_id, claim_seq) REFERENCES claims(path_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE disputes (
  id TEXT PRIMARY KEY,
  path_id INTEGER NOT NULL REFERENCES paths(id),
  signed_record TEXT NOT NULL,
  opened INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  fingerprint_count INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Maintained by every write, so that Stats() does not count millions of rows.
CREATE TABLE counters (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO counters(name, value) VALUES ('attestations', 0), ('paths', 0);
)sql";

// kMigrations[v] brings a database at user_version v to v + 1; version 0 is an empty file.
constexpr std::string_view kMigrations[] = {kSchemaV1};
static_assert(std::size(kMigrations) == kSqliteSchemaVersion);

// ---------------------------------------------------------------------------------------------
// Encodings

void AppendVarint(std::vector<uint8_t>& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

// False on a truncated or overlong varint.
bool ReadVarint(std::span<const uint8_t>& in, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    uint8_t byte = in.front();
    in = in.subspan(1);
    value |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

absl::StatusOr<std::vector<uint8_t>> PathHash(const StorePath& path) {
  auto bytes = consensus::Nix32Decode(path.hash_part(), kPathHashBytes);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        consensus::Cat("store path ", path.full(), " has an undecodable hash part: ",
                     bytes.status().message()));
  }
  return bytes;
}

absl::Status Corrupt(const std::string& file, std::string_view what) {
  return absl::DataLossError(consensus::Cat(
      "database file ", file, " is corrupt or not an attest database (", what,
      "): restore from a replica or backup"));
}

absl::StatusOr<StorePath> PathFromRow(std::span<const uint8_t> hash, std::string_view name,
                                      const std::string& file) {
  if (hash.size() != kPathHashBytes) {
    return Corrupt(file, consensus::Cat("a store path hash of ", hash.size(), " bytes"));
  }
  auto path = StorePath::Parse(
      consensus::Cat(consensus::kStoreDir, "/", consensus::Nix32Encode(hash), "-", name));
  if (!path.ok()) return Corrupt(file, consensus::Cat("bad store path: ", path.status().message()));
  return path;
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
  auto bytes = PathHash(*drv);
  if (!bytes.ok()) return bytes.status();
  if (drv->name() != ImpliedDeriverName(path.name(), output_name)) {
    bytes->insert(bytes->end(), drv->name().begin(), drv->name().end());
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
  auto drv = PathFromRow(blob.first(kPathHashBytes), name, file);
  if (!drv.ok()) return drv.status();
  return drv->full();
}

// Retries `attempt` while it fails with UNAVAILABLE (busy past the busy timeout, or a transient I/O
// error), at most options.busy_retries more times, with a short growing pause.
template <typename Attempt>
auto WithBusyRetries(const SqliteOptions& options, Attempt&& attempt) -> decltype(attempt()) {
  for (int tries = 1;; ++tries) {
    auto result = attempt();
    if (result.ok() || !absl::IsUnavailable(result.status())) return result;
    if (tries > options.busy_retries) {
      return absl::UnavailableError(
          consensus::Cat(result.status().message(), " (gave up after ", tries, " attempts)"));
    }
    absl::SleepFor(absl::Milliseconds(10) * (1 << std::min(tries, 6)));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Shared id -> value dictionaries for readers.

struct SqliteAttestationStore::Lookups {
  absl::Mutex mu;
  absl::flat_hash_map<int64_t, std::string> key_names ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<int64_t, std::array<uint8_t, 32>> observed_keys ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<int64_t, std::string> labels ABSL_GUARDED_BY(mu);
};

// ---------------------------------------------------------------------------------------------
// Writer: the one connection that writes, with its statements and name -> id dictionaries.

class SqliteAttestationStore::Writer {
 public:
  static absl::StatusOr<std::unique_ptr<Writer>> Create(std::unique_ptr<Connection> db) {
    auto writer = std::unique_ptr<Writer>(new Writer(std::move(db)));
    if (absl::Status status = writer->PrepareAll(); !status.ok()) return status;
    return writer;
  }

  // One transaction. On failure nothing of the batch is stored; call ForgetUncommitted().
  absl::StatusOr<std::vector<WriteOutcome>> WriteOnce(const WriteBatch& batch) {
    absl::Time tstart = absl::Now();  // EXPERIMENT-REMOVE
    auto tx = Transaction::Begin(*db_, Transaction::Kind::kWrite);
    if (!tx.ok()) return tx.status();
    batch_path_ids_.clear();

    std::vector<WriteOutcome> outcomes;
    outcomes.reserve(batch.attestations.size());
    int64_t inserted = 0;
    int64_t new_paths = 0;
    for (size_t i = 0; i < batch.attestations.size(); ++i) {
      const StoredAttestation& stored = batch.attestations[i];
      // Validated here rather than up front: it is cheap, and a refused item in the middle of a
      // batch then exercises the rollback that disk-full and I/O errors rely on.
      if (absl::Status status = ValidateStoredAttestation(stored, i, batch.attestations.size());
          !status.ok()) {
        return status;
      }
      auto outcome = InsertAttestation(stored, new_paths);
      if (!outcome.ok()) {
        return absl::Status(outcome.status().code(),
                            consensus::Cat("attestation ", i + 1, " of ", batch.attestations.size(),
                                         ": ", outcome.status().message()));
      }
      if (*outcome == WriteOutcome::kInserted) ++inserted;
      outcomes.push_back(*outcome);
    }
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
    if (absl::Status status = BumpCounter("attestations", inserted); !status.ok()) return status;
    if (absl::Status status = BumpCounter("paths", new_paths); !status.ok()) return status;
    absl::Time t0 = absl::Now();  // EXPERIMENT-REMOVE
    if (absl::Status status = tx->Commit(); !status.ok()) return status;
    if (std::getenv("ATTEST_EXPERIMENT_TIMING")) fprintf(stderr, "loop %.1f ms commit %.1f ms\n", absl::ToDoubleMilliseconds(t0 - tstart), absl::ToDoubleMilliseconds(absl::Now() - t0));  // EXPERIMENT-REMOVE
    return outcomes;
  }

  // After a rollback, ids handed out during the transaction no longer exist.
  void ForgetUncommitted() {
    key_ids_.clear();
    observed_key_ids_.clear();
    label_ids_.clear();
    batch_path_ids_.clear();
  }

 private:
  explicit Writer(std::unique_ptr<Connection> db) : db_(std::move(db)) {}

  absl::Status PrepareAll() {
    struct {
      std::unique_ptr<Statement>* statement;
      std::string_view sql;
    } const all[] = {
        {&find_path_, "SELECT id, name FROM paths WHERE hash = ?"},
        {&insert_path_, "INSERT INTO paths(hash, name) VALUES (?, ?)"},
        {&claims_of_, "SELECT seq, nar_hash, nar_size, refs FROM claims WHERE path_id = ?"},
        {&insert_claim_,
         "INSERT INTO claims(path_id, seq, nar_hash, nar_size, refs) VALUES (?, ?, ?, ?, ?)"},
        {&find_key_, "SELECT id FROM keys WHERE name = ?"},
        {&insert_key_, "INSERT INTO keys(name) VALUES (?)"},
        {&find_observed_key_, "SELECT id FROM observed_keys WHERE public_key = ?"},
        {&insert_observed_key_, "INSERT INTO observed_keys(public_key) VALUES (?)"},
        {&find_label_, "SELECT id FROM labels WHERE text = ?"},
        {&insert_label_, "INSERT INTO labels(text) VALUES (?)"},
        {&insert_signature_,
         "INSERT INTO signatures(path_id, claim_seq, key_id, sig, received, observed_key_id, "
         "deriver, output_id, system_id, build_kind, build_time) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (path_id, claim_seq, key_id) DO NOTHING"},
        {&upsert_dispute_,
         "INSERT INTO disputes(id, path_id, signed_record, opened, updated, fingerprint_count) "
         "VALUES (?, ?, ?, ?, ?, ?) "
         "ON CONFLICT (id) DO UPDATE SET path_id = excluded.path_id, "
         "signed_record = excluded.signed_record, updated = excluded.updated, "
         "fingerprint_count = excluded.fingerprint_count"},
        {&bump_counter_, "UPDATE counters SET value = value + ? WHERE name = ?"},
    };
    for (const auto& [statement, sql] : all) {
      auto prepared = db_->Prepare(sql);
      if (!prepared.ok()) return prepared.status();
      *statement = std::move(*prepared);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> PathId(const StorePath& path) {
    if (auto it = batch_path_ids_.find(path.full()); it != batch_path_ids_.end()) return it->second;
    auto hash = PathHash(path);
    if (!hash.ok()) return hash.status();
    std::optional<int64_t> id;
    {
      auto find = find_path_->Begin("looking up a store path");
      find.BindBlob(*hash);
      while (true) {
        auto row = find.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        if (find.Text(1) == path.name()) {
          id = find.Int(0);
          break;
        }
      }
    }
    if (!id.has_value()) {
      auto insert = insert_path_->Begin("inserting a store path");
      insert.BindBlob(*hash).Bind(path.name());
      if (absl::Status status = insert.Run(); !status.ok()) return status;
      id = db_->LastInsertRowId();
    }
    batch_path_ids_.emplace(path.full(), *id);
    return *id;
  }

  // The seq of the claim of `path_id` with these fields, inserting it when new (then ++new_paths
  // when it is the path's first claim).
  absl::StatusOr<int64_t> ClaimSeq(int64_t path_id, const consensus::PathInfo& claim,
                                   std::span<const uint8_t> refs, int64_t& new_paths) {
    const auto& nar_hash = claim.nar_hash.digest();
    int64_t next_seq = 0;
    {
      auto find = claims_of_->Begin("looking up the claims of a store path");
      find.Bind(path_id);
      while (true) {
        auto row = find.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        int64_t seq = find.Int(0);
        next_seq = std::max(next_seq, seq + 1);
        if (static_cast<uint64_t>(find.Int(2)) == claim.nar_size &&
            std::ranges::equal(find.Blob(1), nar_hash) && std::ranges::equal(find.Blob(3), refs)) {
          return seq;
        }
      }
    }
    auto insert = insert_claim_->Begin("inserting a claim");
    insert.Bind(path_id)
        .Bind(next_seq)
        .BindBlob(nar_hash)
        .Bind(static_cast<int64_t>(claim.nar_size))
        .BindBlob(refs);
    if (absl::Status status = insert.Run(); !status.ok()) return status;
    if (next_seq == 0) ++new_paths;
    return next_seq;
  }

  // Get-or-insert in a small dictionary table.
  absl::StatusOr<int64_t> DictionaryId(absl::flat_hash_map<std::string, int64_t>& cache,
                                       Statement& find, Statement& insert, std::string_view value,
                                       bool is_blob, std::string_view context) {
    if (auto it = cache.find(consensus::AbslView(value)); it != cache.end()) return it->second;
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(value.data()), value.size());
    std::optional<int64_t> id;
    {
      auto use = find.Begin(context);
      if (is_blob) {
        use.BindBlob(bytes);
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
        use.BindBlob(bytes);
      } else {
        use.Bind(value);
      }
      if (absl::Status status = use.Run(); !status.ok()) return status;
      id = db_->LastInsertRowId();
    }
    cache.emplace(std::string(value), *id);
    return *id;
  }

  absl::StatusOr<std::optional<int64_t>> LabelId(std::string_view text) {
    if (text.empty()) return std::nullopt;
    auto id = DictionaryId(label_ids_, *find_label_, *insert_label_, text, /*is_blob=*/false,
                           "storing a label");
    if (!id.ok()) return id.status();
    return *id;
  }

  absl::StatusOr<WriteOutcome> InsertAttestation(const StoredAttestation& stored,
                                                 int64_t& new_paths) {
    const consensus::Attestation& a = stored.attestation;
    const consensus::BuildMetadata& meta = a.metadata;
    auto path_id = PathId(a.claim.path);
    if (!path_id.ok()) return path_id.status();
    std::vector<uint8_t> refs;
    refs.reserve(a.claim.references.size() * 4);
    for (const StorePath& ref : a.claim.references) {
      auto ref_id = PathId(ref);
      if (!ref_id.ok()) return ref_id.status();
      AppendVarint(refs, static_cast<uint64_t>(*ref_id));
    }
    auto seq = ClaimSeq(*path_id, a.claim, refs, new_paths);
    if (!seq.ok()) return seq.status();
    auto key_id = DictionaryId(key_ids_, *find_key_, *insert_key_, a.key_name(), /*is_blob=*/false,
                               "storing a key name");
    if (!key_id.ok()) return key_id.status();
    std::optional<int64_t> observed_key_id;
    if (stored.observed_key.has_value()) {
      const auto& bytes = stored.observed_key->bytes();
      auto id = DictionaryId(observed_key_ids_, *find_observed_key_, *insert_observed_key_,
                             std::string_view(reinterpret_cast<const char*>(bytes.data()),
                                              bytes.size()),
                             /*is_blob=*/true, "storing an observed key");
      if (!id.ok()) return id.status();
      observed_key_id = *id;
    }
    std::optional<std::vector<uint8_t>> deriver;
    if (!meta.deriver.empty()) {
      auto encoded = EncodeDeriver(meta.deriver, a.claim.path, meta.output_name);
      if (!encoded.ok()) return encoded.status();
      deriver = std::move(*encoded);
    }
    auto output_id = LabelId(meta.output_name);
    if (!output_id.ok()) return output_id.status();
    auto system_id = LabelId(meta.system);
    if (!system_id.ok()) return system_id.status();

    auto insert = insert_signature_->Begin("inserting an attestation");
    insert.Bind(*path_id).Bind(*seq).Bind(*key_id).BindBlob(a.signature.bytes).Bind(
        stored.received_unix);
    if (observed_key_id.has_value()) {
      insert.Bind(*observed_key_id);
    } else {
      insert.BindNull();
    }
    if (deriver.has_value()) {
      insert.BindBlob(*deriver);
    } else {
      insert.BindNull();
    }
    for (const std::optional<int64_t>& label : {*output_id, *system_id}) {
      if (label.has_value()) {
        insert.Bind(*label);
      } else {
        insert.BindNull();
      }
    }
    insert.Bind(static_cast<int64_t>(meta.build_kind)).Bind(meta.build_time_unix);
    if (absl::Status status = insert.Run(); !status.ok()) return status;
    return db_->Changes() == 1 ? WriteOutcome::kInserted : WriteOutcome::kAlreadyPresent;
  }

  absl::Status UpsertDispute(const StoredDispute& dispute) {
    auto path_id = PathId(dispute.path);
    if (!path_id.ok()) return path_id.status();
    auto upsert = upsert_dispute_->Begin("storing a dispute");
    upsert.Bind(dispute.id)
        .Bind(*path_id)
        .Bind(dispute.signed_record)
        .Bind(dispute.opened_unix)
        .Bind(dispute.updated_unix)
        .Bind(static_cast<int64_t>(dispute.fingerprint_count));
    return upsert.Run();
  }

  absl::Status BumpCounter(std::string_view name, int64_t delta) {
    if (delta == 0) return absl::OkStatus();
    auto bump = bump_counter_->Begin("updating counters");
    bump.Bind(delta).Bind(name);
    return bump.Run();
  }

  std::unique_ptr<Connection> db_;
  std::unique_ptr<Statement> find_path_, insert_path_, claims_of_, insert_claim_, find_key_,
      insert_key_, find_observed_key_, insert_observed_key_, find_label_, insert_label_,
      insert_signature_, upsert_dispute_, bump_counter_;
  absl::flat_hash_map<std::string, int64_t> key_ids_;
  absl::flat_hash_map<std::string, int64_t> observed_key_ids_;  // by raw key bytes
  absl::flat_hash_map<std::string, int64_t> label_ids_;
  absl::flat_hash_map<std::string, int64_t> batch_path_ids_;  // full path -> id, this transaction
};

// ---------------------------------------------------------------------------------------------
// Reader: one read-only connection with its statements; used by one call at a time.

class SqliteAttestationStore::Reader {
 public:
  static absl::StatusOr<std::unique_ptr<Reader>> Open(const std::string& path,
                                                      const SqliteOptions& options,
                                                      Lookups& lookups) {
    auto db = Connection::Open(path, sqlite::OpenMode::kReadWrite, options.busy_timeout);
    if (!db.ok()) return db.status();
    if (absl::Status status = (*db)->Execute(
            consensus::Cat("PRAGMA query_only = ON; PRAGMA cache_size = -", options.reader_cache_kib,
                           "; PRAGMA mmap_size = ", options.mmap_bytes),
            "configuring a reader");
        !status.ok()) {
      return status;
    }
    auto reader = std::unique_ptr<Reader>(new Reader(std::move(*db), lookups));
    if (absl::Status status = reader->PrepareAll(); !status.ok()) return status;
    return reader;
  }

  absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const StorePath> paths) {
    auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
    if (!tx.ok()) return tx.status();
    path_by_id_.clear();
    std::vector<std::vector<StoredAttestation>> result(paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
      if (absl::Status status = ReadPath(paths[i], result[i]); !status.ok()) return status;
    }
    if (absl::Status status = tx->Commit(); !status.ok()) return status;
    return result;
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
    auto use = disputes_after_->Begin("listing disputes");
    use.Bind(query.after_id).Bind(static_cast<int64_t>(query.limit));
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
    {
      auto use = count_disputes_->Begin("counting disputes");
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (*row) stats.disputes = use.Int(0);
    }
    if (absl::Status status = tx->Commit(); !status.ok()) return status;
    return stats;
  }

 private:
  Reader(std::unique_ptr<Connection> db, Lookups& lookups)
      : db_(std::move(db)), lookups_(lookups) {}

  absl::Status PrepareAll() {
    struct {
      std::unique_ptr<Statement>* statement;
      std::string_view sql;
    } const all[] = {
        {&find_path_, "SELECT id, name FROM paths WHERE hash = ?"},
        {&path_by_id_stmt_, "SELECT hash, name FROM paths WHERE id = ?"},
        {&claims_of_, "SELECT seq, nar_hash, nar_size, refs FROM claims WHERE path_id = ?"},
        {&signatures_of_,
         "SELECT claim_seq, key_id, sig, received, observed_key_id, deriver, output_id, system_id, "
         "build_kind, build_time FROM signatures WHERE path_id = ?"},
        {&key_name_, "SELECT name FROM keys WHERE id = ?"},
        {&observed_key_, "SELECT public_key FROM observed_keys WHERE id = ?"},
        {&label_, "SELECT text FROM labels WHERE id = ?"},
        {&dispute_by_id_,
         "SELECT d.id, p.hash, p.name, d.signed_record, d.opened, d.updated, d.fingerprint_count "
         "FROM disputes d JOIN paths p ON p.id = d.path_id WHERE d.id = ?"},
        {&disputes_after_,
         "SELECT d.id, p.hash, p.name, d.signed_record, d.opened, d.updated, d.fingerprint_count "
         "FROM disputes d JOIN paths p ON p.id = d.path_id WHERE d.id > ? ORDER BY d.id LIMIT ?"},
        {&counters_, "SELECT name, value FROM counters"},
        {&count_disputes_, "SELECT count(*) FROM disputes"},
    };
    for (const auto& [statement, sql] : all) {
      auto prepared = db_->Prepare(sql);
      if (!prepared.ok()) return prepared.status();
      *statement = std::move(*prepared);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<StoredDispute> DisputeFromRow(const Statement::Use& row) {
    auto path = PathFromRow(row.Blob(1), row.Text(2), db_->path());
    if (!path.ok()) return path.status();
    return StoredDispute{.id = std::string(row.Text(0)),
                         .path = std::move(*path),
                         .signed_record = std::string(row.Text(3)),
                         .opened_unix = row.Int(4),
                         .updated_unix = row.Int(5),
                         .fingerprint_count = static_cast<int>(row.Int(6))};
  }

  absl::StatusOr<const StorePath*> PathById(int64_t id) {
    if (auto it = path_by_id_.find(id); it != path_by_id_.end()) return &it->second;
    auto use = path_by_id_stmt_->Begin("reading a referenced store path");
    use.Bind(id);
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) return Corrupt(db_->path(), consensus::Cat("reference to missing path id ", id));
    auto path = PathFromRow(use.Blob(0), use.Text(1), db_->path());
    if (!path.ok()) return path.status();
    return &path_by_id_.emplace(id, std::move(*path)).first->second;
  }

  // Looks `id` up in a shared dictionary, reading and remembering it on a miss.
  template <typename Value, typename FromRow>
  absl::StatusOr<Value> Dictionary(absl::flat_hash_map<int64_t, Value>& cache, Statement& statement,
                                   int64_t id, std::string_view what, FromRow from_row) {
    {
      absl::MutexLock lock(&lookups_.mu);
      if (auto it = cache.find(id); it != cache.end()) return it->second;
    }
    auto use = statement.Begin("reading a dictionary entry");
    use.Bind(id);
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) return Corrupt(db_->path(), consensus::Cat("reference to missing ", what, " ", id));
    auto value = from_row(use);
    if (!value.ok()) return value.status();
    absl::MutexLock lock(&lookups_.mu);
    cache.emplace(id, *value);
    return *value;
  }

  absl::StatusOr<std::string> KeyName(int64_t id) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return Dictionary<std::string>(lookups_.key_names, *key_name_, id, "key",
                                   [](const Statement::Use& row) -> absl::StatusOr<std::string> {
                                     return std::string(row.Text(0));
                                   });
  }

  absl::StatusOr<std::string> Label(int64_t id) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return Dictionary<std::string>(lookups_.labels, *label_, id, "label",
                                   [](const Statement::Use& row) -> absl::StatusOr<std::string> {
                                     return std::string(row.Text(0));
                                   });
  }

  absl::StatusOr<std::array<uint8_t, 32>> ObservedKey(int64_t id) ABSL_NO_THREAD_SAFETY_ANALYSIS {
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

  absl::Status ReadPath(const StorePath& path, std::vector<StoredAttestation>& out) {
    auto hash = PathHash(path);
    if (!hash.ok()) return hash.status();
    std::optional<int64_t> path_id;
    {
      auto find = find_path_->Begin("looking up a store path");
      find.BindBlob(*hash);
      while (true) {
        auto row = find.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        if (find.Text(1) == path.name()) {
          path_id = find.Int(0);
          break;
        }
      }
    }
    if (!path_id.has_value()) return absl::OkStatus();

    struct Claim {
      int64_t seq;
      consensus::PathInfo info;
      std::string fingerprint;
    };
    std::vector<Claim> claims;
    {
      auto use = claims_of_->Begin("reading the claims of a store path");
      use.Bind(*path_id);
      while (true) {
        auto row = use.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        auto nar_hash = use.Blob(1);
        if (nar_hash.size() != 32) {
          return Corrupt(db_->path(), consensus::Cat("a NAR hash of ", nar_hash.size(), " bytes"));
        }
        consensus::NarHash::Digest digest;
        std::ranges::copy(nar_hash, digest.begin());
        std::vector<StorePath> references;
        for (auto refs = use.Blob(3); !refs.empty();) {
          uint64_t ref_id;
          if (!ReadVarint(refs, ref_id)) return Corrupt(db_->path(), "a malformed reference list");
          auto ref = PathById(static_cast<int64_t>(ref_id));
          if (!ref.ok()) return ref.status();
          references.push_back(**ref);
        }
        consensus::PathInfo info{.path = path,
                                 .nar_hash = consensus::NarHash::FromDigest(digest),
                                 .nar_size = static_cast<uint64_t>(use.Int(2)),
                                 .references = std::move(references)};
        std::string fingerprint = info.Fingerprint();
        claims.push_back(
            Claim{.seq = use.Int(0), .info = std::move(info), .fingerprint = std::move(fingerprint)});
      }
    }

    std::vector<std::pair<const Claim*, StoredAttestation>> found;
    {
      auto use = signatures_of_->Begin("reading the attestations of a store path");
      use.Bind(*path_id);
      while (true) {
        auto row = use.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        const int64_t seq = use.Int(0);
        auto claim = std::ranges::find(claims, seq, &Claim::seq);
        if (claim == claims.end()) {
          return Corrupt(db_->path(), consensus::Cat("an attestation of missing claim ", seq));
        }
        auto key_name = KeyName(use.Int(1));
        if (!key_name.ok()) return key_name.status();
        consensus::Signature signature{.key_name = std::move(*key_name)};
        auto sig = use.Blob(2);
        if (sig.size() != signature.bytes.size()) {
          return Corrupt(db_->path(), consensus::Cat("a signature of ", sig.size(), " bytes"));
        }
        std::ranges::copy(sig, signature.bytes.begin());

        consensus::BuildMetadata meta;
        if (!use.IsNull(6)) {
          auto output = Label(use.Int(6));
          if (!output.ok()) return output.status();
          meta.output_name = std::move(*output);
        }
        if (!use.IsNull(7)) {
          auto system = Label(use.Int(7));
          if (!system.ok()) return system.status();
          meta.system = std::move(*system);
        }
        if (!use.IsNull(5)) {
          auto deriver = DecodeDeriver(use.Blob(5), path, meta.output_name, db_->path());
          if (!deriver.ok()) return deriver.status();
          meta.deriver = std::move(*deriver);
        }
        const int64_t kind = use.Int(8);
        if (kind < 0 || kind > static_cast<int64_t>(consensus::BuildKind::kImported)) {
          return Corrupt(db_->path(), consensus::Cat("unknown build kind ", kind));
        }
        meta.build_kind = static_cast<consensus::BuildKind>(kind);
        meta.build_time_unix = use.Int(9);

        std::optional<consensus::PublicKey> observed_key;
        if (!use.IsNull(4)) {
          auto bytes = ObservedKey(use.Int(4));
          if (!bytes.ok()) return bytes.status();
          auto key = consensus::PublicKey::FromBytes(signature.key_name, *bytes);
          if (!key.ok()) {
            return Corrupt(db_->path(),
                           consensus::Cat("an unusable observed key: ", key.status().message()));
          }
          observed_key = std::move(*key);
        }
        const int64_t received = use.Int(3);
        found.emplace_back(
            &*claim, StoredAttestation{.attestation = consensus::Attestation{.claim = claim->info,
                                                                             .signature = std::move(
                                                                                 signature),
                                                                             .metadata = std::move(
                                                                                 meta)},
                                       .received_unix = received,
                                       .observed_key = std::move(observed_key)});
      }
    }
    std::ranges::sort(found, [](const auto& a, const auto& b) {
      if (a.first->fingerprint != b.first->fingerprint) {
        return a.first->fingerprint < b.first->fingerprint;
      }
      return a.second.attestation.key_name() < b.second.attestation.key_name();
    });
    out.reserve(found.size());
    for (auto& [claim, stored] : found) out.push_back(std::move(stored));
    return absl::OkStatus();
  }

  std::unique_ptr<Connection> db_;
  Lookups& lookups_;
  std::unique_ptr<Statement> find_path_, path_by_id_stmt_, claims_of_, signatures_of_, key_name_,
      observed_key_, label_, dispute_by_id_, disputes_after_, counters_, count_disputes_;
  absl::flat_hash_map<int64_t, StorePath> path_by_id_;  // this call's referenced paths
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
  for (int64_t v = identity->version; v < kSqliteSchemaVersion; ++v) {
    if (absl::Status status = db.Execute(kMigrations[v], consensus::Cat("migrating the schema from "
                                                                      "version ",
                                                                      v, " to ", v + 1));
        !status.ok()) {
      return status;
    }
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
      options.reader_cache_kib < 0 || options.mmap_bytes < 0) {
    return absl::InvalidArgumentError(
        "SqliteOptions: max_readers must be >= 1; retries, timeout, cache and mmap sizes >= 0");
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
        if (const char* extra = std::getenv("ATTEST_EXPERIMENT_PRAGMAS")) {  // EXPERIMENT-REMOVE
          if (absl::Status s = (*db)->Execute(extra, "experiment"); !s.ok()) return s;  // EXPERIMENT-REMOVE
        }  // EXPERIMENT-REMOVE
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
        return std::unique_ptr<SqliteAttestationStore>(
            new SqliteAttestationStore(path, options, std::move(*writer)));
      });
}

SqliteAttestationStore::SqliteAttestationStore(std::string path, SqliteOptions options,
                                               std::unique_ptr<Writer> writer)
    : path_(std::move(path)),
      options_(options),
      writer_(std::move(writer)),
      lookups_(std::make_unique<Lookups>()) {}

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
  auto reader = Reader::Open(path_, options_, *lookups_);
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

absl::StatusOr<StoreStats> SqliteAttestationStore::Stats() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->Stats(); });
}

}  // namespace attest::storage
