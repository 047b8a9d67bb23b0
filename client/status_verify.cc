#include "client/status_verify.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "client/status_json.h"
#include "consensus/closure.h"
#include "consensus/path_info.h"
#include "consensus/realisation.h"
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

PathVerification VerifyPath(const consensus::Policy& policy, const json& object, size_t index,
                            std::string_view policy_name) {
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
  // A realisation key is answered like a path (status_json.h); its rule follows from the tally.
  const bool is_realisation = consensus::RealisationKey::LooksLikeKey(result.path);
  if (is_realisation) {
    absl::StatusOr<consensus::RealisationKey> key = consensus::RealisationKey::Parse(result.path);
    if (!key.ok()) {
      result.problems.push_back(Cat("path: ", key.status().message()));
      return result;
    }
    if (key->ToString() != result.path) {
      result.problems.push_back(Cat("path: ", result.path, " is not the key's canonical text ", key->ToString()));
      return result;
    }
  }
  std::string path_name;  // what the policy's rules match; a realisation's rule comes from its tally
  if (!is_realisation) {
    auto store_path = consensus::StorePath::Parse(result.path);
    if (!store_path.ok()) {
      result.problems.push_back(Cat("path: ", store_path.status().message()));
      return result;
    }
    path_name = std::string(store_path->name());
  }
  const consensus::AppliedRule applied = policy.RuleFor(path_name);
  const consensus::Quorum& applied_quorum = applied.quorum != nullptr ? *applied.quorum : policy.default_quorum();
  result.rule = applied.name;
  if (auto verdict = object.find("verdict"); verdict != object.end() && verdict->is_string()) {
    result.claimed_verdict = verdict->get<std::string>();
  } else {
    result.problems.push_back("has no \"verdict\"");
  }

  // What the node says it counted under. `quorum` is a single number: the flat k of the policy, or of
  // the rule that applied (0 for a threshold table); either is the policy's word.
  if (auto quorum = object.find("quorum");
      !is_realisation && quorum != object.end() && quorum->is_number_integer()) {
    const int64_t claimed = quorum->get<int64_t>();
    if (claimed != policy.quorum() && claimed != applied_quorum.any) {
      result.problems.push_back(Cat("the node reports quorum ", claimed, " but the policy says ",
                                    applied_quorum.any, " (rule ",
                                    applied.name, ")"));
    }
  }
  std::string claimed_hash;
  if (auto hash = object.find("policy_hash"); hash != object.end() && hash->is_string()) {
    claimed_hash = hash->get<std::string>();
  }
  int64_t claimed_version = 0;
  if (auto version = object.find("policy_version"); version != object.end() && version->is_number_integer()) {
    claimed_version = version->get<int64_t>();
  }
  if ((!claimed_hash.empty() && claimed_hash != policy.Hash()) ||
      (claimed_version > 0 && claimed_version != policy.version())) {
    const std::string claimed = claimed_hash.empty() ? Cat("version ", claimed_version, " (hash not given)")
                                : claimed_version > 0  ? Cat(claimed_hash, " (version ", claimed_version, ")")
                                                       : claimed_hash;
    result.problems.push_back(Cat("the node answered under policy ", claimed, " but ", policy_name, " is ",
                                  policy.Hash(), " (version ", policy.version(),
                                  "): verify with the policy the answer was computed under (`attest policy show "
                                  "--node ADDR` shows the node's current one)"));
  }
  // The rule decides the quorum, so a node that applied another one answered another question.
  if (is_realisation) {
    // Checked against the tally's rule below.
  } else if (auto rule = object.find("rule");
             rule != object.end() && rule->is_string() && !rule->get_ref<const std::string&>().empty()) {
    if (rule->get_ref<const std::string&>() != applied.name) {
      result.problems.push_back(Cat("the node applied rule ", consensus::QuoteForError(rule->get<std::string>()),
                                    " but the policy's rule for ", path_name, " is ", applied.name));
    }
  } else if (!policy.rules().empty()) {
    result.problems.push_back(Cat("the node does not say which rule it applied, and the policy has rules (the one for ",
                                  path_name, " is ", applied.name, ")"));
  }

  std::vector<consensus::Attestation> verified;
  std::vector<consensus::RealisationAttestation> verified_realisations;
  std::vector<std::string> verified_keys;  // the key name of each verified attestation of either kind
  std::vector<int64_t> received;  // parallel to the verified ones: when the federation received each one
  const auto attestations = object.find("attestations");
  if (attestations != object.end() && !attestations->is_null() && !attestations->is_array()) {
    result.problems.push_back("\"attestations\" is not a list");
  } else if (attestations != object.end() && attestations->is_array()) {
    for (size_t i = 0; i < attestations->size(); ++i) {
      const std::string where = Cat("attestation ", i + 1, " of ", attestations->size());
      std::string key_name;
      std::string about;
      std::optional<consensus::Attestation> attestation;
      std::optional<consensus::RealisationAttestation> realisation;
      if (is_realisation) {
        absl::StatusOr<consensus::RealisationAttestation> parsed = RealisationAttestationFromJson((*attestations)[i]);
        if (!parsed.ok()) {
          result.problems.push_back(Cat(where, ": ", parsed.status().message()));
          continue;
        }
        realisation = *std::move(parsed);
        key_name = realisation->key_name();
        about = realisation->claim.key.ToString();
      } else {
        absl::StatusOr<consensus::Attestation> parsed = AttestationFromJson((*attestations)[i]);
        if (!parsed.ok()) {
          result.problems.push_back(Cat(where, ": ", parsed.status().message()));
          continue;
        }
        attestation = *std::move(parsed);
        key_name = attestation->key_name();
        about = attestation->claim.path.full();
      }
      if (about != result.path) {
        result.problems.push_back(Cat(where, " (", key_name, ") is about ", about, ", not ", result.path));
        continue;
      }
      const consensus::PublicKey* key = policy.FindBuilder(key_name);
      if (key == nullptr) {
        result.problems.push_back(
            Cat(where, ": key ", key_name, " is not a builder key in the policy, so it cannot count"));
        continue;
      }
      const absl::Status s = is_realisation ? consensus::VerifyRealisation(*realisation, *key)
                                            : consensus::VerifyAttestation(*attestation, *key);
      if (!s.ok()) {
        result.problems.push_back(Cat(where, ": signature does not verify with key ", key_name,
                                      " from the policy (forged or altered claim)"));
        continue;
      }
      // Unsigned and so the node's word, but it can only make a retired key's attestation count when
      // it claims a time before the cut-off: the report says so below.
      int64_t received_unix = 0;
      if (auto time = (*attestations)[i].find("receivedTime");
          time != (*attestations)[i].end() && time->is_number_integer()) {
        received_unix = time->get<int64_t>();
      }
      if (is_realisation) {
        verified_realisations.push_back(*std::move(realisation));
      } else {
        verified.push_back(*std::move(attestation));
      }
      verified_keys.push_back(key_name);
      received.push_back(received_unix);
    }
  }
  result.signatures_verified = verified_keys.size();

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
  for (const std::string& key_name : verified_keys) {
    if (excluded.contains(key_name)) {
      result.problems.push_back(Cat("builder ", key_name, " is counted although a maintainer's statement excludes it"));
    }
  }
  std::vector<const consensus::RealisationAttestation*> realisation_pointers;
  for (const consensus::RealisationAttestation& r : verified_realisations) realisation_pointers.push_back(&r);
  const consensus::TallyResult tally = is_realisation
                                           ? consensus::TallyRealisation(policy, realisation_pointers, {}, received)
                                           : consensus::Tally(policy, verified, {}, received);
  if (is_realisation) {
    result.rule = tally.rule;
    if (auto rule = object.find("rule");
        rule != object.end() && rule->is_string() && !rule->get_ref<const std::string&>().empty() &&
        rule->get_ref<const std::string&>() != tally.rule) {
      result.problems.push_back(Cat("the node applied rule ", consensus::QuoteForError(rule->get<std::string>()),
                                    " but the policy's rule for ", result.path, " is ", tally.rule));
    }
    // The output paths shown are the fingerprints' (status_json.h): the agreed one must be the tally's.
    if (auto out = object.find("outPath"); out != object.end() && out->is_string()) {
      std::string agreed;
      if (tally.verdict == consensus::Verdict::kConfirmed || tally.verdict == consensus::Verdict::kPending) {
        if (auto claim = consensus::Realisation::ParseFingerprint(tally.fingerprints.front().fingerprint); claim.ok()) {
          agreed = claim->out_path.full();
        }
      }
      if (out->get_ref<const std::string&>() != agreed) {
        result.problems.push_back(Cat("the node shows output path '", out->get<std::string>(),
                                      "' but the attestations give '", agreed, "'"));
      }
    }
  }
  result.verdict = tally.verdict;
  result.explanation = tally.quorum_explanation;
  // The node lists the attestations it counted; one the policy does not count (a revoked key, a retired
  // key's received after its cut-off) means it counted under other rules.
  for (const size_t i : tally.uncounted) {
    const std::string& key_name = verified_keys[i];
    const consensus::KeyLifecycle& life = policy.Lifecycle(key_name);
    std::string why;
    switch (life.state) {
      case consensus::KeyState::kRevoked:
        why = Cat("key ", key_name, " is revoked (", life.revoked_reason, ")");
        break;
      case consensus::KeyState::kRetired:
        why = Cat("key ", key_name, " was retired at ", life.retired_unix, " and the attestation was received ",
                  received[i] > 0 ? Cat("at ", received[i]) : std::string("at an unknown time"));
        break;
      default:
        why = Cat("key ", key_name, " does not count");
        break;
    }
    result.problems.push_back(Cat("an attestation the node counted does not count under the policy: ", why));
  }
  if (tally.verdict == consensus::Verdict::kConfirmed || tally.verdict == consensus::Verdict::kPending) {
    result.fingerprint = tally.fingerprints.front().fingerprint;
  }
  const std::string recomputed(consensus::VerdictName(tally.verdict));
  if (!result.claimed_verdict.empty() && result.claimed_verdict != recomputed) {
    std::string why;
    if (!tally.fingerprints.empty()) {
      why = Cat(": ", tally.fingerprints.size(), " fingerprint(s), the leading one signed by ",
                tally.fingerprints.front().operators.size(), " operator(s) (",
                Describe(tally.fingerprints.front().operators), "); rule ", tally.rule, ": ",
                tally.quorum_explanation);
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
  return std::all_of(paths.begin(), paths.end(), [](const PathVerification& p) { return p.ok(); }) &&
         (!closure.has_value() || closure->problems.empty());
}

namespace {

std::vector<std::string> StringsAt(const json& object, const char* key) {
  std::vector<std::string> out;
  if (auto it = object.find(key); it != object.end() && it->is_array()) {
    for (const json& v : *it) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

// Re-walks and re-decides a closure answer whose members are already in `verification.paths`.
ClosureVerification VerifyClosure(const json& document, const std::vector<PathVerification>& members) {
  ClosureVerification closure;
  closure.root = document.value("closure", std::string());
  closure.claimed_verdict = document.value("verdict", std::string());
  const json empty = json::array();
  const json& member_objects = document.contains("members") && document["members"].is_array() ? document["members"] : empty;
  if (member_objects.empty()) {
    closure.problems.push_back("the closure answer has no members (the root itself must be one)");
    return closure;
  }
  if (members.front().path != closure.root) {
    closure.problems.push_back(Cat("the first member is ", members.front().path, ", not the root ", closure.root));
  }
  // Each member's attested references, from the fingerprints the member check compared with the tally.
  std::map<std::string, std::vector<std::string>> references;
  for (size_t i = 0; i < member_objects.size() && i < members.size(); ++i) {
    std::vector<std::string>& out = references[members[i].path];
    if (auto sides = member_objects[i].find("fingerprints"); sides != member_objects[i].end() && sides->is_array()) {
      for (const json& side : *sides) {
        absl::StatusOr<consensus::PathInfo> info =
            consensus::PathInfo::ParseFingerprint(side.value("fingerprint", std::string()));
        if (!info.ok()) {
          closure.problems.push_back(Cat(members[i].path, ": a fingerprint does not parse: ", info.status().message()));
          continue;
        }
        for (const consensus::StorePath& r : info->references) {
          if (r.full() != members[i].path) out.push_back(r.full());
        }
      }
    }
  }
  // The walk: every path reached must be a member, every member must be reached.
  std::set<std::string> reached = {closure.root};
  std::vector<std::string> frontier = {closure.root};
  while (!frontier.empty()) {
    std::vector<std::string> next;
    for (const std::string& path : frontier) {
      auto it = references.find(path);
      if (it == references.end()) {
        closure.problems.push_back(Cat(path, " is referenced in the closure but the answer has no status for it"));
        continue;
      }
      for (const std::string& r : it->second) {
        if (reached.insert(r).second) next.push_back(r);
      }
    }
    frontier = std::move(next);
  }
  for (const auto& [path, unused] : references) {
    if (!reached.contains(path)) {
      closure.problems.push_back(Cat(path, " is in the answer but not in the closure of ", closure.root));
    }
  }
  if (references.size() != members.size()) {
    closure.problems.push_back("the answer lists a member more than once");
  }
  std::vector<consensus::Verdict> verdicts;
  for (const PathVerification& member : members) {
    verdicts.push_back(member.verdict);
    if (member.verdict != consensus::Verdict::kConfirmed) closure.not_confirmed.push_back(member.path);
  }
  closure.verdict = consensus::ClosureVerdict(verdicts);
  if (closure.claimed_verdict != consensus::VerdictName(closure.verdict)) {
    closure.problems.push_back(Cat("the node says the closure is ", closure.claimed_verdict,
                                   "; its members give ", consensus::VerdictName(closure.verdict)));
  }
  if (StringsAt(document, "not_confirmed") != closure.not_confirmed) {
    closure.problems.push_back(Cat("the node lists [", absl::StrJoin(StringsAt(document, "not_confirmed"), ", "),
                                   "] as not CONFIRMED; the members give [",
                                   absl::StrJoin(closure.not_confirmed, ", "), "]"));
  }
  return closure;
}

}  // namespace

absl::StatusOr<StatusVerification> VerifyStatusDocument(const consensus::Policy& policy,
                                                        const json& document, std::string_view policy_name) {
  StatusVerification verification;
  if (document.is_object() && document.contains("closure")) {
    const auto members = document.find("members");
    if (members != document.end() && members->is_array()) {
      for (size_t i = 0; i < members->size(); ++i) {
        verification.paths.push_back(VerifyPath(policy, (*members)[i], i, policy_name));
      }
    }
    verification.closure = VerifyClosure(document, verification.paths);
  } else if (document.is_object()) {
    verification.paths.push_back(VerifyPath(policy, document, 0, policy_name));
  } else if (document.is_array()) {
    for (size_t i = 0; i < document.size(); ++i)
      verification.paths.push_back(VerifyPath(policy, document[i], i, policy_name));
  } else {
    return absl::InvalidArgumentError("expected the JSON list printed by `attest status --json`");
  }
  return verification;
}

}  // namespace attest::client
