// IngestPlan: what one group commit of the ingest writer writes, decided by a pure function from what
// the store holds and what was verified (server/ingest.h reads, plans, writes, then notifies).
//
// PlanIngest takes the attestations stored for the affected paths (read by the caller before
// planning), the verified new attestations, the maintainers' statements to store (with the stored
// record of each one's dispute), the policy, the statements in force, the node key and the time, and
// returns the storage::WriteBatch (attestations, dispute records, statements and the states they
// give, what goes into this node's log), the per-item decisions and the state-change lines to log.
// Dispute records are signed with the node key; Ed25519 signing is deterministic, so the plan is too.
//
// Pure: no store, no clock, no logging. Thread-compatible (the ResolutionBook it reads is thread-safe).
#ifndef ATTEST_SERVER_INGEST_PLAN_H_
#define ATTEST_SERVER_INGEST_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "consensus/resolution.h"
#include "server/resolution_book.h"
#include "storage/ledger.h"
#include "storage/store_writer.h"

namespace attest::server {

// An attestation whose signature verified (with a builder key of the policy, or, for observation, with
// the key it carries).
struct VerifiedAttestation final {
  consensus::Attestation attestation;
  std::optional<consensus::PublicKey> observed_key;  // set when stored for observation only
  std::string fingerprint;                           // attestation.claim.Fingerprint()
  // Replicated: when the origin's log received it (its entry's `received`), stored instead of this
  // node's time so every node applies a retired key's cut-off alike. Unset: received now.
  std::optional<int64_t> received_unix;
};

// A realisation attestation whose signature verified, as VerifiedAttestation.
struct VerifiedRealisation final {
  consensus::RealisationAttestation attestation;
  std::optional<consensus::PublicKey> observed_key;
  std::string fingerprint;  // attestation.claim.Fingerprint()
  std::optional<int64_t> received_unix;
};

// A maintainer's statement to store, with the stored record of its dispute (read before planning; a
// record the same plan writes takes its place).
struct PlannedStatement final {
  const consensus::VerifiedResolution* statement = nullptr;  // borrowed
  std::string origin;                                        // "" = submitted here, else the peer
  std::optional<storage::StoredDispute> stored_dispute;
};

struct IngestPlanInput final {
  const consensus::Policy* policy = nullptr;
  const consensus::SecretKey* node_key = nullptr;  // signs the dispute records
  // Builders excluded from tallies and the statements in force; null: none.
  const ResolutionBook* resolutions = nullptr;
  int64_t now_unix = 0;  // received time of new attestations, time of dispute records and statements
  // Replicated from this peer (its origin; nothing but dispute records goes into this node's log);
  // empty: submitted to this node (everything is logged).
  std::string peer;
  // The verified new attestations, in order (borrowed); the same attestation twice counts once.
  std::span<const VerifiedAttestation* const> items;
  // AffectedPaths(items), and what the store holds for each (parallel).
  std::span<const consensus::StorePath> paths;
  std::span<const std::vector<storage::StoredAttestation>> stored;
  std::span<const PlannedStatement> statements;
  // The verified new realisation attestations, in order (borrowed); AffectedKeys(realisations) and
  // what the store holds for each (parallel). They are stored, logged and disputed like attestations
  // (one dispute per derivation output, consensus/dispute_subject.h).
  std::span<const VerifiedRealisation* const> realisations;
  std::span<const consensus::RealisationKey> keys;
  std::span<const std::vector<storage::StoredRealisation>> stored_realisations;
};

// What the plan decided for one item.
enum class PlannedItem {
  kWrite = 0,           // in batch.attestations (the store may still find it present)
  kAlreadyPresent = 1,  // stored before, or earlier in the same plan: not written again
};

struct IngestPlan final {
  storage::WriteBatch batch;
  std::vector<PlannedItem> items;  // parallel to input.items
  std::vector<size_t> written;     // parallel to batch.attestations: the index in input.items
  std::vector<PlannedItem> realisation_items;  // parallel to input.realisations
  std::vector<size_t> realisations_written;    // parallel to batch.realisations: the index in input.realisations
  // One line per state change ("quorum reached: ...", "dispute opened: ...", a maintainer's statement),
  // to log once the batch is durable.
  std::vector<std::string> state_changes;
};

// The store paths of `items`, each once, in first-seen order: what the caller reads before planning.
std::vector<consensus::StorePath> AffectedPaths(std::span<const VerifiedAttestation* const> items);

// The realisation keys of `realisations`, each once (by canonical text), in first-seen order.
std::vector<consensus::RealisationKey> AffectedKeys(std::span<const VerifiedRealisation* const> realisations);

// Errors: INVALID_ARGUMENT when the input is inconsistent (paths not AffectedPaths(items), stored not
// parallel to paths, the same for keys); INTERNAL when a dispute record cannot be built (a bug); DATA_LOSS when a stored
// dispute record a statement refers to does not parse.
absl::StatusOr<IngestPlan> PlanIngest(const IngestPlanInput& input);

}  // namespace attest::server

#endif  // ATTEST_SERVER_INGEST_PLAN_H_
