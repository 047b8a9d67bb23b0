#include "consensus/policy_update.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

// "YYYY-MM-DDTHH:MM:SSZ" of unix seconds (the form policy files use for cut-offs). Written here, from
// the civil calendar, because the domain layer has no clock or time library; negative times do not
// occur (Policy::Create refuses them).
std::string FormatUtc(int64_t unix_seconds) {
  const int64_t days = unix_seconds >= 0 ? unix_seconds / 86400 : (unix_seconds - 86399) / 86400;
  const int64_t seconds_of_day = unix_seconds - days * 86400;
  // Days since 1970-01-01 to a proleptic Gregorian date (eras of 400 years).
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t day_of_era = z - era * 146097;
  const int64_t year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t mp = (5 * day_of_year + 2) / 153;
  const int64_t day = day_of_year - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = year_of_era + era * 400 + (month <= 2 ? 1 : 0);
  auto two = [](int64_t v) { return v < 10 ? Cat("0", v) : Cat(v); };
  return Cat(year, "-", two(month), "-", two(day), "T", two(seconds_of_day / 3600), ":",
             two(seconds_of_day / 60 % 60), ":", two(seconds_of_day % 60), "Z");
}

// Why the approval by `signature` does not count for `current`, or nullopt when it does.
std::optional<std::string> WhyNotCounted(const Policy& current, std::string_view message, const Signature& signature,
                                         int64_t received_unix) {
  const PublicKey* key = current.FindMaintainer(signature.key_name);
  if (key == nullptr) return "not a maintainer of the current policy";
  const KeyLifecycle& lifecycle = current.Lifecycle(signature.key_name);
  if (lifecycle.state == KeyState::kRevoked) return Cat("revoked (", lifecycle.revoked_reason, ")");
  if (!current.KeyCounts(signature.key_name, received_unix)) {
    return Cat("retired at ", FormatUtc(lifecycle.retired_unix), ", and the update was received at ",
               received_unix > 0 ? FormatUtc(received_unix) : "an unknown time");
  }
  if (!key->Verify(message, signature).ok()) {
    return "the signature does not verify (was the approval made for this TOML text, with this maintainer's key?)";
  }
  return std::nullopt;
}

struct Count {
  std::vector<std::string> counted;                           // key names, sorted
  std::vector<std::pair<std::string, std::string>> refused;  // key name, why; in the link's order
};

Count CountApprovals(const Policy& current, std::string_view successor_hash, std::span<const Signature> approvals,
                     int64_t received_unix) {
  const std::string message = PolicyApprovalMessage(successor_hash);
  Count count;
  for (const Signature& approval : approvals) {
    // A key named twice counts once (VerifyPolicyLink refuses such links before counting).
    if (std::ranges::find(count.counted, approval.key_name) != count.counted.end()) continue;
    std::optional<std::string> why = WhyNotCounted(current, message, approval, received_unix);
    if (why.has_value()) {
      count.refused.emplace_back(approval.key_name, *std::move(why));
    } else {
      count.counted.push_back(approval.key_name);
    }
  }
  std::ranges::sort(count.counted);
  return count;
}

// ---- DiffPolicies ----

std::string OperatorsWord(int k) { return k == 1 ? "operator" : "operators"; }

// The quorum in words, as DescribeQuorum writes it at its top level (groups are diffed on their own
// lines, so they are not expanded here).
std::string RenderQuorum(const Quorum& quorum) {
  if (!quorum.of.has_value()) return Cat("any ", quorum.any, " ", OperatorsWord(quorum.any));
  return Cat(quorum.of->threshold, " of (", absl::StrJoin(quorum.of->members, ", "), ")");
}

std::string RenderRule(const Rule& rule) {
  return Cat(absl::StrJoin(rule.names, ", "), " needs ", RenderQuorum(rule.quorum));
}

std::string RenderLifecycle(const KeyLifecycle& lifecycle) {
  switch (lifecycle.state) {
    case KeyState::kActive:
      return "active";
    case KeyState::kRetired:
      return Cat("retired at ", FormatUtc(lifecycle.retired_unix));
    case KeyState::kRevoked:
      return Cat("revoked (", lifecycle.revoked_reason, ")");
  }
  return "unknown";
}

// Lines for what is in one sorted set and not the other: "- x" then "+ y", each group sorted.
void DiffSets(const std::set<std::string>& before, const std::set<std::string>& after, std::string_view what,
              std::vector<std::string>& out) {
  for (const std::string& item : before) {
    if (!after.contains(item)) out.push_back(Cat("- ", what, " ", item));
  }
  for (const std::string& item : after) {
    if (!before.contains(item)) out.push_back(Cat("+ ", what, " ", item));
  }
}

std::set<std::string> KeyTexts(const std::vector<PublicKey>& keys) {
  std::set<std::string> out;
  for (const PublicKey& key : keys) out.insert(key.ToString());
  return out;
}

}  // namespace

std::string PolicyApprovalMessage(std::string_view policy_hash) {
  // Every line ends in '\n', as in the project's other signed texts.
  return Cat(kPolicyApprovalHeader, "\n", "policy ", policy_hash, "\n");
}

Signature ApprovePolicy(const Policy& policy, const SecretKey& key) {
  return key.Sign(PolicyApprovalMessage(policy.Hash()));
}

absl::StatusOr<std::vector<Signature>> ParseApprovals(std::string_view text, std::string_view file_name) {
  std::vector<Signature> approvals;
  std::map<std::string, int, std::less<>> line_of;  // key name -> line of its approval
  int line_number = 0;
  while (!text.empty()) {
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    ++line_number;
    line = StdView(absl::StripAsciiWhitespace(AbslView(line)));
    if (line.empty() || line.front() == '#') continue;
    absl::StatusOr<Signature> signature = Signature::Parse(line);
    if (!signature.ok()) {
      return absl::InvalidArgumentError(Cat(file_name, ":", line_number, ": ", signature.status().message(),
                                            " (expected one approval per line, \"<key name>:<base64>\", as "
                                            "`attest policy sign` writes it)"));
    }
    auto [it, inserted] = line_of.emplace(signature->key_name, line_number);
    if (!inserted) {
      return absl::InvalidArgumentError(Cat(file_name, ":", line_number, ": a second approval by key '",
                                            signature->key_name, "' (the first is on line ", it->second,
                                            "); a maintainer approves once"));
    }
    approvals.push_back(*std::move(signature));
  }
  if (approvals.empty()) {
    return absl::InvalidArgumentError(Cat(file_name, ": holds no approval (expected one \"<key name>:<base64>\" "
                                          "line per maintainer, as `attest policy sign` writes it)"));
  }
  return approvals;
}

absl::StatusOr<Policy> VerifyPolicyLink(const Policy& current, const PolicyLink& link, int64_t received_unix) {
  if (link.toml.size() > kMaxPolicyTomlBytes) {
    return absl::InvalidArgumentError(Cat("policy update of ", link.toml.size(), " bytes; a policy update holds at most ",
                                          kMaxPolicyTomlBytes, " bytes of TOML"));
  }
  if (link.approvals.size() > kMaxPolicyApprovals) {
    return absl::InvalidArgumentError(Cat("policy update with ", link.approvals.size(),
                                          " approvals; at most ", kMaxPolicyApprovals, " are accepted"));
  }
  for (size_t i = 0; i < link.approvals.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (link.approvals[i].key_name == link.approvals[j].key_name) {
        return absl::InvalidArgumentError(Cat("policy update: approvals ", j + 1, " and ", i + 1,
                                              " are both by key '", link.approvals[i].key_name,
                                              "' (a maintainer approves once)"));
      }
    }
  }
  absl::StatusOr<Policy> successor = Policy::ParseToml(link.toml, "policy update");
  if (!successor.ok()) return successor.status();

  if (successor->Hash() == current.Hash()) {
    return absl::AlreadyExistsError(Cat("policy ", current.Hash(), " (version ", current.version(),
                                        ") is the current policy already: this update was adopted before"));
  }
  if (successor->parent().empty()) {
    return absl::FailedPreconditionError(
        Cat("policy ", successor->Hash(), " names no parent; a successor of the current policy must say `parent = \"",
            current.Hash(), "\"` and `version = ", current.version() + 1, "`"));
  }
  if (successor->parent() != current.Hash()) {
    const bool older = successor->version() <= current.version();
    return absl::FailedPreconditionError(Cat(
        "policy ", successor->Hash(), " (version ", successor->version(), ") replaces ", successor->parent(),
        ", not the current policy ", current.Hash(), " (version ", current.version(), ")",
        older ? ": an older update replayed, or one made from an outdated policy"
              : ": it was made from another policy; make it from the current one"));
  }
  if (successor->version() != current.version() + 1) {
    return absl::FailedPreconditionError(Cat("policy ", successor->Hash(), " has version ", successor->version(),
                                             "; as a successor of ", current.Hash(), " (version ", current.version(),
                                             ") it must have version ", current.version() + 1));
  }

  const Count count = CountApprovals(current, successor->Hash(), link.approvals, received_unix);
  const int needed = current.update_threshold();
  if (static_cast<int>(count.counted.size()) < needed) {
    std::vector<std::string> reasons;
    for (const auto& [name, why] : count.refused) reasons.push_back(Cat(name, ": ", why));
    std::string message = Cat("policy ", successor->Hash(), " has ", count.counted.size(), " approval",
                              count.counted.size() == 1 ? " that counts" : "s that count",
                              count.counted.empty() ? "" : Cat(" (", absl::StrJoin(count.counted, ", "), ")"),
                              "; the current policy ", current.Hash(), " needs ", needed, " of its maintainers");
    if (current.maintainers().empty()) message += " and has none, so it cannot be updated (restart with the new file)";
    if (!reasons.empty()) message += Cat(". Not counted: ", absl::StrJoin(reasons, "; "));
    return absl::PermissionDeniedError(message);
  }
  return *std::move(successor);
}

std::vector<std::string> CountedApprovals(const Policy& current, const PolicyLink& link, int64_t received_unix) {
  absl::StatusOr<Policy> successor = Policy::ParseToml(link.toml, "policy update");
  if (!successor.ok()) return {};
  return CountApprovals(current, successor->Hash(), link.approvals, received_unix).counted;
}

std::vector<std::string> DiffPolicies(const Policy& before, const Policy& after) {
  std::vector<std::string> out;
  if (before.Hash() == after.Hash()) return out;
  if (before.version() != after.version()) out.push_back(Cat("~ version: ", before.version(), " -> ", after.version()));
  if (before.parent() != after.parent()) {
    out.push_back(Cat("~ parent: ", before.parent().empty() ? "none" : before.parent(), " -> ",
                      after.parent().empty() ? "none" : after.parent()));
  }
  if (before.update_threshold() != after.update_threshold()) {
    out.push_back(Cat("~ update threshold: ", before.update_threshold(), " -> ", after.update_threshold()));
  }
  if (!(before.default_quorum() == after.default_quorum())) {
    out.push_back(Cat("~ quorum: ", RenderQuorum(before.default_quorum()), " -> ", RenderQuorum(after.default_quorum())));
  }

  // Groups, by name.
  for (const Group& group : before.groups()) {
    const Group* now = after.FindGroup(group.name);
    const Quorum was{.any = 0, .of = group.threshold};
    if (now == nullptr) {
      out.push_back(Cat("- group ", group.name, ": ", RenderQuorum(was)));
    } else if (!(now->threshold == group.threshold)) {
      out.push_back(Cat("~ group ", group.name, ": ", RenderQuorum(was), " -> ",
                        RenderQuorum(Quorum{.any = 0, .of = now->threshold})));
    }
  }
  for (const Group& group : after.groups()) {
    if (before.FindGroup(group.name) == nullptr) {
      out.push_back(Cat("+ group ", group.name, ": ", RenderQuorum(Quorum{.any = 0, .of = group.threshold})));
    }
  }

  // Rules, by position (their order matters: it breaks ties).
  const size_t rules = std::max(before.rules().size(), after.rules().size());
  for (size_t i = 0; i < rules; ++i) {
    const Rule* was = i < before.rules().size() ? &before.rules()[i] : nullptr;
    const Rule* now = i < after.rules().size() ? &after.rules()[i] : nullptr;
    if (was == nullptr) {
      out.push_back(Cat("+ rule ", i + 1, ": ", RenderRule(*now)));
    } else if (now == nullptr) {
      out.push_back(Cat("- rule ", i + 1, ": ", RenderRule(*was)));
    } else if (was->names != now->names || !(was->quorum == now->quorum)) {
      out.push_back(Cat("~ rule ", i + 1, ": ", RenderRule(*was), " -> ", RenderRule(*now)));
    }
  }

  // Operators, their builder keys and caches.
  std::map<std::string, const Operator*> operators_before;
  std::map<std::string, const Operator*> operators_after;
  for (const Operator& op : before.operators()) operators_before.emplace(op.name, &op);
  for (const Operator& op : after.operators()) operators_after.emplace(op.name, &op);
  for (const auto& [name, op] : operators_before) {
    if (!operators_after.contains(name)) out.push_back(Cat("- operator ", name));
  }
  for (const auto& [name, op] : operators_after) {
    if (!operators_before.contains(name)) out.push_back(Cat("+ operator ", name));
  }
  std::set<std::string> names;
  for (const auto& [name, op] : operators_before) names.insert(name);
  for (const auto& [name, op] : operators_after) names.insert(name);
  for (const std::string& name : names) {
    auto was = operators_before.find(name);
    auto now = operators_after.find(name);
    const std::vector<PublicKey> none;
    const std::vector<std::string> no_caches;
    std::vector<std::string> lines;
    DiffSets(KeyTexts(was == operators_before.end() ? none : was->second->builders),
             KeyTexts(now == operators_after.end() ? none : now->second->builders), "builder", lines);
    const std::vector<std::string>& caches_before = was == operators_before.end() ? no_caches : was->second->caches;
    const std::vector<std::string>& caches_after = now == operators_after.end() ? no_caches : now->second->caches;
    if (caches_before != caches_after) {
      DiffSets(std::set<std::string>(caches_before.begin(), caches_before.end()),
               std::set<std::string>(caches_after.begin(), caches_after.end()), "cache", lines);
    }
    for (std::string& line : lines) out.push_back(Cat(line, " (", name, ")"));
  }
  DiffSets(KeyTexts(before.maintainers()), KeyTexts(after.maintainers()), "maintainer", out);

  // Lifecycles of keys both policies list (a key that comes or goes is on a +/- line above; a new key
  // that is not active says so here too).
  std::set<std::string> key_names;
  for (const Policy* policy : {&before, &after}) {
    for (const Operator& op : policy->operators()) {
      for (const PublicKey& key : op.builders) key_names.insert(key.name());
    }
    for (const PublicKey& key : policy->maintainers()) key_names.insert(key.name());
  }
  for (const std::string& name : key_names) {
    const bool in_before = before.FindBuilder(name) != nullptr || before.FindMaintainer(name) != nullptr;
    const bool in_after = after.FindBuilder(name) != nullptr || after.FindMaintainer(name) != nullptr;
    if (!in_after) continue;
    const KeyLifecycle& now = after.Lifecycle(name);
    if (!in_before) {
      if (now.state != KeyState::kActive) out.push_back(Cat("+ key ", name, ": ", RenderLifecycle(now)));
      continue;
    }
    const KeyLifecycle& was = before.Lifecycle(name);
    if (!(was == now)) out.push_back(Cat("~ key ", name, ": ", RenderLifecycle(was), " -> ", RenderLifecycle(now)));
  }
  return out;
}

}  // namespace attest::consensus
