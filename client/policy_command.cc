// attest policy sign / submit / show / diff: the signed chain of policies from a maintainer's seat.
//
// A successor policy names its parent's hash and is adopted by a node when enough maintainers of the
// parent approved it (consensus/policy_update.h). `sign` makes one maintainer's approval line, `submit`
// hands the TOML and the approvals to a node, `show` prints a node's current policy (or a file's) and
// `diff` says what a successor changes and whether it is one.
#include <algorithm>
#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/status_json.h"
#include "client/terminal_text.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "consensus/policy_update.h"
#include "consensus/sha256.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::StdView;
using nlohmann::json;

// A policy file, as read and as parsed.
struct PolicyFile final {
  std::string text;
  consensus::Policy policy;
};

absl::StatusOr<PolicyFile> ReadPolicyFile(const std::string& name, CommandEnv& env) {
  absl::StatusOr<std::string> text = ReadInput(name, env);
  if (!text.ok()) return text.status();
  absl::StatusOr<consensus::Policy> policy =
      consensus::Policy::ParseToml(*text, name == "-" ? std::string_view("standard input") : std::string_view(name));
  if (!policy.ok()) return policy.status();
  return PolicyFile{*std::move(text), *std::move(policy)};
}

std::string KeyNameOf(std::string_view key_text) { return std::string(key_text.substr(0, key_text.find(':'))); }

// ---------------------------------------------------------------------------------------------------
// What `show` prints, read from a policy's canonical text (consensus/policy.h, Policy::CanonicalText),
// so a node's answer and a local file are shown the same way, and the node's text is the one its hash
// names (checked before it is read).

struct KeyView final {
  std::string key;  // "name:base64"
  std::string name;
  std::string state = "active";
  int64_t retired_unix = 0;
  std::string revoked_reason = {};
};

struct OperatorView final {
  std::string name;
  std::vector<KeyView> builders = {};
  std::vector<std::string> caches = {};
};

struct GroupView final {
  std::string name;
  int threshold = 0;
  std::vector<std::string> members = {};
};

struct RuleView final {
  int index = 0;
  std::string quorum = {};  // in words
  std::vector<std::string> globs = {};
};

struct PolicyView final {
  std::string hash;
  int64_t version = 1;
  std::string parent;
  int64_t update_threshold = 1;
  std::string quorum = "?";  // in words
  std::vector<GroupView> groups;
  std::vector<RuleView> rules;
  std::vector<OperatorView> operators;
  std::vector<KeyView> maintainers;
  // Only from a node.
  bool from_node = false;
  std::vector<std::string> approvals;
  std::vector<std::string> counted_approvals;
  int64_t adopted_unix = 0;
  std::string adopted_from;
};

std::string AnyText(std::string_view k) { return Cat("any ", k, k == "1" ? " operator" : " operators"); }

std::string ThresholdText(std::string_view t, const std::vector<std::string>& members) {
  return Cat(t, " of (", absl::StrJoin(members, ", "), ")");
}

// A rule's quorum field: "any:<k>" or "threshold:<t>:<m1>,<m2>,...".
std::string RuleQuorumText(std::string_view field) {
  if (field.starts_with("any:")) return AnyText(field.substr(4));
  if (field.starts_with("threshold:")) {
    std::string_view rest = field.substr(10);
    const size_t colon = rest.find(':');
    if (colon != std::string_view::npos) {
      std::vector<std::string> members = absl::StrSplit(consensus::AbslView(rest.substr(colon + 1)), ',');
      return ThresholdText(rest.substr(0, colon), members);
    }
  }
  return std::string(field);
}

// Lines it does not know are skipped: a newer node may add facts this client cannot show.
PolicyView ViewOfCanonicalText(std::string_view text) {
  PolicyView view;
  std::map<std::string, KeyView*> keys;
  std::vector<std::pair<std::string, std::string>> retired, revoked;
  for (absl::string_view line : absl::StrSplit(consensus::AbslView(text), '\n')) {
    const std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.empty()) continue;
    const std::string& what = words[0];
    const auto rest = [&](size_t from) {
      return std::vector<std::string>(words.begin() + std::min(from, words.size()), words.end());
    };
    if (what == "version" && words.size() == 2) {
      absl::SimpleAtoi(words[1], &view.version);
    } else if (what == "parent" && words.size() == 2) {
      view.parent = words[1];
    } else if (what == "update-threshold" && words.size() == 2) {
      absl::SimpleAtoi(words[1], &view.update_threshold);
    } else if (what == "quorum" && words.size() == 2) {
      view.quorum = AnyText(words[1]);
    } else if (what == "quorum-threshold" && words.size() >= 2) {
      view.quorum = ThresholdText(words[1], rest(2));
    } else if (what == "group" && words.size() >= 3) {
      GroupView group{.name = words[1], .members = rest(3)};
      absl::SimpleAtoi(words[2], &group.threshold);
      view.groups.push_back(std::move(group));
    } else if (what == "rule" && words.size() >= 3) {
      RuleView rule{.quorum = RuleQuorumText(words[2]), .globs = rest(3)};
      absl::SimpleAtoi(words[1], &rule.index);
      view.rules.push_back(std::move(rule));
    } else if (what == "operator" && words.size() == 2) {
      view.operators.push_back(OperatorView{.name = words[1]});
    } else if (what == "builder" && words.size() == 2 && !view.operators.empty()) {
      view.operators.back().builders.push_back(KeyView{.key = words[1], .name = KeyNameOf(words[1])});
    } else if (what == "cache" && words.size() == 2 && !view.operators.empty()) {
      view.operators.back().caches.push_back(words[1]);
    } else if (what == "maintainer" && words.size() == 2) {
      view.maintainers.push_back(KeyView{.key = words[1], .name = KeyNameOf(words[1])});
    } else if (what == "retired" && words.size() == 3) {
      retired.emplace_back(words[1], words[2]);
    } else if (what == "revoked" && words.size() == 3) {
      revoked.emplace_back(words[1], words[2]);
    }
  }
  // Lifecycle lines come after every key line; pointers are taken once the vectors stopped growing.
  for (OperatorView& op : view.operators) {
    for (KeyView& key : op.builders) keys[key.name] = &key;
  }
  for (KeyView& key : view.maintainers) keys[key.name] = &key;
  for (const auto& [name, when] : retired) {
    if (auto it = keys.find(name); it != keys.end()) {
      it->second->state = "retired";
      absl::SimpleAtoi(when, &it->second->retired_unix);
    }
  }
  for (const auto& [name, reason] : revoked) {
    if (auto it = keys.find(name); it != keys.end()) {
      it->second->state = "revoked";
      it->second->revoked_reason = reason;
    }
  }
  return view;
}

PolicyView ViewOfPolicy(const consensus::Policy& policy) {
  PolicyView view = ViewOfCanonicalText(policy.CanonicalText());
  view.hash = policy.Hash();
  view.version = policy.version();
  view.parent = policy.parent();
  view.update_threshold = policy.update_threshold();
  return view;
}

// The node's policy, from its canonical text when the hash it reports names that text, else from the
// TOML it was adopted from when that parses into the policy of that hash. Anything else is refused:
// what is shown must be the policy the node says it runs.
absl::StatusOr<PolicyView> ViewOfNodePolicy(const v1::PolicyInfo& info) {
  PolicyView view;
  if (!info.canonical_text().empty()) {
    const std::string text_hash = Cat("sha256:", consensus::HexEncode(consensus::Sha256(info.canonical_text())));
    if (text_hash != info.hash()) {
      return absl::DataLossError(Cat("the node's policy text hashes to ", text_hash, ", not to the policy hash ",
                                     Printable(info.hash()), " it reports: its answer cannot be trusted"));
    }
    view = ViewOfCanonicalText(info.canonical_text());
  } else if (!info.toml().empty()) {
    absl::StatusOr<consensus::Policy> policy = consensus::Policy::ParseToml(info.toml(), "the node's policy");
    if (!policy.ok()) {
      return absl::DataLossError(Cat("the node's policy TOML does not parse: ", policy.status().message()));
    }
    if (policy->Hash() != info.hash()) {
      return absl::DataLossError(Cat("the node's policy TOML hashes to ", policy->Hash(), ", not to the policy hash ",
                                     Printable(info.hash()), " it reports"));
    }
    view = ViewOfPolicy(*policy);
  } else {
    return absl::DataLossError("the node sent neither its policy text nor its TOML (is it an attestd?)");
  }
  view.hash = info.hash();
  view.version = info.version() > 0 ? info.version() : view.version;
  view.parent = info.parent();
  view.update_threshold = info.update_threshold() > 0 ? info.update_threshold() : view.update_threshold;
  view.from_node = true;
  view.approvals.assign(info.approvals().begin(), info.approvals().end());
  view.counted_approvals.assign(info.counted_approvals().begin(), info.counted_approvals().end());
  view.adopted_unix = info.adopted_unix();
  view.adopted_from = info.adopted_from();
  return view;
}

std::string KeyText(const KeyView& key) {
  if (key.state == "retired") return Cat(key.name, " (retired ", TimeText(key.retired_unix), ")");
  if (key.state == "revoked") return Cat(key.name, " (revoked: ", key.revoked_reason, ")");
  return key.name;
}

json KeyJson(const KeyView& key) {
  json object = {{"key", key.key}, {"name", key.name}, {"state", key.state}};
  if (key.state == "retired") object["retired_unix"] = key.retired_unix;
  if (key.state == "revoked") object["revoked_reason"] = key.revoked_reason;
  return object;
}

json ViewJson(const PolicyView& view) {
  json groups = json::array();
  for (const GroupView& g : view.groups)
    groups.push_back({{"name", g.name}, {"threshold", g.threshold}, {"members", g.members}});
  json rules = json::array();
  for (const RuleView& r : view.rules) rules.push_back({{"index", r.index}, {"names", r.globs}, {"quorum", r.quorum}});
  json operators = json::array();
  for (const OperatorView& op : view.operators) {
    json builders = json::array();
    for (const KeyView& key : op.builders) builders.push_back(KeyJson(key));
    operators.push_back({{"name", op.name}, {"builders", std::move(builders)}, {"caches", op.caches}});
  }
  json maintainers = json::array();
  for (const KeyView& key : view.maintainers) maintainers.push_back(KeyJson(key));
  json object = {{"hash", view.hash},
                 {"version", view.version},
                 {"parent", view.parent},
                 {"update_threshold", view.update_threshold},
                 {"quorum", view.quorum},
                 {"groups", std::move(groups)},
                 {"rules", std::move(rules)},
                 {"operators", std::move(operators)},
                 {"maintainers", std::move(maintainers)}};
  if (view.from_node) {
    object["approvals"] = view.approvals;
    object["counted_approvals"] = view.counted_approvals;
    object["adopted_unix"] = view.adopted_unix;
    object["adopted_from"] = view.adopted_from;
  }
  return object;
}

void PrintView(std::ostream& out, const PolicyView& view) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"policy", Printable(view.hash)});
  rows.push_back({"version", Cat(view.version)});
  rows.push_back({"parent", view.parent.empty() ? "none (the first policy of its chain)" : Printable(view.parent)});
  rows.push_back({"updates", view.maintainers.empty()
                                 ? "none possible (no maintainers)"
                                 : Cat("need ", view.update_threshold, " of its maintainers' approvals")});
  if (view.from_node) {
    if (view.adopted_unix <= 0 && view.approvals.empty()) {
      rows.push_back({"adopted", "from the node's policy file"});
    } else {
      rows.push_back({"adopted", Cat(TimeText(view.adopted_unix), view.adopted_from.empty()
                                                                      ? " (submitted to this node)"
                                                                      : Cat(" (from ", Printable(view.adopted_from), ")"))});
      std::vector<std::string> given;
      for (const std::string& approval : view.approvals) given.push_back(Printable(KeyNameOf(approval)));
      std::vector<std::string> counted;
      for (const std::string& name : view.counted_approvals) counted.push_back(Printable(name));
      rows.push_back({"approvals", Cat(given.size(), " given (", absl::StrJoin(given, ", "), "), ", counted.size(),
                                       " counted (", absl::StrJoin(counted, ", "), ")")});
    }
  }
  rows.push_back({"quorum", Printable(view.quorum)});
  for (const GroupView& g : view.groups) {
    rows.push_back({"group", Printable(Cat(g.name, " = ", ThresholdText(Cat(g.threshold), g.members)))});
  }
  for (const RuleView& r : view.rules) {
    rows.push_back({Cat("rule ", r.index), Printable(Cat(absl::StrJoin(r.globs, ", "), ": ", r.quorum))});
  }
  for (const OperatorView& op : view.operators) {
    std::vector<std::string> builders;
    for (const KeyView& key : op.builders) builders.push_back(KeyText(key));
    std::string line = Cat(op.name, ": ", absl::StrJoin(builders, ", "));
    if (!op.caches.empty()) line += Cat("; caches ", absl::StrJoin(op.caches, ", "));
    rows.push_back({"operator", Printable(line)});
  }
  std::vector<std::string> maintainers;
  for (const KeyView& key : view.maintainers) maintainers.push_back(KeyText(key));
  rows.push_back({"maintainers", maintainers.empty() ? "none" : Printable(absl::StrJoin(maintainers, ", "))});
  PrintTable(out, rows);
}

// ---------------------------------------------------------------------------------------------------

int RunSign(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  const std::optional<std::string> key_file = args.Value("key");
  if (!key_file) return UsageError(spec, env, "no maintainer key: pass --key MAINTAINER_KEY_FILE");
  if (args.positionals().size() != 1) return UsageError(spec, env, "give exactly one policy file (the successor)");
  const std::string& policy_name = args.positionals()[0];
  if (policy_name == "-" && *key_file == "-") return UsageError(spec, env, "the key and the policy cannot both be -");

  // Nothing is signed unless the text is a valid policy: an approval of a hash no TOML produces is useless.
  absl::StatusOr<PolicyFile> file = ReadPolicyFile(policy_name, env);
  if (!file.ok()) return Failure(spec, env, std::string(file.status().message()));
  absl::StatusOr<std::string> key_text = ReadInput(*key_file, env);
  if (!key_text.ok()) return Failure(spec, env, std::string(key_text.status().message()));
  absl::StatusOr<consensus::SecretKey> key = consensus::SecretKey::Parse(*key_text);
  if (!key.ok()) return Failure(spec, env, Cat(*key_file, ": ", key.status().message()));

  const consensus::Policy& policy = file->policy;
  env.out << consensus::ApprovePolicy(policy, *key).ToString() << "\n";
  env.err << "attest policy sign: " << key->name() << " approved " << policy.Hash() << " (version "
          << policy.version() << ")\n";
  if (policy.parent().empty()) {
    env.err << "attest policy sign: warning: " << policy_name
            << " names no parent, so no node adopts it as an update (add parent = \"<hash of the current "
               "policy>\" and version = <its version + 1>)\n";
  }
  return kExitOk;
}

int RunSubmit(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (!args.positionals().empty()) return UsageError(spec, env, Cat("unexpected argument ", args.positionals()[0]));
  const std::optional<std::string> policy_name = args.Value("policy");
  if (!policy_name) return UsageError(spec, env, "no policy: pass --policy NEW.toml");
  const std::vector<std::string> signature_files = args.Values("signature");
  if (signature_files.empty()) {
    return UsageError(spec, env, "no approvals: pass --signature FILE (made by `attest policy sign`), once per file");
  }

  absl::StatusOr<PolicyFile> file = ReadPolicyFile(*policy_name, env);
  if (!file.ok()) return Failure(spec, env, std::string(file.status().message()));
  v1::PolicyLink link;
  // The text as read: maintainers signed the policy it parses to, and people read this text later.
  link.set_toml(file->text);
  std::map<std::string, std::pair<std::string, std::string>> by_key;  // key name -> (signature, file)
  for (const std::string& name : signature_files) {
    absl::StatusOr<std::string> text = ReadInput(name, env);
    if (!text.ok()) return Failure(spec, env, std::string(text.status().message()));
    absl::StatusOr<std::vector<consensus::Signature>> approvals = consensus::ParseApprovals(*text, name);
    if (!approvals.ok()) return Failure(spec, env, std::string(approvals.status().message()));
    for (const consensus::Signature& approval : *approvals) {
      const std::string signature = approval.ToString();
      auto [it, inserted] = by_key.try_emplace(approval.key_name, signature, name);
      if (inserted) {
        link.add_approvals(signature);
      } else if (it->second.first != signature) {
        // Ed25519 signatures are deterministic: one key over one policy gives one signature.
        return Failure(spec, env,
                       Cat("maintainer ", approval.key_name, " has different approvals in ", it->second.second,
                           " and ", name, ": at most one of them is for ", file->policy.Hash(),
                           " (check with the maintainer which file is current)"));
      }
    }
  }

  auto node = env.connect_node(*node_options);
  if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
  absl::StatusOr<v1::SubmitPolicyResponse> response = (*node)->SubmitPolicy(link);
  if (!response.ok()) return Failure(spec, env, std::string(response.status().message()));

  if (args.Has("json")) {
    env.out << DumpJson(json{{"hash", response->hash()},
                             {"version", response->version()},
                             {"previous_hash", response->previous_hash()},
                             {"counted_approvals", response->counted_approvals()}})
            << "\n";
  } else {
    std::vector<std::string> counted;
    for (const std::string& name : response->counted_approvals()) counted.push_back(Printable(name));
    PrintTable(env.out, {{"adopted", Printable(response->hash())},
                         {"version", Cat(response->version())},
                         {"previous", Printable(response->previous_hash())},
                         {"approvals", Cat(counted.size(), " counted (", absl::StrJoin(counted, ", "), ")")}});
  }
  if (response->hash() != file->policy.Hash()) {
    env.err << "attest policy submit: the node reports adopting " << Printable(response->hash()) << ", but "
            << *policy_name << " is " << file->policy.Hash() << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

int RunShow(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  if (args.positionals().size() > 1) return UsageError(spec, env, "give at most one policy file");
  PolicyView view;
  if (args.positionals().size() == 1) {
    if (args.Has("node")) return UsageError(spec, env, "give either --node ADDR or a policy FILE, not both");
    absl::StatusOr<PolicyFile> file = ReadPolicyFile(args.positionals()[0], env);
    if (!file.ok()) return Failure(spec, env, std::string(file.status().message()));
    view = ViewOfPolicy(file->policy);
  } else {
    auto node_options = NodeOptionsFromArgs(args, env);
    if (!node_options.ok()) {
      return UsageError(spec, env, Cat(node_options.status().message(), "; or give a policy FILE to show offline"));
    }
    auto node = env.connect_node(*node_options);
    if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
    absl::StatusOr<v1::PolicyInfo> info = (*node)->GetPolicy(v1::GetPolicyRequest());
    if (!info.ok()) return Failure(spec, env, std::string(info.status().message()));
    absl::StatusOr<PolicyView> node_view = ViewOfNodePolicy(*info);
    if (!node_view.ok()) return Failure(spec, env, Cat("node ", node_options->address, ": ", node_view.status().message()));
    view = *std::move(node_view);
  }
  if (args.Has("json")) {
    env.out << DumpJson(ViewJson(view)) << "\n";
  } else {
    PrintView(env.out, view);
  }
  return kExitOk;
}

int RunDiff(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  if (args.positionals().size() != 2) return UsageError(spec, env, "give two policy files: OLD NEW");
  const std::string& old_name = args.positionals()[0];
  const std::string& new_name = args.positionals()[1];
  if (old_name == "-" && new_name == "-") return UsageError(spec, env, "only one of the two files can be -");
  absl::StatusOr<PolicyFile> before = ReadPolicyFile(old_name, env);
  if (!before.ok()) return Failure(spec, env, std::string(before.status().message()));
  absl::StatusOr<PolicyFile> after = ReadPolicyFile(new_name, env);
  if (!after.ok()) return Failure(spec, env, std::string(after.status().message()));
  const consensus::Policy& old_policy = before->policy;
  const consensus::Policy& new_policy = after->policy;

  const std::vector<std::string> lines = consensus::DiffPolicies(old_policy, new_policy);
  const bool same = old_policy.Hash() == new_policy.Hash();
  const bool parent_ok = new_policy.parent() == old_policy.Hash();
  const bool version_ok = new_policy.version() == old_policy.version() + 1;
  if (args.Has("json")) {
    env.out << DumpJson(json{{"old", {{"hash", old_policy.Hash()}, {"version", old_policy.version()}}},
                             {"new", {{"hash", new_policy.Hash()}, {"version", new_policy.version()},
                                      {"parent", new_policy.parent()}}},
                             {"changed", !same},
                             {"changes", lines},
                             {"successor", parent_ok && version_ok}})
            << "\n";
    return kExitOk;
  }
  if (same) {
    env.out << "no change: both are " << old_policy.Hash() << "\n";
  } else {
    for (const std::string& line : lines) env.out << Printable(line) << "\n";
  }
  if (parent_ok && version_ok) {
    env.out << new_name << " is a valid successor of " << old_name << " (parent " << old_policy.Hash()
            << ", version " << old_policy.version() << " -> " << new_policy.version() << "); adopting it needs "
            << old_policy.update_threshold() << " approval(s) by maintainers of " << old_name << "\n";
    return kExitOk;
  }
  std::vector<std::string> why;
  if (new_policy.parent().empty()) {
    why.push_back(Cat("it names no parent (add parent = \"", old_policy.Hash(), "\")"));
  } else if (!parent_ok) {
    why.push_back(Cat("its parent is ", new_policy.parent(), ", but ", old_name, " is ", old_policy.Hash()));
  }
  if (!version_ok) {
    why.push_back(Cat("its version is ", new_policy.version(), ", not ", old_policy.version() + 1));
  }
  env.out << new_name << " is not a successor of " << old_name << ": " << absl::StrJoin(why, "; ") << "\n";
  return kExitOk;
}

}  // namespace

CommandSpec PolicySignCommand() {
  return CommandSpec{
      .name = "policy sign",
      .synopsis = "attest policy sign --key MAINTAINER_KEY NEW.toml",
      .summary = "Approve a successor policy with a maintainer key (prints one approval line).",
      .description =
          "Parses NEW.toml (nothing is signed when it is not a valid policy) and prints the maintainer's\n"
          "approval of it on standard output: one line \"<key name>:<base64>\", a Nix signature over\n"
          "\"attest/policy-approval/v1\" and the policy's hash. The hash covers the canonical policy, which\n"
          "names its parent and version, so the approval is for that one step of the chain only.\n"
          "Collect the lines of enough maintainers of the current policy (its update_threshold) and hand\n"
          "them to `attest policy submit`.",
      .options = {{"key", OptionKind::kValue, OptionRepeat::kOnce, "FILE", "the maintainer's Nix secret key file"}},
      .examples = "  attest policy sign --key maint-1.sec policy-v3.toml > maint-1.sig\n",
      .run = RunSign,
  };
}

CommandSpec PolicySubmitCommand() {
  CommandSpec spec{
      .name = "policy submit",
      .synopsis = "attest policy submit --node ADDR --policy NEW.toml --signature FILE [--signature FILE]... [--json]",
      .summary = "Hand a successor policy and its approvals to a node, which adopts it and replicates it.",
      .description =
          "Sends the TOML text as it is in NEW.toml and every approval of the --signature files (each holds\n"
          "one or more lines from `attest policy sign`; blank lines and # comments are skipped) to the node\n"
          "(Policy/SubmitPolicy). The node adopts it when its parent is the node's current policy, its\n"
          "version is one more, and enough maintainers of the current policy approved it; its peers follow.\n"
          "Prints the adopted hash, its version, the previous hash and the approvals that counted. When the\n"
          "node refuses, its reason is printed as it gave it (too few approvals counted and why each other\n"
          "did not, a parent that is not the current policy, the policy is current already) and the exit\n"
          "status is 1.",
      .options = NodeOptionSpecs(),
      .examples = "  attest policy submit --node 127.0.0.1:7700 --policy policy-v3.toml \\\n"
                  "      --signature maint-1.sig --signature maint-2.sig\n",
      .run = RunSubmit,
  };
  spec.options.push_back({.name = "policy", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "FILE", .help = "the successor policy (TOML)"});
  spec.options.push_back({.name = "signature", .kind = OptionKind::kValue, .repeat = OptionRepeat::kMany,
                          .value_name = "FILE", .help = "approvals made by `attest policy sign`"});
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

CommandSpec PolicyShowCommand() {
  CommandSpec spec{
      .name = "policy show",
      .synopsis = "attest policy show --node ADDR [--json] | attest policy show [--json] FILE",
      .summary = "Show a node's current policy (or a policy file): version, hash, chain, quorum, keys.",
      .description =
          "With --node: the node's current policy (Policy/GetPolicy): its hash, version, parent, the\n"
          "approvals an update needs, when and from where it was adopted and whose approvals counted, then\n"
          "the quorum, groups, rules, operators with their builder keys (retired and revoked ones marked)\n"
          "and maintainers. The node's policy text is checked against the hash it reports.\n"
          "With FILE (and no --node): the same for a local policy file, offline.\n"
          "--json prints one object: hash, version, parent, update_threshold, quorum, groups, rules,\n"
          "operators, maintainers and, from a node, approvals, counted_approvals, adopted_unix, adopted_from.",
      .options = NodeOptionSpecs(),
      .examples = "  attest policy show --node 127.0.0.1:7700\n"
                  "  attest policy show /etc/attest/policy.toml\n",
      .run = RunShow,
  };
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

CommandSpec PolicyDiffCommand() {
  return CommandSpec{
      .name = "policy diff",
      .synopsis = "attest policy diff [--json] OLD.toml NEW.toml",
      .summary = "What a successor policy changes, and whether it is a valid successor.",
      .description =
          "Prints one line per difference (\"+ operator org-e\", \"~ key org-b-1: active -> revoked\n"
          "(compromised)\", ...), or \"no change\" when both files are the same policy (the same hash;\n"
          "comments and layout do not count), then whether NEW names OLD as its parent with OLD's version\n"
          "plus one, which a node needs before it adopts NEW.\n"
          "Exit status 0 whether they differ or not; 1 when a file cannot be read or parsed.",
      .options = {JsonOptionSpec()},
      .examples = "  attest policy diff policy-v2.toml policy-v3.toml\n",
      .run = RunDiff,
  };
}

}  // namespace attest::client
