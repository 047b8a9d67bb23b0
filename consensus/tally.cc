#include "consensus/tally.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "consensus/quorum.h"
#include "consensus/store_path.h"

namespace attest::consensus {
namespace {

// One fingerprint's evidence while tallying. Names are borrowed (operators from the policy, key names
// from the attestations) and kept as sorted, unique vectors: a side has a handful of each, and the
// strings are copied once, into the result.
struct Side final {
  std::string fingerprint;
  std::vector<std::string_view> operators;
  std::vector<std::string_view> builders;
  std::vector<size_t> attestations;  // filled in input order, hence ascending
};

void InsertSorted(std::vector<std::string_view>& names, std::string_view name) {
  auto at = std::lower_bound(names.begin(), names.end(), name);
  if (at == names.end() || *at != name) names.insert(at, name);
}

std::vector<std::string> Copies(const std::vector<std::string_view>& names) {
  return std::vector<std::string>(names.begin(), names.end());
}

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
                  const TallyOptions& options, std::span<const int64_t> received_unix) {
  std::vector<const Attestation*> borrowed;
  borrowed.reserve(attestations.size());
  for (const Attestation& a : attestations) borrowed.push_back(&a);
  return Tally(policy, borrowed, options, received_unix);
}

TallyResult Tally(const Policy& policy, std::span<const Attestation* const> attestations,
                  const TallyOptions& options, std::span<const int64_t> received_unix) {
  // Received times of another length cannot be matched to attestations: treated as unknown, which
  // only ever makes fewer attestations count (retired keys' ones), never more.
  const bool have_times = received_unix.size() == attestations.size();
  std::vector<char> counted(attestations.size(), 0);
  for (size_t i = 0; i < attestations.size(); ++i) {
    const std::string& key = attestations[i]->key_name();
    counted[i] = policy.OperatorOf(key) != nullptr && !options.excluded_builders.contains(key) &&
                 policy.KeyCounts(key, have_times ? received_unix[i] : 0);
  }

  // Callers pass the attestations of one path; a stray one of another path must not change the
  // answer, and which path is "the" subject must not depend on input order. So the subject is the
  // smallest path among those that would count: with correct input that is the only path. Without a
  // counted attestation the smallest path of any still names the rule the path is under.
  const StorePath* subject = nullptr;
  for (size_t i = 0; i < attestations.size(); ++i) {
    const StorePath& path = attestations[i]->claim.path;
    if (counted[i] && (subject == nullptr || path < *subject)) subject = &path;
  }
  const StorePath* rule_subject = subject;
  if (rule_subject == nullptr) {
    for (const Attestation* a : attestations) {
      if (rule_subject == nullptr || a->claim.path < *rule_subject) rule_subject = &a->claim.path;
    }
  }

  TallyResult result;
  const Quorum* quorum = &policy.default_quorum();
  if (rule_subject != nullptr) {
    AppliedRule applied = policy.RuleFor(rule_subject->name());
    if (applied.quorum != nullptr) {
      quorum = applied.quorum;
      result.rule = std::move(applied.name);
      result.rule_index = applied.index;
    }
  }
  // Ordered by fingerprint, as the sort below breaks ties that way: the result must not depend on
  // hash seeds or input order. A path has one side, or a few.
  std::vector<Side> sides;
  // Most attestations of a path carry the same claim: its fingerprint is built once.
  const PathInfo* last_claim = nullptr;
  size_t last_side = 0;
  for (size_t i = 0; i < attestations.size(); ++i) {
    const Attestation& a = *attestations[i];
    if (!counted[i] || a.claim.path != *subject) {
      result.uncounted.push_back(i);
      continue;
    }
    if (last_claim == nullptr || !(a.claim == *last_claim)) {
      std::string fingerprint = a.claim.Fingerprint();
      auto at = std::lower_bound(sides.begin(), sides.end(), fingerprint,
                                 [](const Side& side, const std::string& f) { return side.fingerprint < f; });
      if (at == sides.end() || at->fingerprint != fingerprint) {
        at = sides.insert(at, Side{.fingerprint = std::move(fingerprint), .operators = {}, .builders = {},
                                   .attestations = {}});
      }
      last_side = static_cast<size_t>(at - sides.begin());
      last_claim = &a.claim;
    }
    Side& side = sides[last_side];
    // Sets: a duplicate attestation, or a second builder of the same operator, adds evidence but
    // not weight. One operator is one vote however many keys it runs.
    InsertSorted(side.operators, *policy.OperatorOf(a.key_name()));
    InsertSorted(side.builders, a.key_name());
    side.attestations.push_back(i);
  }

  // A builder on two sides keeps counting on both: dropping it would let a lying builder silence a
  // dispute, and the flag tells maintainers whom to look at.
  if (sides.size() > 1) {
    std::map<std::string_view, int> sides_per_builder;
    for (const Side& side : sides) {
      for (std::string_view builder : side.builders) ++sides_per_builder[builder];
    }
    for (const auto& [builder, count] : sides_per_builder) {
      if (count > 1) result.flagged_builders.emplace_back(builder);
    }
  }
  result.fingerprints.reserve(sides.size());
  for (Side& side : sides) {
    result.fingerprints.push_back(FingerprintTally{.fingerprint = std::move(side.fingerprint),
                                                   .operators = Copies(side.operators),
                                                   .builders = Copies(side.builders),
                                                   .attestations = std::move(side.attestations)});
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
    return result;
  }
  const QuorumReport report = EvaluateQuorum(policy, *quorum, result.fingerprints.front().operators);
  result.quorum_explanation = report.explanation;
  if (result.fingerprints.size() > 1) {
    // Any disagreement among counted builders is a dispute, whatever the counts or the groups: a
    // majority does not make differing bytes trustworthy, and a tie has no majority at all.
    result.verdict = Verdict::kDisputed;
  } else {
    result.verdict = report.satisfied ? Verdict::kConfirmed : Verdict::kPending;
  }
  return result;
}

}  // namespace attest::consensus
