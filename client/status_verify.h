// Offline re-check of what a node answered (`attest status --json`), trusting only the policy.
//
// For each path object: every attestation must be about that path, be signed by a builder key of the
// policy, and verify; the tally recomputed from those attestations (consensus::Tally, with each
// attestation's receivedTime as when the federation received it, which decides whether a retired key
// still counts) must give the verdict, the agreed fingerprint and the per-fingerprint operators the
// node claimed; the rule the node names must be the one the policy applies to the path's name
// (Policy::RuleFor), and the policy version and hash it reports must be the policy's (else the problem
// says which policy the answer was computed under and which was given). Anything else is a problem,
// named in the report.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CLIENT_STATUS_VERIFY_H_
#define ATTEST_CLIENT_STATUS_VERIFY_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/policy.h"
#include "consensus/tally.h"
#include "nlohmann/json.hpp"

namespace attest::client {

struct PathVerification final {
  std::string path;
  std::string claimed_verdict;
  consensus::Verdict verdict = consensus::Verdict::kUnknown;  // recomputed
  std::string fingerprint;                                    // recomputed agreed fingerprint, or ""
  std::string rule;         // the rule the policy applies to the path ("default" or the glob)
  std::string explanation;  // recomputed: why the quorum is met or what it still needs ("" for none)
  size_t signatures_verified = 0;
  std::vector<std::string> problems;  // empty when everything holds
  bool ok() const { return problems.empty(); }
};

// The re-check of a closure answer (`attest status --closure --json`): every member is checked as a
// path (StatusVerification::paths); then the closure is walked again from the root over the references
// in the members' fingerprints (consensus/closure.h), which must reach exactly the members given (none
// missing, none extra), and the closure verdict and the list of members not CONFIRMED are recomputed
// from the members' recomputed verdicts.
struct ClosureVerification final {
  std::string root;
  std::string claimed_verdict;
  consensus::Verdict verdict = consensus::Verdict::kUnknown;  // recomputed
  std::vector<std::string> not_confirmed;                     // recomputed, in members' order
  std::vector<std::string> problems;
};

struct StatusVerification final {
  std::vector<PathVerification> paths;
  std::optional<ClosureVerification> closure;  // set for a closure answer
  bool ok() const;
};

// `document` is a list of path status objects, a single one, or a closure answer (an object with
// "closure"). INVALID_ARGUMENT when it is none of these.
// `policy_name` names the policy in problems (the file it was read from).
absl::StatusOr<StatusVerification> VerifyStatusDocument(const consensus::Policy& policy,
                                                        const nlohmann::json& document,
                                                        std::string_view policy_name = "the policy given");

}  // namespace attest::client

#endif  // ATTEST_CLIENT_STATUS_VERIFY_H_
