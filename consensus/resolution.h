// Resolutions: a maintainer's signed statement about a dispute (DESIGN.md section 5), a C2SP signed
// note signed by a maintainer key of the policy.
//
// Note text (fields in this order; every line ends in '\n'):
//   attest/resolution/v1
//   dispute <dispute id>
//   path <store path>          (or: realisation <key>; consensus/dispute_subject.h)
//   outcome <nondeterministic|malicious|resolved>
//   fingerprint <fingerprint>   (one or more, sorted and unique: the competing fingerprints the
//                                maintainer reviewed; a fingerprint not listed reopens the dispute)
//   builder <key name>          (malicious only, one or more, sorted and unique: the builder keys at
//                                fault, which stop counting everywhere)
//   time <unix seconds>
//   note <text>                 (one line of UTF-8, 1 to kMaxResolutionNoteBytes bytes)
//
// Outcomes:
//   nondeterministic  the path (or derivation output) stays DISPUTED: nobody can vouch for bytes that differ per build
//   malicious         the named builder keys stop counting on every node that holds the statement
//   resolved          closed (e.g. fixed upstream)
// The latest statement (by time) about a dispute is the one in force.
//
// Pure functions and value types; thread-safe.
#ifndef ATTEST_CONSENSUS_RESOLUTION_H_
#define ATTEST_CONSENSUS_RESOLUTION_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/dispute_subject.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "consensus/signed_note.h"
#include "consensus/store_path.h"

namespace attest::consensus {

inline constexpr std::string_view kResolutionHeader = "attest/resolution/v1";
inline constexpr size_t kMaxResolutionNoteBytes = 1000;

// Values are stored; do not renumber.
enum class ResolutionOutcome { kNondeterministic = 1, kMalicious = 2, kResolved = 3 };
std::string_view OutcomeName(ResolutionOutcome outcome);  // "nondeterministic", ...
// INVALID_ARGUMENT naming the three outcomes for anything else.
absl::StatusOr<ResolutionOutcome> ParseOutcome(std::string_view text);

struct Resolution final {
  std::string dispute_id;
  DisputeSubject subject;  // what the dispute is about
  ResolutionOutcome outcome = ResolutionOutcome::kResolved;
  std::vector<std::string> fingerprints;  // sorted, unique, at least one
  std::vector<std::string> builders;      // key names; sorted, unique; non-empty iff malicious
  int64_t time_unix = 0;
  std::string note;

  // INVALID_ARGUMENT naming the field when the statement is not well formed: the id is not the
  // subject's dispute id, a fingerprint is not about the subject, the lists are not sorted and unique,
  // builders are missing for malicious or present otherwise, the note is empty, too long, not one
  // line of UTF-8 without control characters, or the time is negative.
  absl::Status Validate() const;
  // Precondition: Validate() is OK.
  std::string ToNoteText() const;
  // Strict parser of ToNoteText()'s output (FromNoteText(x).ToNoteText() == x). INVALID_ARGUMENT
  // naming the line otherwise.
  static absl::StatusOr<Resolution> FromNoteText(std::string_view text);

  friend bool operator==(const Resolution&, const Resolution&) = default;
};

// Signs a valid resolution with a maintainer key. INVALID_ARGUMENT when Validate fails or the key's
// name cannot sign notes.
absl::StatusOr<SignedNote> SignResolution(const Resolution& resolution, const SecretKey& maintainer);

struct VerifiedResolution final {
  Resolution resolution;
  std::string maintainer;   // the name of the maintainer key whose signature verified
  std::string signed_note;  // the note, serialised canonically
};

// Parses a serialised signed note and checks it against the policy:
//   INVALID_ARGUMENT  not a well-formed signed note or resolution statement; a builder named in a
//                     malicious statement that is not a builder key of the policy
//   UNAUTHENTICATED   no signature by a maintainer key of the policy verifies (the message names the
//                     keys that signed)
absl::StatusOr<VerifiedResolution> VerifyResolution(std::string_view signed_note, const Policy& policy);

// The statement in force among statements about one dispute: the latest by time; at equal times the
// one whose signed note sorts last (so every node picks the same). nullptr when empty.
const VerifiedResolution* LatestResolution(std::span<const VerifiedResolution> resolutions);

// What a dispute's state is, given its current competing fingerprints and the statement in force.
enum class DisputeState { kOpen = 0, kNondeterministic = 1, kMalicious = 2, kResolved = 3 };
std::string_view DisputeStateName(DisputeState state);  // "open", "nondeterministic", ...
// INVALID_ARGUMENT for anything but the four names.
absl::StatusOr<DisputeState> ParseDisputeState(std::string_view text);
// kOpen when there is no statement, or when a current fingerprint is not one the statement lists (a
// new competing fingerprint reopens the dispute); otherwise the statement's outcome.
DisputeState StateOf(const Resolution* latest, std::span<const std::string> current_fingerprints);

// The builder keys that no longer count: those named by malicious statements in force. The input
// holds the statement in force for each dispute (one per dispute).
absl::flat_hash_set<std::string> ExcludedBuilders(std::span<const Resolution* const> statements_in_force);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_RESOLUTION_H_
