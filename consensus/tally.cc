#include "consensus/tally.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "consensus/store_path.h"

namespace attest::consensus {
namespace {

// Ordered containers throughout: the result must not depend on hash seeds or input order.
struct Side final {
  std::set<std::string> operators;
  std::set<std::string> builders;
  std::vector<size_t> attestations;  // filled in input order, hence ascending
};

}  // namespace

std::string_view VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kUnknown:
      return "UNKNOWN";
    case Verdict::kPending:
      return "PENDING";
    case Verdict::kConfirmed:
      return "CONFIRMED";
    case Verdict::kDisputed:
      return "DISPUTED";
  }
  return "UNKNOWN";
}

TallyResult Tally(const Policy& policy, std::span<const Attestation> attestations,
                  const TallyOptions& options) {
  std::vector<const Attestation*> borrowed;
  borrowed.reserve(attestations.size());
  for (const Attestation& a : attestations) borrowed.push_back(&a);
  return Tally(policy, borrowed, options);
}

TallyResult Tally(const Policy& policy, std::span<const Attestation* const> attestations,
                  const TallyOptions& options) {
  auto counts = [&](const Attestation& a) {
    return policy.OperatorOf(a.key_name()) != nullptr &&
           !options.excluded_builders.contains(a.key_name());
  };

  // Callers pass the attestations of one path; a stray one of another path must not change the
  // answer, and which path is "the" subject must not depend on input order. So the subject is the
  // smallest path among those that would count: with correct input that is the only path.
  std::optional<StorePath> subject;
  for (const Attestation* a : attestations) {
    if (counts(*a) && (!subject.has_value() || a->claim.path < *subject)) subject = a->claim.path;
  }

  TallyResult result;
  std::map<std::string, Side> sides;  // by fingerprint
  // Most attestations of a path carry the same claim: its fingerprint is built once.
  const PathInfo* last_claim = nullptr;
  Side* last_side = nullptr;
  for (size_t i = 0; i < attestations.size(); ++i) {
    const Attestation& a = *attestations[i];
    if (!counts(a) || a.claim.path != *subject) {
      result.uncounted.push_back(i);
      continue;
    }
    if (last_claim == nullptr || !(a.claim == *last_claim)) {
      last_side = &sides[a.claim.Fingerprint()];
      last_claim = &a.claim;
    }
    Side& side = *last_side;
    // Sets: a duplicate attestation, or a second builder of the same operator, adds evidence but
    // not weight. One operator is one vote however many keys it runs.
    side.operators.insert(*policy.OperatorOf(a.key_name()));
    side.builders.insert(a.key_name());
    side.attestations.push_back(i);
  }

  std::map<std::string, int> sides_per_builder;
  for (auto& [fingerprint, side] : sides) {
    for (const std::string& builder : side.builders) ++sides_per_builder[builder];
    FingerprintTally tally;
    tally.fingerprint = fingerprint;
    tally.operators.assign(side.operators.begin(), side.operators.end());
    tally.builders.assign(side.builders.begin(), side.builders.end());
    tally.attestations = std::move(side.attestations);
    result.fingerprints.push_back(std::move(tally));
  }
  // A builder on two sides keeps counting on both: dropping it would let a lying builder silence a
  // dispute, and the flag tells maintainers whom to look at.
  for (const auto& [builder, count] : sides_per_builder) {
    if (count > 1) result.flagged_builders.push_back(builder);
  }
  std::stable_sort(result.fingerprints.begin(), result.fingerprints.end(),
                   [](const FingerprintTally& a, const FingerprintTally& b) {
                     if (a.operators.size() != b.operators.size()) {
                       return a.operators.size() > b.operators.size();
                     }
                     return a.fingerprint < b.fingerprint;
                   });

  if (result.fingerprints.empty()) {
    result.verdict = Verdict::kUnknown;
  } else if (result.fingerprints.size() > 1) {
    // Any disagreement among counted builders is a dispute, whatever the counts: a majority does
    // not make differing bytes trustworthy, and a tie has no majority at all.
    result.verdict = Verdict::kDisputed;
  } else if (result.fingerprints.front().operators.size() >= static_cast<size_t>(policy.quorum())) {
    result.verdict = Verdict::kConfirmed;
  } else {
    result.verdict = Verdict::kPending;
  }
  return result;
}

}  // namespace attest::consensus
