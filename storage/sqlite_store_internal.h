// Private to storage/: what the files of SqliteAttestationStore share. The store is one class split
// by table family, each in its own file:
//   sqlite_attestation_store.cc       opening, the write transaction, the reader pool, WAL checkpoints
//   sqlite_store_schema.cc            the schema and its migrations, as a table of versions
//   sqlite_store_paths.cc             store paths and their records, dictionaries, counters (the ledger)
//   sqlite_store_disputes.cc          disputes and resolutions
//   sqlite_store_transparency_log.cc  the node's log: entries, tiles, checkpoints
//   sqlite_store_peers.cc             followed peers: progress, kept entries, refusals, fork evidence
//   sqlite_store_derivations.cc       derivations: their files, input derivations and output index
//   sqlite_store_policies.cc          the chain of adopted policies and their approvals
//   sqlite_store_realisations.cc      realisation attestations of content-addressed derivation outputs
// The Writer (one connection, all writes) and the Reader (one pooled read-only connection) are
// declared here with their statements grouped by family; each family prepares its own statements.
// No header outside storage/ includes this one.
#ifndef ATTEST_STORAGE_SQLITE_STORE_INTERNAL_H_
#define ATTEST_STORAGE_SQLITE_STORE_INTERNAL_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/realisation.h"
#include "consensus/store_path.h"
#include "storage/log_tree.h"
#include "storage/path_record.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::storage::sqlite_store {

using sqlite::Connection;
using sqlite::Statement;

// ---- Encodings (sqlite_store_paths.cc) ----

inline constexpr size_t kPathHashBytes = 20;
inline constexpr size_t kHashHeadBytes = 8;
inline constexpr size_t kHashTailBytes = kPathHashBytes - kHashHeadBytes;
using PathHashBytes = std::array<uint8_t, kPathHashBytes>;

absl::StatusOr<PathHashBytes> PathHash(const consensus::StorePath& path);
int64_t HashHead(const PathHashBytes& hash);
std::span<const uint8_t> HashTail(const PathHashBytes& hash);
// A store path from its row in `paths`; DATA_LOSS naming `file` when the row does not make one.
absl::StatusOr<consensus::StorePath> PathFromRow(int64_t head, std::span<const uint8_t> tail,
                                                 std::string_view name, const std::string& file);

// Per-key attestation counters are rows "key:<key name>" of `counters`; ';' sorts right after ':'.
inline constexpr std::string_view kKeyCounterPrefix = "key:";
inline constexpr std::string_view kKeyCounterEnd = "key;";

// Dispute operators as stored: "\n"-separated, with a "\n" before the first and after the last, so a
// filter matches whole names with instr() (sqlite_store_disputes.cc).
std::string JoinOperators(const std::vector<std::string>& operators);

// DATA_LOSS: "database file <file> is corrupt or not an attest database (<what>): restore from a
// replica or backup" (sqlite_attestation_store.cc).
absl::Status Corrupt(const std::string& file, std::string_view what);

// The row id of a realisation key's record: the first 8 bytes of SHA-256("attest/realisation-key/v1\n" +
// key), as a positive integer. Rows are looked up by it, as paths' rows by their ids, so a read compares
// integers, not 80-byte keys; the row keeps the key text, and a different key under the same id
// (about one in 2^63) is refused, never mixed up.
int64_t RealisationRowId(std::string_view key);

// A deriver as a signature of a record stores it (storage/path_record.h): the 20 hash bytes of the
// .drv, then its name when it is not the one Nix implies for output `output_name` of `path`.
// INVALID_ARGUMENT when `deriver` is not a store path.
absl::StatusOr<std::vector<uint8_t>> EncodeDeriver(std::string_view deriver, const consensus::StorePath& path,
                                                   std::string_view output_name);
// The deriver's full store path back; DATA_LOSS (naming `file`) for a blob shorter than a hash.
absl::StatusOr<std::string> DecodeDeriver(std::span<const uint8_t> blob, const consensus::StorePath& path,
                                          std::string_view output_name, const std::string& file);

inline std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view Chars(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// ---- Batched lookups ----
// One statement execution costs far more than one more row, so paths, claims and references are
// looked up kChunk at a time with `IN (?, ?, ...)`; a short last chunk binds NULL, which matches
// nothing.

inline constexpr int kChunk = 100;

// "<sql_prefix> IN (?, ?, ...)" with kChunk parameters.
std::string InList(std::string_view sql_prefix);

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

// One statement to prepare: where it goes and its SQL.
struct StatementSql final {
  std::unique_ptr<Statement>* statement;
  std::string sql;
};
absl::Status PrepareStatements(Connection& db, std::initializer_list<StatementSql> all);

// ---- Schema (sqlite_store_schema.cc) ----

// Path rows are ~600 bytes: on 4 KiB pages the unused tail of each page is ~6% of the file, on 8 KiB
// pages ~3%. Larger pages save little more and make every read copy more (status_bench).
inline constexpr int kPageSizeBytes = 8192;

struct Identity final {
  int64_t application_id;
  int64_t version;
  int64_t objects;
};
// The file's application id, schema version and number of schema objects. A file that is not SQLite
// fails here (DATA_LOSS).
absl::StatusOr<Identity> ReadIdentity(Connection& db);
// FAILED_PRECONDITION for another application's database or a newer schema; DATA_LOSS for a
// negative version.
absl::Status CheckIdentity(Connection& db, const Identity& identity);
// Creates the schema in an empty file, or brings an older one to kSqliteSchemaVersion, in one
// transaction.
absl::Status CreateOrMigrate(Connection& db);

}  // namespace attest::storage::sqlite_store

namespace attest::storage {

// A reader's id -> value dictionaries. Each reader keeps its own (they are small, and a status read
// looks several up per attestation, which should not take a lock each time).
struct SqliteAttestationStore::Lookups {
  absl::flat_hash_map<int64_t, std::string> key_names;
  absl::flat_hash_map<int64_t, std::array<uint8_t, 32>> observed_keys;
  absl::flat_hash_map<int64_t, std::string> labels;
};

// The one connection that writes, with its statements and name -> id dictionaries. Used under the
// store's write mutex only.
class SqliteAttestationStore::Writer {
 public:
  using Connection = sqlite::Connection;
  using Statement = sqlite::Statement;

  static absl::StatusOr<std::unique_ptr<Writer>> Create(std::unique_ptr<Connection> db);

  Connection& connection() { return *db_; }

  // One transaction. On failure nothing of the batch is stored; call ForgetUncommitted().
  absl::StatusOr<std::vector<WriteOutcome>> WriteOnce(const WriteBatch& batch);
  // After a rollback, ids handed out during the transaction no longer exist.
  void ForgetUncommitted();

  // The log (sqlite_store_transparency_log.cc).
  // The log as of the last commit.
  LogHead log_head() const { return LogHead{.size = committed_log_.size(), .root = committed_log_.Root()}; }
  absl::Status StoreCheckpoint(const StoredCheckpoint& checkpoint);

  // Peers (sqlite_store_peers.cc).
  absl::StatusOr<std::optional<PeerProgress>> GetPeerProgress(const std::string& peer);
  absl::StatusOr<std::vector<RejectedEntry>> RecentRejectedEntries(const std::string& peer, int limit);
  absl::StatusOr<int64_t> CountRejectedEntries(const std::string& peer);
  absl::Status StoreForkEvidence(const ForkEvidence& evidence);
  absl::StatusOr<std::vector<ForkEvidence>> ListForkEvidence();

  // Derivations (sqlite_store_derivations.cc). One transaction; on failure nothing is stored.
  absl::StatusOr<std::vector<WriteOutcome>> PutDerivations(std::span<const StoredDerivation> derivations);

  // The policy chain (sqlite_store_policies.cc). PutPolicyLink is one transaction; on failure nothing
  // is stored (call ForgetUncommitted()). PolicyChain reads one snapshot.
  absl::Status PutPolicyLink(const StoredPolicyLink& link);
  absl::StatusOr<std::vector<StoredPolicyLink>> PolicyChain();

 private:
  // A store path the batch writes to: its row (id 0 until inserted) and record.
  struct PathRow {
    const consensus::StorePath* path = nullptr;
    sqlite_store::PathHashBytes hash{};
    int64_t id = 0;
    PathRecord record;
    size_t stored_signatures = 0;  // in the row before this batch
    bool changed = false;
  };
  // Get-or-insert in a small dictionary table.
  enum class ValueType { kText, kBlob };

  explicit Writer(std::unique_ptr<Connection> db) : db_(std::move(db)) {}

  // Paths, dictionaries and counters (sqlite_store_paths.cc).
  absl::Status PreparePathsStatements();
  // Fills paths_ for `paths` with their stored rows, if any.
  absl::Status LoadPaths(std::span<const consensus::StorePath* const> paths);
  absl::StatusOr<int64_t> DictionaryId(absl::flat_hash_map<std::string, int64_t>& cache,
                                       Statement& find, Statement& insert, std::string_view value,
                                       ValueType type, std::string_view context);
  // 0 (none) for an empty label.
  absl::StatusOr<int64_t> LabelId(std::string_view text);
  absl::StatusOr<WriteOutcome> AddAttestation(const StoredAttestation& stored);
  // Writes every changed record back (and rows for dispute paths that have none yet); counts the
  // paths that got their first attestation.
  absl::Status StoreChangedPaths(int64_t& new_paths);
  absl::Status BumpCounter(std::string_view name, int64_t delta);

  // Disputes and resolutions (sqlite_store_disputes.cc).
  absl::Status PrepareDisputesStatements();
  absl::Status UpsertDispute(const StoredDispute& dispute);
  // Stores the statement unless its note is already held; whether it was inserted.
  absl::StatusOr<bool> InsertResolution(const StoredResolution& resolution);
  absl::Status UpdateDisputeStates(const WriteBatch& batch);

  // The log (sqlite_store_transparency_log.cc).
  absl::Status PrepareLogStatements();
  absl::Status ResumeLog();
  absl::Status AppendLogEntry(std::optional<int64_t> path_id, std::optional<int64_t> signature,
                              std::optional<std::string_view> note, std::string_view entry);
  // Writes the tiles the transaction's appends changed.
  absl::Status StoreChangedTiles();

  // Peers (sqlite_store_peers.cc).
  absl::Status PreparePeersStatements();
  // The progress and the entries it advances over (WriteBatch::peer_entries).
  absl::Status StorePeerProgress(const WriteBatch& batch);
  absl::Status StoreRejectedEntries(const WriteBatch& batch);

  // Derivations (sqlite_store_derivations.cc).
  absl::Status PrepareDerivationsStatements();
  // Inserts one derivation with its inputs and outputs unless its path is held; whether it was.
  absl::StatusOr<bool> InsertDerivation(const StoredDerivation& derivation);

  // The policy chain (sqlite_store_policies.cc).
  absl::Status PreparePoliciesStatements();

  // Realisation attestations (sqlite_store_realisations.cc).
  struct RealisationAdded {
    WriteOutcome outcome = WriteOutcome::kAlreadyPresent;
    bool first_of_key = false;  // the first realisation attestation stored for its key
  };
  absl::Status PrepareRealisationsStatements();
  // Adds one (validated) realisation attestation to its key's record unless it is held, in which case
  // only an earlier received time is taken (store_writer.h). Records are written by
  // StoreChangedRealisations.
  absl::StatusOr<RealisationAdded> AddRealisation(const StoredRealisation& stored);
  // Writes the records AddRealisation changed in this batch.
  absl::Status StoreChangedRealisations();
  // A key's record as this batch grows it.
  struct RealisationRow {
    RealisationRecord record;
    bool changed = false;
  };

  std::unique_ptr<Connection> db_;
  std::unique_ptr<Statement> find_paths_, insert_path_, update_path_, find_key_, insert_key_, find_observed_key_,
      insert_observed_key_, find_label_, insert_label_, bump_counter_;
  std::unique_ptr<Statement> upsert_dispute_, insert_resolution_, set_dispute_state_;
  std::unique_ptr<Statement> insert_log_entry_, put_tile_, get_tile_, find_checkpoint_, insert_checkpoint_;
  std::unique_ptr<Statement> get_peer_, put_peer_, insert_peer_entry_, insert_rejection_, recent_rejections_,
      count_rejections_, insert_fork_, list_forks_;
  std::unique_ptr<Statement> insert_derivation_, insert_derivation_input_, insert_derivation_output_;
  std::unique_ptr<Statement> find_policy_, last_policy_, insert_policy_, insert_policy_approval_, policy_links_,
      policy_approvals_;
  std::unique_ptr<Statement> find_realisation_record_, put_realisation_record_, insert_realisation_out_path_;
  absl::flat_hash_map<std::string, RealisationRow> realisation_rows_;  // by key text; cleared per batch
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

// One read-only connection with its statements; used by one call at a time.
class SqliteAttestationStore::Reader {
 public:
  using Connection = sqlite::Connection;
  using Statement = sqlite::Statement;

  static absl::StatusOr<std::unique_ptr<Reader>> Open(const std::string& path, const SqliteOptions& options,
                                                      PathIdIndex& path_ids);

  // Paths, counters and the integrity checks (sqlite_store_paths.cc).
  absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const consensus::StorePath> paths);
  absl::StatusOr<std::vector<KeyAttestationCount>> AttestationsPerKey();
  absl::StatusOr<StoreStats> Stats();
  // Fills the shared path index up to this reader's snapshot.
  absl::Status LoadPathIndex();
  // Rows of `paths` after `after_id`, up to `limit` of them, each checked as a read would (the store
  // path it names, its record's checksum and structure) and found again through paths_by_hash.
  absl::StatusOr<RecordCheck> CheckPathRecords(int64_t after_id, int limit);
  // PRAGMA quick_check: SQLite's own check of every page, table and index entry (all of the file).
  absl::StatusOr<std::vector<std::string>> QuickCheck();

  // Realisation attestations (sqlite_store_realisations.cc); each call reads one snapshot.
  absl::StatusOr<std::vector<std::vector<StoredRealisation>>> RealisationsFor(
      std::span<const consensus::RealisationKey> keys);
  absl::StatusOr<std::vector<std::string>> RealisationKeysFor(const consensus::StorePath& out_path);

  // Disputes and resolutions (sqlite_store_disputes.cc).
  absl::StatusOr<std::optional<StoredDispute>> GetDispute(const std::string& id);
  absl::StatusOr<std::vector<StoredDispute>> ListDisputes(const DisputeQuery& query);
  absl::StatusOr<int64_t> CountDisputes(const DisputeQuery& query);
  absl::StatusOr<std::vector<StoredResolution>> ResolutionsFor(const std::string& dispute_id);
  absl::StatusOr<std::vector<StoredResolution>> AllResolutions();

  // The log (sqlite_store_transparency_log.cc).
  absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count, uint64_t size);
  absl::StatusOr<std::vector<std::string>> LogTiles(std::span<const consensus::TileId> tiles);
  absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint();

  // Peers (sqlite_store_peers.cc).
  absl::StatusOr<std::vector<std::string>> PeerLogEntries(const std::string& peer, uint64_t first, uint64_t count);

  // Derivations (sqlite_store_derivations.cc); each call reads one snapshot.
  absl::StatusOr<std::vector<bool>> HasDerivations(std::span<const consensus::StorePath> paths);
  absl::StatusOr<std::vector<std::optional<StoredDerivation>>> GetDerivations(
      std::span<const consensus::StorePath> paths);
  absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> DerivationsProducing(
      std::span<const consensus::StorePath> outputs);
  // `hash_part` already validated.
  absl::StatusOr<std::optional<consensus::StorePath>> OutputPathByHashPart(std::string_view hash_part);
  absl::StatusOr<DerivationStats> GetDerivationStats();

 private:
  struct Slot {
    const consensus::StorePath* path;
    sqlite_store::PathHashBytes hash;
    std::vector<StoredAttestation> attestations;
    int uses;  // inputs that asked for this path
  };

  Reader(std::unique_ptr<Connection> db, PathIdIndex& path_ids) : db_(std::move(db)), path_ids_(path_ids) {}

  // Paths (sqlite_store_paths.cc).
  absl::Status PreparePathsStatements();
  // Brings the shared path index up to this reader's snapshot (see PathIdIndex). Call in a read
  // transaction.
  absl::Status SyncPathIds();
  // The ids of the rows that may hold these heads, ascending and distinct; nullopt when the in-memory
  // index cannot be used. Call in a read transaction.
  absl::StatusOr<std::optional<std::vector<int64_t>>> CandidateIds(std::span<const int64_t> heads);
  // The attestation of one signature of `path`'s record, over `claim`.
  absl::StatusOr<StoredAttestation> BuildOne(const consensus::StorePath& path, const RecordSignature& sig,
                                             consensus::PathInfo claim);
  // The attestations of `path`, ordered by (fingerprint, key name).
  absl::StatusOr<std::vector<StoredAttestation>> BuildAttestations(const consensus::StorePath& path,
                                                                   PathRecord record);
  // Looks `id` up in one of this reader's dictionaries, reading and remembering it on a miss. Only
  // ids of committed rows are ever seen here, so a remembered entry never goes stale.
  template <typename Value, typename FromRow>
  absl::StatusOr<Value> Dictionary(absl::flat_hash_map<int64_t, Value>& cache, Statement& statement,
                                   int64_t id, std::string_view what, FromRow from_row);
  absl::StatusOr<std::string> KeyName(int64_t id);
  absl::StatusOr<std::string> Label(int64_t id);
  absl::StatusOr<std::array<uint8_t, 32>> ObservedKey(int64_t id);

  // Disputes (sqlite_store_disputes.cc).
  absl::Status PrepareDisputesStatements();
  absl::StatusOr<std::vector<StoredResolution>> ResolutionRows(Statement::Use& use);
  absl::StatusOr<StoredDispute> DisputeFromRow(const Statement::Use& row);
  absl::StatusOr<StoredResolution> ResolutionFromRow(const Statement::Use& row);

  // Realisation attestations (sqlite_store_realisations.cc).
  absl::Status PrepareRealisationsStatements();
  // The attestations of one row of realisation_records, appended to `out` with each one's fingerprint.
  absl::Status RealisationsOfRecord(std::string_view key, std::span<const uint8_t> blob,
                                    std::vector<std::pair<std::string, StoredRealisation>>& out);

  // The log and peers.
  absl::Status PrepareLogStatements();
  absl::Status PreparePeersStatements();

  // Derivations (sqlite_store_derivations.cc).
  absl::Status PrepareDerivationsStatements();
  // A store path read from a derivation table; DATA_LOSS naming the file when it does not parse.
  absl::StatusOr<consensus::StorePath> StoredPath(std::string_view text, std::string_view what);

  std::unique_ptr<Connection> db_;
  Lookups lookups_;
  PathIdIndex& path_ids_;
  std::unique_ptr<Statement> newest_path_id_, path_ids_after_, all_path_ids_after_, paths_by_head_, paths_by_id_,
      key_name_, observed_key_, label_, counters_, count_disputes_, count_open_disputes_, count_resolutions_,
      key_counters_;
  std::unique_ptr<Statement> dispute_by_id_, disputes_after_, count_matching_disputes_, resolutions_for_,
      all_resolutions_;
  std::unique_ptr<Statement> log_entries_, get_tile_, latest_checkpoint_;
  std::unique_ptr<Statement> peer_entries_;
  std::unique_ptr<Statement> held_derivations_, derivations_by_path_, inputs_by_drv_, outputs_by_drv_,
      producers_by_output_, output_by_hash_range_, derivation_counters_;
  std::unique_ptr<Statement> realisations_by_key_, realisation_keys_by_out_path_;
  // Prepared on first use (only the scrub uses them).
  std::unique_ptr<Statement> check_rows_, check_index_;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_SQLITE_STORE_INTERNAL_H_
