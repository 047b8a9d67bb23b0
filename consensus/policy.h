// Policy: who counts. Operators (an organisation or person) each with builder keys, the quorum that
// must agree (any k distinct operators, or nested threshold groups of operators), per-package rules
// with their own quorum, each key's lifecycle (active, retired at a cut-off, revoked), the maintainer
// keys that may resolve disputes and approve the next policy, and where this policy sits in the chain
// of policies (its parent, its version, how many maintainers must sign its successor). Each operator
// may also list the Nix binary caches that hold its builds.
//
// The policy is identical on every node of a federation and identified by its hash: SHA-256 over a
// canonical text rendering (so comments and formatting in the TOML file do not change it). A policy
// that uses none of the later features renders exactly as before they existed (same hash).
//
// TOML form (documented line by line in deploy/policy.example.toml):
//   version = 2                              # optional, default 1; a successor is its parent's + 1
//   parent = "sha256:<hex>"                  # optional: the policy this one replaces
//   update_threshold = 2                     # optional, default 1: maintainers needed for a successor
//   quorum = 2                               # any 2 operators; or a table:
//   [quorum]
//   threshold = 2
//   members = ["nixos-hydra", "independent"] # operator or group names
//   [[group]]
//   name = "independent"
//   threshold = 2
//   members = ["org-b", "org-c", "org-d"]
//   [[rule]]
//   names = ["openssl-*", "linux-*"]         # globs on the store path's name (after the hash)
//   quorum = 3                               # or an inline table {threshold = 2, members = [...]}
//   [[operator]]
//   name = "alice-ci"
//   builders = ["alice-builder-1:base64...",
//               {key = "alice-old:base64...", retired = "2026-12-01T00:00:00Z"},
//               {key = "alice-lost:base64...", revoked = "compromised"}]
//   caches = ["https://cache.alice.example", "file:///srv/alice-cache"]   # optional
//   [[maintainer]]
//   key = "maint-1:base64..."                 # retired = / revoked = as for builders
//
// Immutable after creation; thread-safe.
#ifndef ATTEST_CONSENSUS_POLICY_H_
#define ATTEST_CONSENSUS_POLICY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "consensus/keys.h"

namespace attest::consensus {

// OK when `name` can name an operator: 1..128 bytes of [A-Za-z0-9-_.@+] (operator names appear in
// space-separated statement lines, so they are identifiers, not free text). INVALID_ARGUMENT naming
// the problem otherwise. Also the rule for a request that filters by operator.
absl::Status ValidateOperatorName(std::string_view name);

struct Operator final {
  std::string name;
  // Every builder key of the operator, whatever its lifecycle (Policy::Lifecycle tells).
  std::vector<PublicKey> builders;
  // Nix binary caches holding this operator's builds (consensus/cache_url.h), in the operator's order of
  // preference, which the policy keeps. Normalised by Create. May be empty.
  std::vector<std::string> caches = {};
};

// Where a key is in its life. Active keys count; a retired key's attestations count when the federation
// received them before the cut-off (see KeyCounts); a revoked key's never count, past ones included
// (they stay stored, as evidence).
enum class KeyState { kActive = 0, kRetired = 1, kRevoked = 2 };
std::string_view KeyStateName(KeyState state);  // "active", "retired", "revoked"

// Why a key was revoked: one of these words (anything else is an error at load).
inline constexpr std::string_view kRevocationReasons[] = {"compromised", "lost", "misbehaving", "unspecified"};

struct KeyLifecycle final {
  KeyState state = KeyState::kActive;
  int64_t retired_unix = 0;    // kRetired: the cut-off, seconds since the epoch (whole seconds, UTC)
  std::string revoked_reason = {};  // kRevoked: one of kRevocationReasons

  friend bool operator==(const KeyLifecycle&, const KeyLifecycle&) = default;
};

// A threshold over members: satisfied when at least `threshold` of `members` are. A member is an
// operator name (satisfied when one of its counted builders signed the fingerprint) or a group name
// (satisfied when the group's own threshold is).
struct Threshold final {
  int threshold = 0;
  std::vector<std::string> members = {};  // as written; Create checks names, cycles and bounds

  friend bool operator==(const Threshold&, const Threshold&) = default;
};

// A quorum: any `any` distinct operators (the flat form, `quorum = K`), or a threshold (the table form).
// Exactly one of the two is set: any > 0, or of.has_value().
struct Quorum final {
  int any = 0;
  std::optional<Threshold> of = {};

  friend bool operator==(const Quorum&, const Quorum&) = default;
};

struct Group final {
  std::string name;  // same character rules as operator names; unique across operators and groups
  Threshold threshold = {};
};

// A per-package rule: the store paths whose name (the part after "<hash>-") matches one of `names`
// need `quorum` instead of the policy's. Globs: `*` any run of characters (also none), `?` one
// character, every other character itself.
//
// Most specific wins: among the rules with a matching glob, the one whose matching glob has the most
// literal (non-wildcard) characters; then the fewer `*`; then the rule listed first. A path no rule
// matches gets the policy's quorum ("default").
struct Rule final {
  std::vector<std::string> names;
  Quorum quorum;
};

// What Policy::Create takes. `Policy::Create(k, operators, maintainers)` is the flat form of it.
struct PolicySpec final {
  Quorum quorum;
  std::vector<Operator> operators;
  std::vector<PublicKey> maintainers;
  std::vector<Group> groups = {};
  std::vector<Rule> rules = {};  // order kept: it breaks ties between equally specific rules
  // Lifecycles of keys that are not active, by key name (builder or maintainer).
  std::map<std::string, KeyLifecycle> lifecycles = {};
  std::string parent = {};  // "" for a first policy, else "sha256:<64 hex>"
  int64_t version = 1;      // >= 1; a policy with a parent has version >= 2
  int update_threshold = 1;  // 1 ..= number of maintainers that are not revoked (when there are any)
};

// The quorum that applies to one store path, and why.
struct AppliedRule final {
  const Quorum* quorum = nullptr;  // into the policy
  std::string name;                // "default", or the glob that matched (e.g. "openssl-*")
  int index = -1;                  // into rules(), -1 for the default
};

class Policy final {
 public:
  // Validates (INVALID_ARGUMENT naming the problem):
  //  - operator and group names: ValidateOperatorName, unique across operators and groups together;
  //  - every key name unique across all builders and maintainers (Nix looks keys up by name), and no
  //    key bytes under two names; each operator has at least one builder key (retired and revoked
  //    ones included); lifecycles only for keys the policy lists; a revocation reason from
  //    kRevocationReasons; a retired cut-off >= 0;
  //  - quorums: the flat form 1 ..= number of operators; a threshold 1 ..= number of its members,
  //    members known operator or group names, none repeated within one threshold; groups form no
  //    cycle (a group may not contain itself through other groups); every rule has at least one glob
  //    (non-empty, at most 255 bytes, printable ASCII without white space) and a quorum;
  //  - parent empty or "sha256:<64 lowercase hex>"; version >= 1, and >= 2 with a parent;
  //    update_threshold >= 1 and at most the number of maintainers not revoked (any value when the
  //    policy has no maintainers: it cannot be updated then);
  //  - caches as before (ValidateCacheUrl, normalised, none twice per operator).
  static absl::StatusOr<Policy> Create(PolicySpec spec);
  // The flat form: any `quorum` operators, no groups, rules or lifecycles, version 1.
  static absl::StatusOr<Policy> Create(int quorum, std::vector<Operator> operators,
                                       std::vector<PublicKey> maintainers);

  // Parses the TOML text. `file_name` is used in messages, which have the form
  // "<file>:<line>:<column>: <problem>" (line/column where the problem is located). Unknown keys or
  // tables, wrong types, bad keys, bad times ("YYYY-MM-DDTHH:MM:SSZ", UTC, whole seconds), and
  // everything Create refuses are INVALID_ARGUMENT.
  static absl::StatusOr<Policy> ParseToml(std::string_view text, std::string_view file_name);

  // The policy-wide quorum (what a path no rule matches needs).
  const Quorum& default_quorum() const { return quorum_; }
  // The flat quorum's k, or 0 when the policy-wide quorum is a threshold table. For answers and pages
  // that show a single number; deciding code uses RuleFor / the tally.
  int quorum() const { return quorum_.any; }
  const std::vector<Operator>& operators() const { return operators_; }
  const std::vector<PublicKey>& maintainers() const { return maintainers_; }
  const std::vector<Group>& groups() const { return groups_; }  // sorted by name
  const std::vector<Rule>& rules() const { return rules_; }     // in file order
  const std::string& parent() const { return parent_; }
  int64_t version() const { return version_; }
  int update_threshold() const { return update_threshold_; }

  // The builder key with this name (whatever its lifecycle), or nullptr.
  const PublicKey* FindBuilder(std::string_view key_name) const;
  // The operator name of the builder key with this name (whatever its lifecycle), or nullptr.
  const std::string* OperatorOf(std::string_view key_name) const;
  // The maintainer key with this name (whatever its lifecycle), or nullptr.
  const PublicKey* FindMaintainer(std::string_view key_name) const;
  // The group with this name, or nullptr.
  const Group* FindGroup(std::string_view name) const;
  // The lifecycle of a key the policy lists (active for keys without an entry, and for unknown names).
  const KeyLifecycle& Lifecycle(std::string_view key_name) const;
  // Whether an attestation (or statement) by this key counts, given when the federation received it
  // (the earliest `received` time among the logs that hold it; 0 or less when unknown). Active: yes.
  // Retired: when received_unix is positive and earlier than the cut-off (strictly). Revoked: never.
  // Unknown key: no.
  bool KeyCounts(std::string_view key_name, int64_t received_unix) const;

  // The quorum that applies to a store path with this name (the part after "<hash>-").
  AppliedRule RuleFor(std::string_view path_name) const;

  // One line per fact, each starting with the word that says what it is:
  //   attest-policy/v1
  //   version <n>              only when the policy has a parent or version != 1
  //   parent sha256:<hex>      only with a parent
  //   update-threshold <n>     only when != 1
  //   quorum <k>               the flat form; or, for the table form:
  //   quorum-threshold <t> <member> <member>...   members sorted
  //   group <name> <t> <member> <member>...       for each group, sorted by name, members sorted
  //   rule <i> <quorum> <glob> <glob>...           for each rule in file order (i from 1), globs sorted;
  //                            <quorum> is "any:<k>" or "threshold:<t>:<m1>,<m2>,..." (members sorted)
  //   operator <name>          for each operator, sorted by name, followed by its
  //   builder <key>            builder keys ("name:base64"), sorted by key text, then its
  //   cache <url>              caches (normalised URLs) in the operator's order (it is a preference)
  //   maintainer <key>         for each maintainer, sorted by key text
  //   retired <key name> <unix seconds>   for each retired key, sorted by key name
  //   revoked <key name> <reason>         for each revoked key, sorted by key name
  // Lines that a policy without these features would not have are left out, so such a policy renders
  // exactly as it did before they existed (same text, same hash). Nothing in a line can break it:
  // names, globs and URLs have no white space or control characters, key texts no line breaks.
  std::string CanonicalText() const;
  // "sha256:<hex>" of CanonicalText().
  const std::string& Hash() const { return hash_; }

 private:
  Policy() = default;
  Quorum quorum_;
  std::vector<Operator> operators_;
  std::vector<PublicKey> maintainers_;
  std::vector<Group> groups_;
  std::vector<Rule> rules_;
  std::map<std::string, KeyLifecycle> lifecycles_;
  std::string parent_;
  int64_t version_ = 1;
  int update_threshold_ = 1;
  absl::flat_hash_map<std::string, size_t> builder_index_;  // key name -> operator index
  std::string hash_;
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_POLICY_H_
