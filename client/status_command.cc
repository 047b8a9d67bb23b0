// attest status: the verdict of a node for store paths.
#include <algorithm>
#include <ostream>
#include <span>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/status_json.h"
#include "client/terminal_text.h"
#include "consensus/realisation.h"
#include "consensus/store_path.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::Cat;

// Keeps each request well inside message limits while letting the node batch its lookups.
constexpr size_t kPathsPerRequest = 1000;

std::string Operators(const v1::FingerprintTally& tally) {
  return tally.operators().empty() ? "no operator" : absl::StrJoin(tally.operators(), ", ");
}

// The output path a realisation fingerprint names, or "" when it does not parse.
std::string RealisationOutPath(const std::string& fingerprint) {
  absl::StatusOr<consensus::Realisation> claim = consensus::Realisation::ParseFingerprint(fingerprint);
  return claim.ok() ? claim->out_path.full() : "";
}

void PrintStatusText(std::ostream& out, const v1::PathStatus& status) {
  const std::string verdict = VerdictText(status.verdict());
  const bool is_realisation = consensus::RealisationKey::LooksLikeKey(status.store_path());
  out << verdict << std::string(verdict.size() < 10 ? 10 - verdict.size() : 1, ' ') << Printable(status.store_path());
  // A realisation's answer is the output path the builders agree on.
  if (is_realisation && status.verdict() != v1::DISPUTED && !status.fingerprints().empty()) {
    const std::string out_path = RealisationOutPath(status.fingerprints(0).fingerprint());
    out << " -> " << (out_path.empty() ? "(malformed fingerprint)" : out_path);
  }
  // A node that names the rule says in words why the quorum is (not) met, nested groups included; an
  // older node only gives the flat k.
  const bool explained = !status.rule().empty() && !status.quorum_explanation().empty();
  switch (status.verdict()) {
    case v1::CONFIRMED:
    case v1::PENDING:
      if (explained) {
        out << "  rule " << Printable(status.rule()) << ": " << Printable(status.quorum_explanation());
      } else if (!status.fingerprints().empty()) {
        const auto& top = status.fingerprints(0);
        out << ": " << top.operators_size() << (top.operators_size() == 1 ? " operator agrees" : " operators agree")
            << ", quorum " << status.quorum() << " (" << Operators(top) << ")";
      }
      break;
    case v1::DISPUTED:
      out << ": " << status.fingerprints_size() << " competing fingerprints";
      if (!status.dispute_id().empty()) out << ", dispute " << status.dispute_id();
      if (!status.rule().empty()) out << " (rule " << Printable(status.rule()) << ")";
      break;
    case v1::UNKNOWN:
      out << ": no counted attestation";
      if (!status.rule().empty() && !status.quorum_text().empty()) {
        out << " (rule " << Printable(status.rule()) << " needs " << Printable(status.quorum_text()) << ")";
      }
      break;
    default:
      break;
  }
  out << "\n";
  if (status.verdict() == v1::DISPUTED) {
    for (const auto& tally : status.fingerprints()) {
      out << "    " << Printable(tally.fingerprint()) << "\n";
      if (is_realisation) out << "      output " << RealisationOutPath(tally.fingerprint()) << "\n";
      out << "      signed by " << Operators(tally) << " ("
          << absl::StrJoin(tally.builders(), ", ") << ")\n";
    }
    if (!status.flagged_builders().empty()) {
      out << "    flagged (signed more than one fingerprint): "
          << absl::StrJoin(status.flagged_builders(), ", ") << "\n";
    }
  }
}

// Asks the node about `paths` and appends one complete status per path to `out`, in order. A path the
// request repeats is answered by reference (repeat_of); its status here is a copy of the one referred
// to. A request the node refuses as too large (RESOURCE_EXHAUSTED: more paths than it takes at once,
// or an answer past its size limit) is asked again in two halves.
absl::Status AskStatus(NodeApi& node, std::span<const std::string> paths, std::vector<v1::PathStatus>& out) {
  v1::StatusRequest request;
  for (const std::string& path : paths) request.add_store_paths(path);
  absl::StatusOr<v1::StatusResponse> response = node.Status(request);
  if (absl::IsResourceExhausted(response.status()) && paths.size() > 1) {
    const size_t half = paths.size() / 2;
    if (absl::Status s = AskStatus(node, paths.first(half), out); !s.ok()) return s;
    return AskStatus(node, paths.subspan(half), out);
  }
  if (!response.ok()) return response.status();
  if (response->statuses_size() != request.store_paths_size()) {
    return absl::InvalidArgumentError(Cat("the node answered ", response->statuses_size(), " statuses for ",
                                          request.store_paths_size(), " paths"));
  }
  const size_t base = out.size();
  for (int i = 0; i < response->statuses_size(); ++i) {
    v1::PathStatus status = response->statuses(i);
    if (status.store_path().empty()) status.set_store_path(request.store_paths(i));
    if (status.store_path() != request.store_paths(i)) {
      return absl::InvalidArgumentError(
          Cat("the node answered for ", status.store_path(), " when asked about ", request.store_paths(i)));
    }
    if (status.has_repeat_of()) {
      const int first = status.repeat_of();
      if (first < 0 || first >= i || out[base + first].store_path() != status.store_path()) {
        return absl::InvalidArgumentError(Cat("the node answered for ", status.store_path(), " (position ", i,
                                              ") by reference to position ", first,
                                              ", which is not an earlier answer for the same path"));
      }
      status = out[base + first];
    }
    out.push_back(std::move(status));
  }
  return absl::OkStatus();
}

// `attest status --closure PATH`: one verdict for the path and everything it references.
int RunClosure(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env, const NodeOptions& node_options) {
  if (args.positionals().size() != 1 || args.positionals()[0] == "-") {
    return UsageError(spec, env, "--closure takes exactly one store path (the root of the closure)");
  }
  const std::string& root = args.positionals()[0];
  if (auto parsed = consensus::StorePath::Parse(root); !parsed.ok()) {
    return UsageError(spec, env,
                      Cat(parsed.status().message(), " (status takes store paths: /nix/store/<hash>-<name>)"));
  }
  auto node = env.connect_node(node_options);
  if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
  v1::ClosureRequest request;
  request.set_store_path(root);
  absl::StatusOr<v1::ClosureResponse> answer = (*node)->Closure(request);
  if (!answer.ok()) return Failure(spec, env, std::string(answer.status().message()));
  if (answer->store_path() != root || answer->members().empty() || answer->members(0).store_path() != root) {
    return Failure(spec, env, Cat("the node answered about the closure of ", answer->store_path(),
                                  " when asked about ", root));
  }
  if (args.Has("json")) {
    absl::StatusOr<nlohmann::json> document = ClosureToJson(*answer);
    if (!document.ok()) return Failure(spec, env, std::string(document.status().message()));
    env.out << DumpJson(*document) << "\n";
  } else {
    if (answer->policy_version() > 0) {
      env.err << "attest status: answered under policy version " << answer->policy_version() << " ("
              << Printable(answer->policy_hash()) << ")\n";
    }
    env.out << VerdictText(answer->verdict()) << " closure of " << root << ": " << answer->members_size()
            << (answer->members_size() == 1 ? " path" : " paths");
    if (answer->not_confirmed().empty()) {
      env.out << ", every one CONFIRMED\n";
    } else {
      env.out << ", " << answer->not_confirmed_size() << " not CONFIRMED:\n";
      for (const v1::PathStatus& member : answer->members()) {
        if (member.verdict() == v1::CONFIRMED) continue;
        env.out << "  ";
        PrintStatusText(env.out, member);
      }
    }
  }
  return answer->verdict() == v1::CONFIRMED ? kExitOk : kExitFailure;
}

int RunStatus(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (args.positionals().empty())
    return UsageError(spec, env, "no store path or realisation key given (or - to read them from stdin)");
  if (args.Has("closure")) return RunClosure(spec, args, env, *node_options);

  std::vector<std::string> paths;
  for (const std::string& arg : args.positionals()) {
    if (arg != "-") {
      paths.push_back(arg);
      continue;
    }
    auto text = ReadInput("-", env);
    if (!text.ok()) return Failure(spec, env, std::string(text.status().message()));
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
      const size_t start = line.find_first_not_of(" \t");
      if (start == std::string::npos) continue;
      paths.push_back(line.substr(start));
    }
  }
  if (paths.empty()) return UsageError(spec, env, "no store path given on standard input");
  for (std::string& path : paths) {
    if (consensus::RealisationKey::LooksLikeKey(path)) {
      // Asked in the canonical form the node answers in.
      absl::StatusOr<consensus::RealisationKey> key = consensus::RealisationKey::Parse(path);
      if (!key.ok()) {
        return UsageError(spec, env,
                          Cat(key.status().message(),
                              " (a realisation key is sha256:<hex>!<output> or /nix/store/<hash>-<name>.drv^<output>)"));
      }
      path = key->ToString();
      continue;
    }
    auto parsed = consensus::StorePath::Parse(path);
    if (!parsed.ok()) {
      return UsageError(spec, env,
                        Cat(parsed.status().message(),
                            " (status takes store paths /nix/store/<hash>-<name> and realisation keys "
                            "sha256:<hex>!<output> or /nix/store/<hash>-<name>.drv^<output>)"));
    }
  }

  auto node = env.connect_node(*node_options);
  if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
  std::vector<v1::PathStatus> statuses;
  for (size_t start = 0; start < paths.size(); start += kPathsPerRequest) {
    const size_t count = std::min(paths.size() - start, kPathsPerRequest);
    if (absl::Status s = AskStatus(**node, std::span<const std::string>(paths).subspan(start, count), statuses);
        !s.ok()) {
      return Failure(spec, env, std::string(s.message()));
    }
  }

  // The policy each answer was computed under, said once on stderr for text output (a federation that
  // is moving to a new policy can answer under two).
  std::vector<std::pair<int64_t, std::string>> policies;
  for (const v1::PathStatus& status : statuses) {
    if (status.policy_version() <= 0) continue;
    std::pair<int64_t, std::string> policy{status.policy_version(), status.policy_hash()};
    if (std::find(policies.begin(), policies.end(), policy) == policies.end()) policies.push_back(std::move(policy));
  }
  if (!args.Has("json")) {
    for (const auto& [version, hash] : policies) {
      env.err << "attest status: answered under policy version " << version << " (" << Printable(hash) << ")\n";
    }
  }

  bool all_confirmed = true;
  nlohmann::json list = nlohmann::json::array();
  for (const v1::PathStatus& status : statuses) {
    if (status.verdict() != v1::CONFIRMED) all_confirmed = false;
    if (args.Has("json")) {
      absl::StatusOr<nlohmann::json> object = PathStatusToJson(status);
      if (!object.ok()) return Failure(spec, env, std::string(object.status().message()));
      list.push_back(*std::move(object));
    } else {
      PrintStatusText(env.out, status);
    }
  }
  if (args.Has("json")) env.out << DumpJson(list) << "\n";
  return all_confirmed ? kExitOk : kExitFailure;
}

}  // namespace

CommandSpec StatusCommand() {
  CommandSpec spec{
      .name = "status",
      .synopsis = "attest status --node ADDR [--json] STORE_PATH|REALISATION_KEY... | - | --closure STORE_PATH",
      .summary = "Ask a node whether store paths can be trusted.",
      .description =
          "Prints the node's verdict for each store path (- reads paths from standard input, one per line):\n"
          "  UNKNOWN    no counted attestation\n"
          "  PENDING    one fingerprint, its operators do not meet the quorum\n"
          "  CONFIRMED  one fingerprint, its operators meet the quorum\n"
          "  DISPUTED   counted builders signed different fingerprints\n"
          "The quorum is the one of the policy's rule for the path's name (\"default\" when no rule\n"
          "matches); each line names the rule and says why the quorum is or is not met, e.g.\n"
          "  PENDING   /nix/store/...-openssl-3.0.8  rule openssl-*: 1 of 2 needed: independent: 1 of 2 needed\n"
          "The policy version the node answered under is printed on standard error.\n"
          "\n"
          "A realisation key asks about a content-addressed derivation output instead: in Nix 2.8's form\n"
          "sha256:<hex>!<output> (`nix realisation info` prints it) or Nix 2.35's <drv path>^<output>. The\n"
          "verdict is about which output path the builders' signed realisations name; the line shows it\n"
          "(`-> /nix/store/...`), a dispute lists each output path. --json adds \"realisation\": true,\n"
          "\"outPath\" and \"outPaths\"; `attest verify` re-checks those answers too.\n"
          "--json prints a list with the fingerprints, operators, the attestations themselves, the policy\n"
          "(policy_version, policy_hash) and the rule (rule, quorum_text, quorum_explanation), which\n"
          "`attest verify --policy FILE` re-checks offline without trusting the node.\n"
          "\n"
          "--closure asks about one store path and every path it references, recursively, following the\n"
          "references its counted builders attested: the closure is CONFIRMED only when every member is\n"
          "(DISPUTED when any member is), and the paths that are not CONFIRMED are listed. With --json the\n"
          "answer carries every member's evidence, which `attest verify` re-walks and re-checks.\n"
          "\n"
          "Exit status: 0 when every path is CONFIRMED, 1 otherwise (the answer is still printed), 2 on\n"
          "usage errors.",
      .options = NodeOptionSpecs(),
      .examples =
          "  attest status --node 127.0.0.1:7700 "
          "/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin\n"
          "  nix-store -qR ./result | attest status --node 127.0.0.1:7700 --json - > status.json\n"
          "  attest status --node 127.0.0.1:7700 --closure $(readlink -f ./result)\n"
          "  attest status --node 127.0.0.1:7700 'sha256:7f44388f57da34719cecaa95bd2dd9cb6cbe84f66510af9aa2709cfef802ea24!out'\n",
      .run = RunStatus,
  };
  spec.options.push_back(JsonOptionSpec());
  spec.options.push_back({"closure", OptionKind::kFlag, OptionRepeat::kOnce, "",
                          "one verdict for the path and its whole attested closure"});
  return spec;
}

}  // namespace attest::client
