// Closure verdicts: one answer for a store path and everything it references, recursively.
//
// The closure is walked over the ATTESTED references: a member's references are those in the
// fingerprints its counted builders signed (the union over all of them, so a DISPUTED member still
// brings in what either side says it references); its own path is left out (Nix lists a path among its
// own references when it refers to itself). An UNKNOWN member has no attested references: the walk
// stops there, and the closure cannot be CONFIRMED anyway.
//
// The closure's verdict, from its members' (the root included):
//   DISPUTED   some member is DISPUTED
//   CONFIRMED  every member is CONFIRMED
//   UNKNOWN    the root itself is UNKNOWN
//   PENDING    otherwise (some member is PENDING or UNKNOWN)
// so a closure is CONFIRMED only when every path a client would substitute is.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CONSENSUS_CLOSURE_H_
#define ATTEST_CONSENSUS_CLOSURE_H_

#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"

namespace attest::consensus {

// The references `path`'s counted fingerprints name, sorted, unique, without `path` itself.
// INVALID_ARGUMENT when a fingerprint in `result` does not parse (PathInfo::ParseFingerprint).
absl::StatusOr<std::vector<StorePath>> AttestedReferences(const StorePath& path, const TallyResult& result);

// The closure's verdict; `verdicts` holds the root's first, then the other members' in any order. An
// empty span is UNKNOWN.
Verdict ClosureVerdict(std::span<const Verdict> verdicts);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_CLOSURE_H_
