// The tally: a pure, deterministic function of (policy, attestations of one store path).
//
// Two attestations agree when their fingerprints are byte-identical. Only attestations whose key is a
// builder key of the policy count (not excluded, and Policy::KeyCounts for its lifecycle); the rest are
// returned as uncounted. The quorum is the one of the rule that applies to the path (Policy::RuleFor).
// Verdicts:
//   UNKNOWN    no counted attestation
//   PENDING    one fingerprint whose operators do not satisfy the quorum
//   CONFIRMED  one fingerprint whose operators satisfy it (so no counted builder signed another)
//   DISPUTED   two or more fingerprints signed by counted builders; a builder that signed two
//              fingerprints is flagged and counts for both
// Integer counts only; input order never changes the result.
//
// The tally does NOT verify signatures: callers pass attestations already verified (the node verifies
// at ingest; `attest verify` verifies before tallying). Thread-safe.
#ifndef ATTEST_CONSENSUS_TALLY_H_
#define ATTEST_CONSENSUS_TALLY_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "consensus/attestation.h"
#include "consensus/policy.h"
#include "consensus/realisation.h"

namespace attest::consensus {

enum class Verdict { kUnknown = 0, kPending = 1, kConfirmed = 2, kDisputed = 3 };
std::string_view VerdictName(Verdict verdict);  // "UNKNOWN", "PENDING", "CONFIRMED", "DISPUTED"

struct FingerprintTally final {
  std::string fingerprint;
  std::vector<std::string> operators;     // sorted, unique
  std::vector<std::string> builders;      // key names, sorted, unique
  std::vector<size_t> attestations;       // indices into the input, ascending
};

struct TallyOptions final {
  // Builder keys that no longer count (named in a `malicious` resolution).
  absl::flat_hash_set<std::string> excluded_builders;
};

struct TallyResult final {
  Verdict verdict = Verdict::kUnknown;
  // The rule whose quorum applied (Policy::RuleFor on the subject's name): "default" or the glob that
  // matched, and its index into Policy::rules() (-1 for the default). With no attestation at all
  // there is no subject: "default".
  std::string rule = "default";
  int rule_index = -1;
  // EvaluateQuorum's explanation for the leading fingerprint (empty when there is none): why it is
  // CONFIRMED, or what it still needs when it is PENDING.
  std::string quorum_explanation;
  // Sorted by number of operators (descending), then fingerprint (ascending).
  std::vector<FingerprintTally> fingerprints;
  std::vector<std::string> flagged_builders;  // signed two or more fingerprints; sorted
  std::vector<size_t> uncounted;              // indices of attestations that do not count; ascending
};

// All attestations must be about one store path (INVALID_ARGUMENT-worthy misuse is a programming error:
// attestations of other paths are treated as uncounted).
//
// `received_unix`, when not empty, is parallel to `attestations`: when the federation received each one
// (the earliest `received` time among the logs holding it). It decides whether a retired key's
// attestation counts (Policy::KeyCounts). Empty: unknown for all, so no retired key's attestation
// counts (fail closed). A span of another length is treated as empty.
TallyResult Tally(const Policy& policy, std::span<const Attestation> attestations,
                  const TallyOptions& options = {}, std::span<const int64_t> received_unix = {});
// The same over borrowed attestations (indices in the result are into `attestations`), for callers
// that hold them inside other records and should not copy them.
TallyResult Tally(const Policy& policy, std::span<const Attestation* const> attestations,
                  const TallyOptions& options = {}, std::span<const int64_t> received_unix = {});

// The tally of one derivation output's realisations (consensus/realisation.h), by the same rules: two
// attestations agree when their realisation fingerprints are byte-identical; DISPUTED when counted
// builders signed different ones (a nondeterministic CA derivation maps to different output paths).
// All attestations must be about one key (others are uncounted, as above); FingerprintTally.fingerprint
// holds the realisation fingerprint.
// The rule: a kBuildTrace key names its derivation, so the rule is RuleFor(key.ExpectedOutPathName()).
// A kDrvHash key names only a hash, and the name in a claim is the builder's word: the rule is
// RuleFor(the leading claim's output path name) AND the default quorum must hold too, so that naming an
// output after a lenient rule cannot lower the quorum (quorum_explanation then reports both).
TallyResult TallyRealisation(const Policy& policy, std::span<const RealisationAttestation* const> attestations,
                             const TallyOptions& options = {}, std::span<const int64_t> received_unix = {});

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_TALLY_H_
