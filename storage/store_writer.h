// StoreWriter: the one way into the store. A WriteBatch touches every role at once (the ledger's
// attestations, disputes and resolutions; the transparency log's entries and tiles; the peers'
// cursors, kept entries and refusals) and commits all of it in ONE transaction, so that an
// acknowledged write is in the log, a peer's cursor never runs ahead of what its entries hold, and
// a rolled-back write leaves no trace in any of them. That is why writing is its own small interface
// rather than a method of one role (storage/ledger.h, storage/transparency_log_store.h,
// storage/peer_store.h): those are read sides a consumer can be given without the power to write.
//
// Users: the ingest pipeline (server/ingest.h; replication writes through it) and the log replay of
// `attestd restore`. Thread-safety: Write may be called from any thread; implementations serialise
// writes.
#ifndef ATTEST_STORAGE_STORE_WRITER_H_
#define ATTEST_STORAGE_STORE_WRITER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/resolution.h"
#include "storage/ledger.h"
#include "storage/peer_store.h"

namespace attest::storage {

// A new state for a stored dispute, without a new record (a resolution arrived).
struct DisputeStateUpdate final {
  std::string id;
  consensus::DisputeState state = consensus::DisputeState::kOpen;
};

// What a batch appends to the node's own transparency log, in the same transaction.
enum class LogAppend {
  // Nothing: the batch is stored only (tests, tools).
  kNone,
  // Every attestation of the batch that is inserted (not kAlreadyPresent), in batch order, then every
  // realisation attestation inserted, in batch order, then every dispute record, then every resolution statement inserted: what was submitted to this node.
  kAll,
  // Only the dispute records: a batch replicated from a peer, whose attestations are stored with
  // their origin and never appended again, but whose dispute records this node made itself.
  kDisputesOnly,
};

// One atomic write: all of it is stored, or none of it.
struct WriteBatch final {
  std::vector<StoredAttestation> attestations;
  // Realisation attestations; stored, logged (LogAppend::kAll: one realisation entry each, after the
  // attestations' entries) and answered like attestations.
  std::vector<StoredRealisation> realisations;
  // Insert or replace by id; opened_unix of an existing dispute is kept.
  std::vector<StoredDispute> disputes;
  // Stored once per signed note (a statement already present is left as it is). Appended to the
  // log after the dispute records with LogAppend::kAll (a statement submitted here).
  std::vector<StoredResolution> resolutions;
  // Applied after `disputes`; an id the store does not hold is ignored.
  std::vector<DisputeStateUpdate> dispute_states;
  LogAppend log_append = LogAppend::kNone;
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

class StoreWriter {
 public:
  virtual ~StoreWriter() = default;

  // Stores the batch atomically; when it returns OK the batch is durable (survives kill -9).
  // An attestation already present (same path, fingerprint and key name) is not stored again and
  // reported kAlreadyPresent; its first metadata is kept, and its received time becomes the batch's
  // when that is earlier (the earliest receipt any log shows, which decides a retired key's cut-off
  // alike on every node: docs/policy.md). The same for a realisation attestation (same key,
  // fingerprint and key name). One outcome per attestation, in order, then one per realisation.
  // UNAVAILABLE when the database is busy past the retry bound; DATA_LOSS / INTERNAL on corruption.
  virtual absl::StatusOr<std::vector<WriteOutcome>> Write(const WriteBatch& batch) = 0;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_STORE_WRITER_H_
