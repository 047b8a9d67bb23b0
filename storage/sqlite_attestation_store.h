// SqliteAttestationStore: the node's default AttestationStore, one SQLite file in WAL mode.
//
// Durability: synchronous=FULL, so a Write that returned OK survives kill -9 and power loss.
// Schema: versioned with PRAGMA user_version and marked with PRAGMA application_id; see
// docs/storage.md for the tables and why they look the way they do (~170 bytes per attestation).
//
// Implementation: storage/sqlite_attestation_store.cc (opening, the write transaction, the reader pool)
// and one file per table family, listed in storage/sqlite_store_internal.h (private to storage/).
//
// Thread-safety: all methods may be called concurrently. Writes are serialised on one connection;
// reads run on a small pool of reader connections, each in its own snapshot, concurrently with
// writes (WAL). One process should own a database file; other processes that write to it make this
// one's writes wait (busy_timeout) and eventually fail with UNAVAILABLE.
#ifndef ATTEST_STORAGE_SQLITE_ATTESTATION_STORE_H_
#define ATTEST_STORAGE_SQLITE_ATTESTATION_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/attestation_store.h"
#include "storage/path_id_index.h"

namespace attest::storage {

struct SqliteOptions final {
  // How long one SQLite call waits for a lock held by another connection or process.
  absl::Duration busy_timeout = absl::Seconds(5);
  // How many more times a Write or read is attempted after the busy timeout expired; then UNAVAILABLE.
  int busy_retries = 2;
  // Most reader connections open at once (concurrent AttestationsFor / GetDispute / ... calls).
  int max_readers = 4;
  // Page cache of the writing connection, in KiB (PRAGMA cache_size). Ingest touches random pages
  // of the path index, so this matters for write speed on large databases.
  int64_t writer_cache_kib = 64 * 1024;
  // Page cache of each reader connection, in KiB.
  int64_t reader_cache_kib = 8 * 1024;
  // Memory-mapped reads (PRAGMA mmap_size), in bytes; 0 (the default) turns them off. Off, because
  // every reader connection maps the file separately and each mapped page counts toward attestd's
  // resident memory: on a 10M-attestation database (1.7 GB) 4 GiB of mmap made RSS reach 3 GB with
  // no gain in status latency (status_bench: 81 ms with, 86 ms without).
  int64_t mmap_bytes = 0;
  // WAL size (pages) at which a background thread copies it back into the database file. At four
  // times this size the writer does so itself, waiting for readers, so the WAL stays bounded.
  int checkpoint_pages = 2000;
  // Most memory for the in-memory index from hash heads to path rows (storage/path_id_index.h), which
  // saves status reads one B-tree descent per path; about 10 bytes per stored path. When the database
  // outgrows it, reads fall back to SQLite's index. 0 turns it off.
  size_t path_index_max_bytes = size_t{256} << 20;
};

// The schema version this build reads and writes (PRAGMA user_version).
inline constexpr int kSqliteSchemaVersion = 11;
// PRAGMA application_id of an attest database: "atst".
inline constexpr int32_t kSqliteApplicationId = 0x61747374;

class SqliteAttestationStore final : public AttestationStore {
 public:
  // Opens (creating when absent, with its schema) the database at `path`.
  //   NOT_FOUND            the directory of `path` does not exist
  //   FAILED_PRECONDITION  the file cannot be opened or written (permissions, read-only, a directory);
  //                        it is another application's SQLite database; or its schema is newer than
  //                        this build ("database schema version N is newer than this attestd supports
  //                        (M): upgrade attestd")
  //   DATA_LOSS            the file is not an SQLite database or is corrupt
  //   UNAVAILABLE          another process kept it locked past the retries
  // An older schema is migrated in place, in one transaction.
  static absl::StatusOr<std::unique_ptr<SqliteAttestationStore>> Open(const std::string& path,
                                                                       const SqliteOptions& options);
  ~SqliteAttestationStore() override;

  // --- StoreWriter (storage/store_writer.h) ---
  // INVALID_ARGUMENT (storing nothing) when an item fails ValidateStoredAttestation /
  // ValidateStoredRealisation / ValidateStoredDispute; UNAVAILABLE when busy past the retries;
  // DATA_LOSS on corruption; FAILED_PRECONDITION when the file became read-only; RESOURCE_EXHAUSTED
  // when the disk is full.
  absl::StatusOr<std::vector<WriteOutcome>> Write(const WriteBatch& batch) override;
  // --- Ledger (storage/ledger.h) ---
  // All paths are read in one snapshot.
  absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const consensus::StorePath> paths) override;
  // All keys are read in one snapshot.
  absl::StatusOr<std::vector<std::vector<StoredRealisation>>> RealisationsFor(
      std::span<const consensus::RealisationKey> keys) override;
  absl::StatusOr<std::vector<std::string>> RealisationKeysFor(const consensus::StorePath& out_path) override;
  absl::StatusOr<std::optional<StoredDispute>> GetDispute(const std::string& id) override;
  // INVALID_ARGUMENT when query.limit < 1.
  absl::StatusOr<std::vector<StoredDispute>> ListDisputes(const DisputeQuery& query) override;
  absl::StatusOr<int64_t> CountDisputes(const DisputeQuery& query) override;
  absl::StatusOr<std::vector<StoredResolution>> ResolutionsFor(const std::string& dispute_id) override;
  absl::StatusOr<std::vector<StoredResolution>> AllResolutions() override;
  absl::StatusOr<StoreStats> Stats() override;
  absl::StatusOr<std::vector<KeyAttestationCount>> AttestationsPerKey() override;

  // Integrity checks for the scrub and `attestd --check-database` (not part of AttestationStore: what
  // they check is how SQLite holds the data).
  struct RecordCheck final {
    int64_t rows = 0;     // rows checked
    int64_t last_id = 0;  // the last row checked (the next call starts after it); after_id when none
    std::vector<std::string> problems;  // each names the row, its path when known, and what is wrong
  };
  // Checks up to `limit` rows of `paths` after row id `after_id` (in id order, one read snapshot) as
  // every read would (the path the row names, its record's checksum and structure), and that the
  // index on hash heads finds each row. Problems are returned, not errors; errors are the store's
  // (UNAVAILABLE, ...).
  absl::StatusOr<RecordCheck> CheckPathRecords(int64_t after_id, int limit);
  // SQLite's PRAGMA quick_check over the whole file: each problem it reports, empty when none.
  absl::StatusOr<std::vector<std::string>> QuickCheck();

  // --- TransparencyLogStore (storage/transparency_log_store.h) ---
  absl::StatusOr<LogHead> GetLogHead() override;
  absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count) override;
  absl::StatusOr<std::vector<std::string>> LogTiles(std::span<const consensus::TileId> tiles) override;
  absl::Status StoreCheckpoint(const StoredCheckpoint& checkpoint) override;
  absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint() override;
  // --- PeerStore (storage/peer_store.h) ---
  absl::StatusOr<std::optional<PeerProgress>> GetPeerProgress(const std::string& peer) override;
  absl::StatusOr<std::vector<RejectedEntry>> RecentRejectedEntries(const std::string& peer, int limit) override;
  absl::StatusOr<int64_t> CountRejectedEntries(const std::string& peer) override;
  absl::StatusOr<std::vector<std::string>> PeerLogEntries(const std::string& peer, uint64_t first,
                                                          uint64_t count) override;
  absl::Status StoreForkEvidence(const ForkEvidence& evidence) override;
  absl::StatusOr<std::vector<ForkEvidence>> ListForkEvidence() override;
  // --- DerivationStore (storage/derivation_store.h) ---
  // One write transaction per call on the writer connection (serialised with Write); reads on the
  // reader pool, each call in one snapshot. FAILED_PRECONDITION when the file became read-only.
  absl::StatusOr<std::vector<WriteOutcome>> PutDerivations(std::span<const StoredDerivation> derivations) override;
  absl::StatusOr<std::vector<bool>> HasDerivations(std::span<const consensus::StorePath> paths) override;
  absl::StatusOr<std::vector<std::optional<StoredDerivation>>> GetDerivations(
      std::span<const consensus::StorePath> paths) override;
  absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> DerivationsProducing(
      std::span<const consensus::StorePath> outputs) override;
  absl::StatusOr<std::optional<consensus::StorePath>> OutputPathByHashPart(std::string_view hash_part) override;
  absl::StatusOr<DerivationStats> GetDerivationStats() override;
  // --- PolicyStore (storage/policy_store.h) ---
  // One write transaction per call on the writer connection (serialised with Write), holding the link,
  // its approvals and, for a link submitted here, its log entry. FAILED_PRECONDITION also when the file
  // became read-only.
  absl::Status PutPolicyLink(const StoredPolicyLink& link) override;
  absl::StatusOr<std::vector<StoredPolicyLink>> PolicyChain() override;

  const std::string& path() const { return path_; }

 private:
  class Writer;
  class Reader;
  class ReaderLease;
  class Checkpointer;
  struct Lookups;

  SqliteAttestationStore(std::string path, SqliteOptions options, std::unique_ptr<Writer> writer,
                         std::unique_ptr<Checkpointer> checkpointer);
  // Fills the path index from the file (about 0.4 s for 3.3 million paths) so the first reads are fast.
  absl::Status LoadPathIndex();

  // Takes an idle reader (opening one when fewer than max_readers exist), waiting for one otherwise.
  absl::StatusOr<std::unique_ptr<Reader>> AcquireReader();
  void ReleaseReader(std::unique_ptr<Reader> reader);

  const std::string path_;
  const SqliteOptions options_;

  absl::Mutex write_mu_;
  const std::unique_ptr<Writer> writer_ ABSL_PT_GUARDED_BY(write_mu_);

  absl::Mutex pool_mu_;
  std::vector<std::unique_ptr<Reader>> idle_readers_ ABSL_GUARDED_BY(pool_mu_);
  int open_readers_ ABSL_GUARDED_BY(pool_mu_) = 0;

  // Hash head -> path row ids, shared by the readers, which bring it up to their snapshots.
  const std::unique_ptr<PathIdIndex> path_ids_;

  // Declared last: stopped first, before the connections it works on close.
  const std::unique_ptr<Checkpointer> checkpointer_;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_SQLITE_ATTESTATION_STORE_H_
