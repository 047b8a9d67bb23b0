// Dispute records: the evidence when counted builders disagree about a store path or a derivation
// output's realisation (consensus/dispute_subject.h), signed by the node as a C2SP signed note. There is
// one dispute per subject; its id is derived from the subject alone so every node names it the same way.
//
// Note text (every statement kind the node signs starts with its own header line, so a signature can
// never be replayed as another kind):
//   attest/dispute/v1
//   id <dispute id>
//   path <store path>                            (or: realisation <key>, for a derivation output)
//   policy <policy hash>
//   time <unix seconds the record was made>
//   fingerprint <fingerprint>                    (one block per competing fingerprint, sorted; narinfo
//                                                 fingerprints for a path, realisation ones for a key)
//   attestation <operator> <signature name:base64>   (sorted; one per counted attestation on that side)
//   flagged <builder key name>                   (optional; builders that signed two fingerprints)
//
// Thread-safe.
#ifndef ATTEST_CONSENSUS_DISPUTE_H_
#define ATTEST_CONSENSUS_DISPUTE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/dispute_subject.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "consensus/realisation.h"
#include "consensus/signed_note.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"

namespace attest::consensus {

inline constexpr std::string_view kDisputeHeader = "attest/dispute/v1";

struct DisputeSide final {
  std::string fingerprint;
  struct Entry final {
    std::string operator_name;
    Signature signature;
  };
  std::vector<Entry> entries;  // sorted by (operator, signature text)
};

struct DisputeRecord final {
  std::string id;  // DisputeId(subject)
  DisputeSubject subject;
  std::string policy_hash;
  int64_t time_unix = 0;
  std::vector<DisputeSide> sides;  // sorted by fingerprint; at least two
  std::vector<std::string> flagged_builders;

  std::string ToNoteText() const;
  // Strict parser of ToNoteText()'s output. INVALID_ARGUMENT on anything else.
  static absl::StatusOr<DisputeRecord> FromNoteText(std::string_view text);
  // The record a serialised signed note carries (SignedNote::Parse, then FromNoteText); the
  // signature is not checked. INVALID_ARGUMENT as the two.
  static absl::StatusOr<DisputeRecord> FromSignedNote(std::string_view signed_note);
};

// Builds the record for a DISPUTED tally of `attestations` (all about `path`). FAILED_PRECONDITION when
// the tally is not DISPUTED; INVALID_ARGUMENT when the tally does not match the attestations.
absl::StatusOr<DisputeRecord> MakeDisputeRecord(const Policy& policy, const StorePath& path,
                                                std::span<const Attestation* const> attestations,
                                                const TallyResult& tally, int64_t now_unix);
// The same over attestations held by value.
absl::StatusOr<DisputeRecord> MakeDisputeRecord(const Policy& policy, const StorePath& path,
                                                std::span<const Attestation> attestations,
                                                const TallyResult& tally, int64_t now_unix);

// The same for a DISPUTED realisation tally (consensus::TallyRealisation) of one derivation output.
absl::StatusOr<DisputeRecord> MakeDisputeRecord(const Policy& policy, const RealisationKey& key,
                                                std::span<const RealisationAttestation* const> attestations,
                                                const TallyResult& tally, int64_t now_unix);

// Checks the record as evidence against `policy` (the record of a peer, or one read back from
// storage): every signature is by a builder key of the policy, belongs to the operator named next to
// it, and verifies over its side's fingerprint; the sides and flagged builders are consistent.
// FAILED_PRECONDITION when the record names another policy hash; UNAUTHENTICATED for a key outside
// the policy or a signature that does not verify; INVALID_ARGUMENT for any other inconsistency.
absl::Status VerifyDisputeEvidence(const DisputeRecord& record, const Policy& policy);

// Signs the record as a note with the node key.
SignedNote SignDisputeRecord(const DisputeRecord& record, const SecretKey& node_key);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_DISPUTE_H_
