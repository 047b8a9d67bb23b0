// AttestationStore: the node's durable state, behind a small interface.
//
// Holds verified attestations (one per (store path, fingerprint, key name)) and dispute records (one per
// store path, the latest signed version). Implementations: SqliteAttestationStore (the default, one
// file, WAL) and MemoryAttestationStore (tests). Both pass tests/storage/attestation_store_contract.
//
// Thread-safety: every method may be called from any thread; implementations serialise writes.
#ifndef ATTEST_STORAGE_ATTESTATION_STORE_H_
#define ATTEST_STORAGE_ATTESTATION_STORE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/merkle.h"
#include "consensus/resolution.h"
#include "consensus/store_path.h"
#include "consensus/tlog_tiles.h"

namespace attest::storage {

// An attestation as stored: the attestation, when the node received it, and the public key of a key
// that is not in the policy (observed, never counted); empty for policy keys.
struct StoredAttestation final {
  consensus::Attestation attestation;
  int64_t received_unix = 0;
  std::optional<consensus::PublicKey> observed_key;
  // Where the node got it: "" when it was submitted to this node, else the name (log origin) of the
  // peer whose log it was replicated from.
  std::string origin;

  friend bool operator==(const StoredAttestation&, const StoredAttestation&) = default;
};

struct StoredDispute final {
  std::string id;  // consensus::DisputeId(path)
  consensus::StorePath path;
  std::string signed_record;  // the signed note, serialised
  int64_t opened_unix = 0;    // first time the dispute was recorded; kept on updates
  int64_t updated_unix = 0;   // time of this version
  int fingerprint_count = 0;
  // consensus::StateOf the statement in force and the record's fingerprints, kept by the writer
  // (the store does not interpret statements).
  consensus::DisputeState state = consensus::DisputeState::kOpen;
  // The operators on any side of the record, sorted and unique (for filtering).
  std::vector<std::string> operators;

  friend bool operator==(const StoredDispute&, const StoredDispute&) = default;
};

// How far this node has followed one peer's log (server/replication.h). Advanced only in the
// transaction that stores what the entries before `cursor` hold, so a restart resumes exactly.
struct PeerProgress final {
  std::string peer;  // the peer key's name (its log's origin)
  uint64_t cursor = 0;  // entries [0, cursor) of the peer's log are applied
  // consensus::CompactRange(0, cursor) of the peer's tree, as CompactRange::hashes()
  std::vector<consensus::MerkleHash> frontier;
  // The peer's latest checkpoint this node verified (signed note) and its size; the same note with
  // this node's cosignature appended (tlog-cosignature/v1), "" until it cosigned one.
  std::string checkpoint;
  uint64_t checkpoint_size = 0;
  std::string cosigned_checkpoint;

  friend bool operator==(const PeerProgress&, const PeerProgress&) = default;
};

// An entry of a peer's log that this node refused to store (a forged attestation in a validly
// signed log, an entry it cannot parse, ...).
struct RejectedEntry final {
  std::string peer;
  uint64_t index = 0;
  std::string reason;
  std::string entry;  // the entry bytes as served
  int64_t detected_unix = 0;

  friend bool operator==(const RejectedEntry&, const RejectedEntry&) = default;
};

// Two signed checkpoints of one peer that cannot both be true. The first evidence per peer is kept.
struct ForkEvidence final {
  std::string peer;
  std::string first_checkpoint;
  std::string second_checkpoint;
  std::string reason;
  int64_t detected_unix = 0;

  friend bool operator==(const ForkEvidence&, const ForkEvidence&) = default;
};

// A maintainer's resolution statement (consensus/resolution.h), verified before it is stored.
struct StoredResolution final {
  std::string dispute_id;
  std::string signed_note;  // the note, serialised canonically
  consensus::ResolutionOutcome outcome = consensus::ResolutionOutcome::kResolved;
  std::string maintainer;   // the key name whose signature verified
  int64_t time_unix = 0;    // the statement's own time
  int64_t received_unix = 0;
  std::string origin;       // "" when it was submitted to this node, else the peer's name

  friend bool operator==(const StoredResolution&, const StoredResolution&) = default;
};

// A new state for a stored dispute, without a new record (a resolution arrived).
struct DisputeStateUpdate final {
  std::string id;
  consensus::DisputeState state = consensus::DisputeState::kOpen;
};

// One atomic write: all of it is stored, or none of it.
struct WriteBatch final {
  std::vector<StoredAttestation> attestations;
  // Insert or replace by id; opened_unix of an existing dispute is kept.
  std::vector<StoredDispute> disputes;
  // Stored once per signed note (a statement already present is left as it is). Appended to the
  // log after the dispute records when append_to_log is set (a statement submitted here).
  std::vector<StoredResolution> resolutions;
  // Applied after `disputes`; an id the store does not hold is ignored.
  std::vector<DisputeStateUpdate> dispute_states;
  // Append to the node's own log, in the same transaction: every attestation of the batch that is
  // inserted (not kAlreadyPresent), in batch order, then every dispute record. False for what the
  // node replicates from peers (stored with its origin, never appended again).
  bool append_to_log = false;
  // Append the dispute records (not the attestations) to the node's log: a batch replicated from a
  // peer, whose dispute records this node made itself.
  bool append_disputes_to_log = false;
  // Replication: the peer's new progress (its cursor must not be below the stored one:
  // FAILED_PRECONDITION, nothing stored) and the entries refused, in the same transaction.
  std::optional<PeerProgress> peer_progress;
  std::vector<RejectedEntry> rejected_entries;  // kept once per (peer, index)
  // Replication: the peer's entries from the stored cursor up to peer_progress->cursor, verbatim, kept
  // so this node can serve them back if the peer ever loses its database (`attestd restore
  // --from-peers`). Empty, or exactly as many as the cursor advances (else INVALID_ARGUMENT); only
  // with peer_progress.
  std::vector<std::string> peer_entries;
};

enum class WriteOutcome { kInserted = 0, kAlreadyPresent = 1 };

// Disputes are listed open first, then by id: the order of DisputeSortKey.
struct DisputeQuery final {
  // Page after the dispute with this sort key ("" = from the start).
  std::string after_key;
  int limit = 100;
  std::optional<consensus::DisputeState> state;  // only disputes in this state
  std::string name_contains;                      // only paths whose name (after the hash) contains this
  std::string operator_name;                      // only disputes with this operator on a side
};

// "0<id>" for open disputes, "1<id>" for the others.
std::string DisputeSortKey(const StoredDispute& dispute);

// The node's log as the writer keeps it: its size and RFC 6962 root, from one snapshot.
struct LogHead final {
  uint64_t size = 0;
  consensus::MerkleHash root = consensus::EmptyTreeHash();
};

// A checkpoint the node signed (C2SP tlog-checkpoint as a signed note).
struct StoredCheckpoint final {
  uint64_t size = 0;
  consensus::MerkleHash root{};
  std::string note;  // the signed note, serialised
  int64_t signed_unix = 0;

  friend bool operator==(const StoredCheckpoint&, const StoredCheckpoint&) = default;
};

// How many attestations the store holds signed by one key (received here or replicated).
struct KeyAttestationCount final {
  std::string key_name;
  int64_t attestations = 0;

  friend bool operator==(const KeyAttestationCount&, const KeyAttestationCount&) = default;
};

struct StoreStats final {
  int64_t attestations = 0;
  int64_t paths = 0;  // store paths with at least one attestation
  int64_t disputes = 0;
  int64_t open_disputes = 0;
  int64_t resolutions = 0;
};

class AttestationStore {
 public:
  virtual ~AttestationStore() = default;

  // Stores the batch atomically; when it returns OK the batch is durable (survives kill -9).
  // An attestation already present (same path, fingerprint and key name) is not stored again and
  // reported kAlreadyPresent; its first metadata is kept. One outcome per attestation, in order.
  // UNAVAILABLE when the database is busy past the retry bound; DATA_LOSS / INTERNAL on corruption.
  virtual absl::StatusOr<std::vector<WriteOutcome>> Write(const WriteBatch& batch) = 0;

  // Every stored attestation of each path, one vector per input path, in input order. Within a
  // vector, attestations are ordered by (fingerprint, key name).
  virtual absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const consensus::StorePath> paths) = 0;

  virtual absl::StatusOr<std::optional<StoredDispute>> GetDispute(const std::string& id) = 0;
  virtual absl::StatusOr<std::vector<StoredDispute>> ListDisputes(const DisputeQuery& query) = 0;
  // How many disputes match the query's filters (after_key and limit are ignored).
  virtual absl::StatusOr<int64_t> CountDisputes(const DisputeQuery& query) = 0;

  // Every statement about the dispute, oldest first (by time, then signed note).
  virtual absl::StatusOr<std::vector<StoredResolution>> ResolutionsFor(const std::string& dispute_id) = 0;
  // Every statement held, ordered by (dispute id, time, signed note). Statements are few (one per
  // maintainer decision); the node reads them all at start to know which builders are excluded.
  virtual absl::StatusOr<std::vector<StoredResolution>> AllResolutions() = 0;

  virtual absl::StatusOr<StoreStats> Stats() = 0;
  // Attestations per signing key, sorted by key name; kept by every write (no scan).
  virtual absl::StatusOr<std::vector<KeyAttestationCount>> AttestationsPerKey() = 0;

  // --- The node's own transparency log (consensus/log_entry.h entries, tlog-tiles hashes) ---

  virtual absl::StatusOr<LogHead> GetLogHead() = 0;
  // Entries [first, first + count) as their log bytes, rebuilt from what is stored (attestations are
  // not stored twice). OUT_OF_RANGE when the range reaches past the log's size.
  virtual absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count) = 0;
  // The hashes of hash tiles (tile.entries == false), tile.width * 32 bytes each, in order.
  // OUT_OF_RANGE for a tile the log does not hold yet at that width.
  virtual absl::StatusOr<std::vector<std::string>> LogTiles(
      std::span<const consensus::TileId> tiles) = 0;
  // Records a checkpoint the node signed. At most one root per size, ever: ALREADY_EXISTS (storing
  // nothing) when `checkpoint.size` has a stored checkpoint with another root; OK and nothing
  // changes when it has this root. INVALID_ARGUMENT when size exceeds the log's.
  virtual absl::Status StoreCheckpoint(const StoredCheckpoint& checkpoint) = 0;
  // The checkpoint of the largest size, if any.
  virtual absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint() = 0;

  // --- Following peers (server/replication.h) ---

  // The stored progress of `peer`, nullopt before the first write for it.
  virtual absl::StatusOr<std::optional<PeerProgress>> GetPeerProgress(const std::string& peer) = 0;
  // Entries refused from `peer` ("" = all peers), newest first, at most `limit`; and how many in all.
  virtual absl::StatusOr<std::vector<RejectedEntry>> RecentRejectedEntries(const std::string& peer, int limit) = 0;
  virtual absl::StatusOr<int64_t> CountRejectedEntries(const std::string& peer) = 0;
  // Entries [first, first + count) of `peer`'s log as this node kept them (WriteBatch::peer_entries).
  // NOT_FOUND when the store does not hold all of them (past the cursor, or replicated by a version
  // that did not keep entries).
  virtual absl::StatusOr<std::vector<std::string>> PeerLogEntries(const std::string& peer, uint64_t first,
                                                                   uint64_t count) = 0;
  // Keeps the first evidence per peer (OK and nothing changes when the peer already has some).
  virtual absl::Status StoreForkEvidence(const ForkEvidence& evidence) = 0;
  virtual absl::StatusOr<std::vector<ForkEvidence>> ListForkEvidence() = 0;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_ATTESTATION_STORE_H_
