#include "consensus/closure.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "consensus/path_info.h"
#include "consensus/text.h"

namespace attest::consensus {

absl::StatusOr<std::vector<StorePath>> AttestedReferences(const StorePath& path, const TallyResult& result) {
  std::vector<StorePath> references;
  for (const FingerprintTally& side : result.fingerprints) {
    absl::StatusOr<PathInfo> info = PathInfo::ParseFingerprint(side.fingerprint);
    if (!info.ok()) {
      return absl::InvalidArgumentError(Cat("a fingerprint of ", path.full(),
                                            " does not parse: ", info.status().message()));
    }
    for (StorePath& reference : info->references) {
      if (reference != path) references.push_back(std::move(reference));
    }
  }
  // One side's references are sorted already; several sides are merged here.
  std::sort(references.begin(), references.end());
  references.erase(std::unique(references.begin(), references.end()), references.end());
  return references;
}

Verdict ClosureVerdict(std::span<const Verdict> verdicts) {
  if (verdicts.empty()) return Verdict::kUnknown;
  bool all_confirmed = true;
  for (Verdict verdict : verdicts) {
    // A dispute anywhere is what a client most needs to hear, whatever else holds.
    if (verdict == Verdict::kDisputed) return Verdict::kDisputed;
    if (verdict != Verdict::kConfirmed) all_confirmed = false;
  }
  if (all_confirmed) return Verdict::kConfirmed;
  if (verdicts.front() == Verdict::kUnknown) return Verdict::kUnknown;
  return Verdict::kPending;
}

}  // namespace attest::consensus
