// Policy: who counts. Operators (an organisation or person) each with builder keys, the quorum k of
// distinct operators that must agree, and the maintainer keys that may resolve disputes. Each operator
// may also list the Nix binary caches that hold its builds (where the bytes of what it attests are).
//
// The policy is identical on every node of a federation and identified by its hash: SHA-256 over a
// canonical text rendering (so comments and formatting in the TOML file do not change it).
//
// TOML form (file documented in deploy/policy.example.toml):
//   quorum = 2
//   [[operator]]
//   name = "alice-ci"
//   builders = ["alice-builder-1:base64...", "alice-builder-2:base64..."]
//   caches = ["https://cache.alice.example", "file:///srv/alice-cache"]   # optional
//   [[maintainer]]
//   key = "maint-1:base64..."
//
// Immutable after creation; thread-safe.
#ifndef ATTEST_CONSENSUS_POLICY_H_
#define ATTEST_CONSENSUS_POLICY_H_

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
  std::vector<PublicKey> builders;
  // Nix binary caches holding this operator's builds (consensus/cache_url.h), in the operator's order of
  // preference, which the policy keeps. Normalised by Create. May be empty.
  std::vector<std::string> caches = {};
};

class Policy final {
 public:
  // Validates: quorum >= 1 and <= number of operators; operator names non-empty and unique; every key
  // name unique across all builders and maintainers (Nix looks keys up by name); each operator has at
  // least one builder; each cache URL passes ValidateCacheUrl (and is stored in its normalised form),
  // and no operator lists one cache twice. INVALID_ARGUMENT naming the problem.
  static absl::StatusOr<Policy> Create(int quorum, std::vector<Operator> operators,
                                       std::vector<PublicKey> maintainers);

  // Parses the TOML text. `file_name` is used in messages, which have the form
  // "<file>:<line>:<column>: <problem>" (line/column where the problem is located). Unknown keys or
  // tables, wrong types, bad keys, duplicate key names, bad or repeated cache URLs and an invalid quorum
  // are INVALID_ARGUMENT.
  static absl::StatusOr<Policy> ParseToml(std::string_view text, std::string_view file_name);

  int quorum() const { return quorum_; }
  const std::vector<Operator>& operators() const { return operators_; }
  const std::vector<PublicKey>& maintainers() const { return maintainers_; }

  // The builder key with this name, or nullptr.
  const PublicKey* FindBuilder(std::string_view key_name) const;
  // The operator name of the builder key with this name, or nullptr.
  const std::string* OperatorOf(std::string_view key_name) const;
  // The maintainer key with this name, or nullptr.
  const PublicKey* FindMaintainer(std::string_view key_name) const;

  // One line per fact, each starting with the word that says what it is:
  //   attest-policy/v1
  //   quorum <k>
  //   operator <name>          for each operator, sorted by name, followed by its
  //   builder <key>            builder keys ("name:base64"), sorted by key text, then its
  //   cache <url>              caches (normalised URLs) in the operator's order (it is a preference)
  //   maintainer <key>         for each maintainer, sorted by key text
  // An operator without caches has no cache lines, so a policy without caches renders exactly as it did
  // before caches existed (same text, same hash). Nothing in a line can break it: operator names and
  // URLs have no white space or control characters, key texts no line breaks.
  std::string CanonicalText() const;
  // "sha256:<hex>" of CanonicalText().
  const std::string& Hash() const { return hash_; }

 private:
  Policy() = default;
  int quorum_ = 0;
  std::vector<Operator> operators_;
  std::vector<PublicKey> maintainers_;
  absl::flat_hash_map<std::string, size_t> builder_index_;  // key name -> operator index
  std::string hash_;
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_POLICY_H_
