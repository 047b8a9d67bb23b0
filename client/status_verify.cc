#include "client/status_verify.h"

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "client/status_json.h"
#include "consensus/resolution.h"
#include "consensus/store_path.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::Cat;
using nlohmann::json;

std::string Describe(const std::vector<std::string>& names) {
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// fingerprint -> sorted operators, as the node claimed them. nullopt when the field is malformed.
std::optional<std::map<std::string, std::vector<std::string>>> ClaimedTallies(const json& object) {
  std::map<std::string, std::vector<std::string>> out;
  const auto it = object.find("fingerprints");
  if (it == object.end() || it->is_null()) return out;
  if (!it->is_array()) return std::nullopt;
  for (const json& tally : *it) {
    if (!tally.is_object() || !tally.contains("fingerprint") || !tally["fingerprint"].is_string())
      return std::nullopt;
    std::vector<std::string> operators;
    if (auto ops = tally.find("operators"); ops != tally.end()) {
      if (!ops->is_array()) return std::nullopt;
      for (const json& op : *ops) {
        if (!op.is_string()) return std::nullopt;
        operators.push_back(op.get<std::string>());
      }
    }
    std::sort(operators.begin(), operators.end());
    out[tally["fingerprint"].get<std::string>()] = std::move(operators);
  }
  return out;
}

PathVerification VerifyPath(const consensus::Policy& policy, const json& object, size_t index) {
  PathVerification result;
  if (!object.is_object()) {
    result.path = Cat("(entry ", index + 1, ")");
    result.problems.push_back("is not a JSON object");
    return result;
  }
  if (auto path = object.find("path"); path != object.end() && path->is_string()) {
    result.path = path->get<std::string>();
  } else {
    result.path = Cat("(entry ", index + 1, ")");
    result.problems.push_back("has no \"path\"");
    return result;
  }
  if (auto parsed = consensus::StorePath::Parse(result.path); !parsed.ok()) {
    result.problems.push_back(Cat("path: ", parsed.status().message()));
    return result;
  }
  if (auto verdict = object.find("verdict"); verdict != object.end() && verdict->is_string()) {
    result.claimed_verdict = verdict->get<std::string>();
  } else {
    result.problems.push_back("has no \"verdict\"");
  }

  // What the node says it counted under.
  if (auto quorum = object.find("quorum"); quorum != object.end() && quorum->is_number_integer()) {
    if (quorum->get<int64_t>() != policy.quorum()) {
      result.problems.push_back(
          Cat("the node reports quorum ", quorum->get<int64_t>(), " but the policy says ", policy.quorum()));
    }
  }
  if (auto hash = object.find("policy_hash");
      hash != object.end() && hash->is_string() && !hash->get_ref<const std::string&>().empty()) {
    if (hash->get_ref<const std::string&>() != policy.Hash()) {
      result.problems.push_back(Cat("the node answered under policy ", hash->get_ref<const std::string&>(),
                                    " but this policy is ", policy.Hash(),
                                    " (is it the federation's current policy?)"));
    }
  }

  std::vector<consensus::Attestation> verified;
  const auto attestations = object.find("attestations");
  if (attestations != object.end() && !attestations->is_null() && !attestations->is_array()) {
    result.problems.push_back("\"attestations\" is not a list");
  } else if (attestations != object.end() && attestations->is_array()) {
    for (size_t i = 0; i < attestations->size(); ++i) {
      const std::string where = Cat("attestation ", i + 1, " of ", attestations->size());
      auto attestation = AttestationFromJson((*attestations)[i]);
      if (!attestation.ok()) {
        result.problems.push_back(Cat(where, ": ", attestation.status().message()));
        continue;
      }
      const std::string& key_name = attestation->key_name();
      if (attestation->claim.path.full() != result.path) {
        result.problems.push_back(
            Cat(where, " (", key_name, ") is about ", attestation->claim.path.full(), ", not ", result.path));
        continue;
      }
      const consensus::PublicKey* key = policy.FindBuilder(key_name);
      if (key == nullptr) {
        result.problems.push_back(
            Cat(where, ": key ", key_name, " is not a builder key in the policy, so it cannot count"));
        continue;
      }
      if (absl::Status s = consensus::VerifyAttestation(*attestation, *key); !s.ok()) {
        result.problems.push_back(Cat(where, ": signature does not verify with key ", key_name,
                                      " from the policy (forged or altered claim)"));
        continue;
      }
      verified.push_back(*std::move(attestation));
    }
  }
  result.signatures_verified = verified.size();

  // Maintainers' statements that stop builders from counting: each must be a malicious statement signed
  // by a maintainer of this policy, and no counted attestation may be by a builder they exclude.
  absl::flat_hash_set<std::string> excluded;
  if (auto exclusions = object.find("exclusions"); exclusions != object.end() && exclusions->is_array()) {
    for (size_t i = 0; i < exclusions->size(); ++i) {
      const std::string where = Cat("exclusion ", i + 1, " of ", exclusions->size());
      if (!(*exclusions)[i].is_string()) {
        result.problems.push_back(Cat(where, " is not a string"));
        continue;
      }
      auto statement = consensus::VerifyResolution((*exclusions)[i].get_ref<const std::string&>(), policy);
      if (!statement.ok()) {
        result.problems.push_back(Cat(where, ": ", statement.status().message()));
        continue;
      }
      if (statement->resolution.outcome != consensus::ResolutionOutcome::kMalicious) {
        result.problems.push_back(Cat(where, " is not a malicious statement, so it excludes nobody"));
        continue;
      }
      excluded.insert(statement->resolution.builders.begin(), statement->resolution.builders.end());
    }
  }
  for (const consensus::Attestation& attestation : verified) {
    if (excluded.contains(attestation.key_name())) {
      result.problems.push_back(Cat("builder ", attestation.key_name(),
                                    " is counted although a maintainer's statement excludes it"));
    }
  }
  const consensus::TallyResult tally = consensus::Tally(policy, verified);
  result.verdict = tally.verdict;
  if (tally.verdict == consensus::Verdict::kConfirmed || tally.verdict == consensus::Verdict::kPending) {
    result.fingerprint = tally.fingerprints.front().fingerprint;
  }
  const std::string recomputed(consensus::VerdictName(tally.verdict));
  if (!result.claimed_verdict.empty() && result.claimed_verdict != recomputed) {
    std::string why;
    if (!tally.fingerprints.empty()) {
      why = Cat(": ", tally.fingerprints.size(), " fingerprint(s), the leading one signed by ",
                tally.fingerprints.front().operators.size(), " operator(s) (",
                Describe(tally.fingerprints.front().operators), "), quorum ", policy.quorum());
    } else {
      why = ": no verified attestation counts";
    }
    result.problems.push_back(
        Cat("the node claims ", result.claimed_verdict, " but the attestations give ", recomputed, why));
  }
  std::string claimed_fingerprint;
  if (auto fp = object.find("fingerprint"); fp != object.end() && fp->is_string()) {
    claimed_fingerprint = fp->get<std::string>();
  }
  // The agreed fingerprint exists only for PENDING and CONFIRMED; for a dispute the sides are compared below.
  if (tally.verdict != consensus::Verdict::kDisputed && claimed_fingerprint != result.fingerprint) {
    result.problems.push_back(Cat("the node claims fingerprint '", claimed_fingerprint,
                                  "' but the attestations give '", result.fingerprint, "'"));
  }
  auto claimed = ClaimedTallies(object);
  if (!claimed) {
    result.problems.push_back("\"fingerprints\" is malformed");
  } else {
    std::map<std::string, std::vector<std::string>> recomputed_tallies;
    for (const auto& t : tally.fingerprints) recomputed_tallies[t.fingerprint] = t.operators;
    if (*claimed != recomputed_tallies) {
      for (const auto& [fingerprint, operators] : *claimed) {
        auto it = recomputed_tallies.find(fingerprint);
        const std::vector<std::string> actual =
            it == recomputed_tallies.end() ? std::vector<std::string>{} : it->second;
        if (actual != operators) {
          result.problems.push_back(Cat("the node claims operators [", Describe(operators),
                                        "] for fingerprint '", fingerprint, "' but the attestations show [",
                                        Describe(actual), "]"));
        }
      }
      for (const auto& [fingerprint, operators] : recomputed_tallies) {
        if (!claimed->contains(fingerprint)) {
          result.problems.push_back(Cat("the node does not list fingerprint '", fingerprint, "', signed by [",
                                        Describe(operators), "]"));
        }
      }
    }
  }
  return result;
}

}  // namespace

bool StatusVerification::ok() const {
  return std::all_of(paths.begin(), paths.end(), [](const PathVerification& p) { return p.ok(); });
}

absl::StatusOr<StatusVerification> VerifyStatusDocument(const consensus::Policy& policy,
                                                        const json& document) {
  StatusVerification verification;
  if (document.is_object()) {
    verification.paths.push_back(VerifyPath(policy, document, 0));
  } else if (document.is_array()) {
    for (size_t i = 0; i < document.size(); ++i)
      verification.paths.push_back(VerifyPath(policy, document[i], i));
  } else {
    return absl::InvalidArgumentError("expected the JSON list printed by `attest status --json`");
  }
  return verification;
}

}  // namespace attest::client
