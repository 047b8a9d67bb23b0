#include "consensus/tally.h"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "consensus/quorum.h"
#include "consensus/store_path.h"
#include "consensus/text.h"

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

namespace {

// Whether a builder key's attestation counts at all (before asking what it is about).
// `received_unix` 0 when unknown.
bool KeyCounts(const Policy& policy, const TallyOptions& options, std::string_view key,
               int64_t received_unix) {
  return policy.OperatorOf(key) != nullptr && !options.excluded_builders.contains(AbslView(key)) &&
         policy.KeyCounts(key, received_unix);
}

// One attestation as the counting core sees it: who signed which bytes, and whether it counts
// (its key counts and it is about the tally's subject). `fingerprint` is only read when counted.
struct TallyItem final {
  std::string_view key_name;
  std::string_view fingerprint;
  bool counted = false;
};

// The counting shared by store paths and realisations: sides by byte-identical fingerprint,
// flagged builders, the order of the sides and the uncounted indices. The verdict is Decide's.
void CountSides(const Policy& policy, std::span<const TallyItem> items, TallyResult& result) {
  // Ordered by fingerprint, as the sort below breaks ties that way: the result must not depend on
  // hash seeds or input order. A subject has one side, or a few.
  std::vector<Side> sides;
  std::string_view last_fingerprint;
  bool have_last = false;
  size_t last_side = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const TallyItem& item = items[i];
    if (!item.counted) {
      result.uncounted.push_back(i);
      continue;
    }
    if (!have_last || item.fingerprint != last_fingerprint) {
      auto at = std::lower_bound(sides.begin(), sides.end(), item.fingerprint,
                                 [](const Side& side, std::string_view f) { return side.fingerprint < f; });
      if (at == sides.end() || at->fingerprint != item.fingerprint) {
        at = sides.insert(at, Side{.fingerprint = std::string(item.fingerprint), .operators = {},
                                   .builders = {}, .attestations = {}});
      }
      last_side = static_cast<size_t>(at - sides.begin());
      last_fingerprint = item.fingerprint;
      have_last = true;
    }
    Side& side = sides[last_side];
    // Sets: a duplicate attestation, or a second builder of the same operator, adds evidence but
    // not weight. One operator is one vote however many keys it runs.
    InsertSorted(side.operators, *policy.OperatorOf(item.key_name));
    InsertSorted(side.builders, item.key_name);
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
}

// The verdict from the counted sides. `also_default`: the policy's default quorum must hold as
// well as `quorum` (a rule chosen by a name the builders wrote themselves).
enum class AlsoDefault { kNo, kYes };

void Decide(const Policy& policy, const Quorum& quorum, AlsoDefault also_default, TallyResult& result) {
  if (result.fingerprints.empty()) {
    result.verdict = Verdict::kUnknown;
    return;
  }
  const std::vector<std::string>& leading = result.fingerprints.front().operators;
  QuorumReport report = EvaluateQuorum(policy, quorum, leading);
  if (also_default == AlsoDefault::kYes && &quorum != &policy.default_quorum()) {
    const QuorumReport default_report = EvaluateQuorum(policy, policy.default_quorum(), leading);
    report.explanation = Cat("rule ", result.rule, ": ", report.explanation,
                             "; default: ", default_report.explanation);
    report.satisfied = report.satisfied && default_report.satisfied;
  }
  result.quorum_explanation = std::move(report.explanation);
  if (result.fingerprints.size() > 1) {
    // Any disagreement among counted builders is a dispute, whatever the counts or the groups: a
    // majority does not make differing bytes trustworthy, and a tie has no majority at all.
    result.verdict = Verdict::kDisputed;
  } else {
    result.verdict = report.satisfied ? Verdict::kConfirmed : Verdict::kPending;
  }
}

// Sets the result's rule from a subject name; returns its quorum.
const Quorum& ApplyRule(const Policy& policy, std::optional<std::string_view> subject_name,
                        TallyResult& result) {
  if (subject_name.has_value()) {
    AppliedRule applied = policy.RuleFor(*subject_name);
    if (applied.quorum != nullptr) {
      result.rule = std::move(applied.name);
      result.rule_index = applied.index;
      return *applied.quorum;
    }
  }
  return policy.default_quorum();
}

}  // namespace

TallyResult Tally(const Policy& policy, std::span<const Attestation* const> attestations,
                  const TallyOptions& options, std::span<const int64_t> received_unix) {
  // Received times of another length cannot be matched to attestations: treated as unknown, which
  // only ever makes fewer attestations count (retired keys' ones), never more.
  const bool have_times = received_unix.size() == attestations.size();
  std::vector<char> counted(attestations.size(), 0);
  for (size_t i = 0; i < attestations.size(); ++i) {
    counted[i] = KeyCounts(policy, options, attestations[i]->key_name(),
                           have_times ? received_unix[i] : 0);
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
  const Quorum& quorum = ApplyRule(
      policy, rule_subject == nullptr ? std::nullopt : std::optional(rule_subject->name()), result);
  // Most attestations of a path carry the same claim: its fingerprint is built once. A deque keeps
  // the strings where they are while items borrow them.
  std::deque<std::string> fingerprints;
  std::vector<TallyItem> items(attestations.size());
  const PathInfo* last_claim = nullptr;
  for (size_t i = 0; i < attestations.size(); ++i) {
    const Attestation& a = *attestations[i];
    items[i].key_name = a.key_name();
    items[i].counted = counted[i] && a.claim.path == *subject;
    if (!items[i].counted) continue;
    if (last_claim == nullptr || !(a.claim == *last_claim)) {
      fingerprints.push_back(a.claim.Fingerprint());
      last_claim = &a.claim;
    }
    items[i].fingerprint = fingerprints.back();
  }
  CountSides(policy, items, result);
  Decide(policy, quorum, AlsoDefault::kNo, result);
  return result;
}

TallyResult TallyRealisation(const Policy& policy,
                             std::span<const RealisationAttestation* const> attestations,
                             const TallyOptions& options, std::span<const int64_t> received_unix) {
  const bool have_times = received_unix.size() == attestations.size();
  std::vector<char> counted(attestations.size(), 0);
  std::vector<std::string> keys(attestations.size());
  for (size_t i = 0; i < attestations.size(); ++i) {
    counted[i] = KeyCounts(policy, options, attestations[i]->key_name(),
                           have_times ? received_unix[i] : 0);
    keys[i] = attestations[i]->claim.key.ToString();
  }
  // The subject as for paths: the smallest key (canonical text) among counted attestations, else
  // among all.
  std::optional<size_t> subject;
  for (size_t i = 0; i < attestations.size(); ++i) {
    if (counted[i] && (!subject.has_value() || keys[i] < keys[*subject])) subject = i;
  }
  std::optional<size_t> rule_subject = subject;
  if (!rule_subject.has_value()) {
    for (size_t i = 0; i < attestations.size(); ++i) {
      if (!rule_subject.has_value() || keys[i] < keys[*rule_subject]) rule_subject = i;
    }
  }

  TallyResult result;
  std::deque<std::string> fingerprints;
  std::vector<TallyItem> items(attestations.size());
  const Realisation* last_claim = nullptr;
  for (size_t i = 0; i < attestations.size(); ++i) {
    const RealisationAttestation& a = *attestations[i];
    items[i].key_name = a.key_name();
    items[i].counted = counted[i] && keys[i] == keys[*subject];
    if (!items[i].counted) continue;
    if (last_claim == nullptr || !(a.claim == *last_claim)) {
      fingerprints.push_back(a.claim.Fingerprint());
      last_claim = &a.claim;
    }
    items[i].fingerprint = fingerprints.back();
  }
  CountSides(policy, items, result);

  // The rule: a 2.35 key names its derivation, so its output's name is known. A 2.8 key names only
  // a hash: the name is the leading claim's (the builders' word), and the default quorum must hold
  // too, so that a claim named after a lenient rule cannot lower the bar.
  std::optional<std::string> subject_name;
  AlsoDefault also_default = AlsoDefault::kNo;
  if (rule_subject.has_value()) {
    const RealisationKey& key = attestations[*rule_subject]->claim.key;
    if (key.format() == RealisationFormat::kBuildTrace) {
      subject_name = key.ExpectedOutPathName();
    } else {
      also_default = AlsoDefault::kYes;
      if (!result.fingerprints.empty()) {
        const size_t leading = result.fingerprints.front().attestations.front();
        subject_name = std::string(attestations[leading]->claim.out_path.name());
      } else {
        // Nothing counts: the smallest output path name among the key's claims names the rule.
        for (size_t i = 0; i < attestations.size(); ++i) {
          if (keys[i] != keys[*rule_subject]) continue;
          std::string name(attestations[i]->claim.out_path.name());
          if (!subject_name.has_value() || name < *subject_name) subject_name = std::move(name);
        }
      }
    }
  }
  const Quorum& quorum = ApplyRule(
      policy, subject_name.has_value() ? std::optional<std::string_view>(*subject_name) : std::nullopt,
      result);
  Decide(policy, quorum, also_default, result);
  return result;
}

}  // namespace attest::consensus
