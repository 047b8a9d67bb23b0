// RebuildStatement: what a rebuilder tells a node about its work on a wanted path, signed with its
// builder key: "I take a lease on it", "I give it back", "I built it", "I could not build it (why)".
// The node uses it to keep two rebuilders of one operator off the same path and to show recent
// results; none of it is an attestation and none of it is counted.
//
// Signed text (a fixed header, so no signature over it can pass for a path fingerprint, which starts
// with "1;", or for any other statement attest signs):
//
//   attest/rebuild/v1\n
//   <kind>\n            lease | release | built | failed
//   <store path>\n
//   <time unix>\n       decimal, the rebuilder's clock; nodes accept it within a window of their own
//   <detail>\n          failed: why, one line; otherwise empty
//
// Pure functions and value types; thread-safe.
#ifndef ATTEST_CONSENSUS_REBUILD_STATEMENT_H_
#define ATTEST_CONSENSUS_REBUILD_STATEMENT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/keys.h"
#include "consensus/store_path.h"

namespace attest::consensus {

inline constexpr size_t kMaxRebuildDetailBytes = 1000;

enum class RebuildStatementKind { kLease, kRelease, kBuilt, kFailed };
std::string_view RebuildStatementKindName(RebuildStatementKind kind);  // "lease", ...
// INVALID_ARGUMENT naming the accepted kinds.
absl::StatusOr<RebuildStatementKind> ParseRebuildStatementKind(std::string_view name);

struct RebuildStatement final {
  RebuildStatementKind kind = RebuildStatementKind::kLease;
  StorePath path;
  int64_t time_unix = 0;
  std::string detail;  // kFailed only; valid UTF-8 display text, no line breaks, <= kMaxRebuildDetailBytes

  friend bool operator==(const RebuildStatement&, const RebuildStatement&) = default;
};

// The signed text above. Precondition: ValidateRebuildStatement(statement) is OK.
std::string RebuildStatementText(const RebuildStatement& statement);

// INVALID_ARGUMENT: a negative time, a detail on a kind other than kFailed, a detail that is too long,
// not valid UTF-8 or holds a line break or control character.
absl::Status ValidateRebuildStatement(const RebuildStatement& statement);

Signature SignRebuildStatement(const RebuildStatement& statement, const SecretKey& key);

// OK when `signature` is by `key` over RebuildStatementText(statement) (the statement valid).
// INVALID_ARGUMENT for an invalid statement, UNAUTHENTICATED when the signature does not verify.
absl::Status VerifyRebuildStatement(const RebuildStatement& statement, const Signature& signature,
                                    const PublicKey& key);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_REBUILD_STATEMENT_H_
