// Ledger: what the node knows, read side: verified attestations, dispute records, maintainers'
// resolution statements and the counters kept over them (statistics). Written only through
// StoreWriter (storage/store_writer.h), in the same transaction as the log and peer cursors.
//
// Users: status answers (server/status_query.h, server/gateway.h), the dispute views and pages, the
// ingest pipeline (what is already stored), the resolution book, node metrics.
// Thread-safety: every method may be called from any thread.
#ifndef ATTEST_STORAGE_LEDGER_H_
#define ATTEST_STORAGE_LEDGER_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/dispute_subject.h"
#include "consensus/keys.h"
#include "consensus/realisation.h"
#include "consensus/resolution.h"
#include "consensus/store_path.h"

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

// A realisation attestation as stored (consensus/realisation.h); the fields as StoredAttestation.
struct StoredRealisation final {
  consensus::RealisationAttestation attestation;
  int64_t received_unix = 0;
  std::optional<consensus::PublicKey> observed_key;
  std::string origin;

  friend bool operator==(const StoredRealisation&, const StoredRealisation&) = default;
};

struct StoredDispute final {
  std::string id;  // consensus::DisputeId(subject)
  consensus::DisputeSubject subject;  // a store path, or a derivation output (realisation key)
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

// Disputes are listed open first, then by id: the order of DisputeSortKey.
struct DisputeQuery final {
  // Page after the dispute with this sort key ("" = from the start).
  std::string after_key;
  int limit = 100;
  std::optional<consensus::DisputeState> state;  // only disputes in this state
  // Only disputes whose subject's name contains this (consensus::DisputeSubject::Name: a path's name
  // after the hash, a realisation key's text).
  std::string name_contains;
  std::string operator_name;                      // only disputes with this operator on a side
};

// "0<id>" for open disputes, "1<id>" for the others.
std::string DisputeSortKey(const StoredDispute& dispute);

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
  int64_t realisations = 0;      // realisation attestations
  int64_t realisation_keys = 0;  // derivation outputs (realisation keys) with at least one
};

class Ledger {
 public:
  virtual ~Ledger() = default;

  // Every stored attestation of each path, one vector per input path, in input order. Within a
  // vector, attestations are ordered by (fingerprint, key name).
  virtual absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const consensus::StorePath> paths) = 0;

  // Every stored realisation attestation of each key, one vector per input key, in input order; within
  // a vector ordered by (fingerprint, key name). Keys are compared in canonical text.
  virtual absl::StatusOr<std::vector<std::vector<StoredRealisation>>> RealisationsFor(
      std::span<const consensus::RealisationKey> keys) = 0;
  // The keys (canonical text, sorted, unique) of every stored realisation attestation whose claim maps
  // to `out_path`: what the gateway asks to learn whether a CA path's realisation is CONFIRMED.
  virtual absl::StatusOr<std::vector<std::string>> RealisationKeysFor(const consensus::StorePath& out_path) = 0;

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
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_LEDGER_H_
