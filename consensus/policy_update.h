// Policy updates: the signed chain of policies. A successor policy names the policy it replaces
// (`parent`, its hash) and is adopted when at least the parent's `update_threshold` maintainers of the
// parent approved it. An approval is a maintainer's Nix signature over its own statement, which starts
// with a fixed header so it can never pass for a fingerprint, a dispute record or a resolution:
//
//   attest/policy-approval/v1
//   policy sha256:<hex of the successor's canonical text>
//
// (the successor's canonical text names its parent and version, so the approval binds them too). On
// disk and on the wire an approval is its signature text, "<key name>:<base64 of 64 bytes>", one line.
//
// A link is the successor's TOML text as submitted (so people read what maintainers signed, comments
// included; its hash is over the canonical text, so formatting does not matter) and its approvals.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CONSENSUS_POLICY_UPDATE_H_
#define ATTEST_CONSENSUS_POLICY_UPDATE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/keys.h"
#include "consensus/policy.h"

namespace attest::consensus {

inline constexpr std::string_view kPolicyApprovalHeader = "attest/policy-approval/v1";
// The most approvals a link may carry (a policy has a handful of maintainers) and the largest TOML text
// a link may carry (it must fit in one log entry with its approvals).
inline constexpr size_t kMaxPolicyApprovals = 64;
inline constexpr size_t kMaxPolicyTomlBytes = 48 * 1024;

// The statement a maintainer signs to approve the policy with this hash ("sha256:<hex>").
std::string PolicyApprovalMessage(std::string_view policy_hash);

// A maintainer's approval of `policy` with `key` (SecretKey::Sign over PolicyApprovalMessage).
Signature ApprovePolicy(const Policy& policy, const SecretKey& key);

// Parses an approval file: one signature text per line; blank lines and lines starting with '#' are
// skipped; surrounding white space is trimmed. INVALID_ARGUMENT naming the line for anything else, an
// empty file, or the same key name twice.
absl::StatusOr<std::vector<Signature>> ParseApprovals(std::string_view text, std::string_view file_name);

// One link of the chain, as submitted, logged, stored and sent to peers.
struct PolicyLink final {
  std::string toml;                   // the successor's TOML text, at most kMaxPolicyTomlBytes
  std::vector<Signature> approvals;   // at most kMaxPolicyApprovals, distinct key names

  friend bool operator==(const PolicyLink&, const PolicyLink&) = default;
};

// Checks that `link` is a valid successor of `current` and returns the successor. `received_unix` is
// when the federation received the link (it decides whether a retired maintainer key still approves,
// Policy::KeyCounts). Errors, each naming the problem, nothing adopted:
//   INVALID_ARGUMENT     the TOML does not parse into a policy (Policy::ParseToml's message); too large;
//                        too many approvals; an approval key named twice
//   ALREADY_EXISTS       the link is `current` itself (a replay of the update that made it current)
//   FAILED_PRECONDITION  the successor has no parent, or its parent is not `current` (the message names
//                        both hashes: an update to another policy, or an older one replayed), or its
//                        version is not current's + 1
//   PERMISSION_DENIED    fewer than current.update_threshold() approvals count: the message says how
//                        many counted, how many are needed, and why each other one did not (not a
//                        maintainer of the current policy, revoked, retired before received_unix, or the
//                        signature does not verify)
absl::StatusOr<Policy> VerifyPolicyLink(const Policy& current, const PolicyLink& link, int64_t received_unix);

// The maintainer key names whose approvals in `link` count for `current` (VerifyPolicyLink's count);
// sorted. For pages and `attest policy show`.
std::vector<std::string> CountedApprovals(const Policy& current, const PolicyLink& link, int64_t received_unix);

// What changed from `before` to `after`, one line per difference, for `attest policy diff` and the
// node's log: "+ operator org-e", "- builder org-b-1:...", "~ quorum: any 2 operators -> 2 of (...)",
// "~ key org-b-1: active -> revoked (compromised)", "+ rule 2: linux-* needs any 3 operators", ...
// Empty when the two policies have the same hash.
std::vector<std::string> DiffPolicies(const Policy& before, const Policy& after);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_POLICY_UPDATE_H_
