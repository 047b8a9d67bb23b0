// attest verify: re-check a node's status answer offline, trusting only the policy.
#include <ostream>

#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/status_json.h"
#include "client/status_verify.h"
#include "consensus/policy.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::Cat;

int RunVerify(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  const std::optional<std::string> policy_file = args.Value("policy");
  if (!policy_file)
    return UsageError(spec, env, "no policy given: pass --policy FILE (the federation's policy.toml)");
  if (args.positionals().size() > 1)
    return UsageError(spec, env, "give at most one status file (or - for stdin)");
  const std::string input_name = args.positionals().empty() ? "-" : args.positionals()[0];

  auto policy_text = ReadInput(*policy_file, env);
  if (!policy_text.ok()) return Failure(spec, env, std::string(policy_text.status().message()));
  auto policy = consensus::Policy::ParseToml(*policy_text, *policy_file);
  if (!policy.ok()) return Failure(spec, env, std::string(policy.status().message()));

  auto input = ReadInput(input_name, env);
  if (!input.ok()) return Failure(spec, env, std::string(input.status().message()));
  const nlohmann::json document = nlohmann::json::parse(*input, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    return Failure(spec, env,
                   Cat(input_name == "-" ? "standard input" : input_name,
                       " is not JSON (expected the output of `attest status --json`)"));
  }
  auto verification = VerifyStatusDocument(*policy, document, *policy_file == "-" ? "the policy" : *policy_file);
  if (!verification.ok()) return Failure(spec, env, std::string(verification.status().message()));

  if (args.Has("json")) {
    nlohmann::json list = nlohmann::json::array();
    for (const PathVerification& p : verification->paths) {
      list.push_back({{"path", p.path},
                      {"ok", p.ok()},
                      {"claimed_verdict", p.claimed_verdict},
                      {"verdict", std::string(consensus::VerdictName(p.verdict))},
                      {"fingerprint", p.fingerprint},
                      {"rule", p.rule},
                      {"explanation", p.explanation},
                      {"signatures_verified", p.signatures_verified},
                      {"problems", p.problems}});
    }
    if (verification->closure.has_value()) {
      const ClosureVerification& c = *verification->closure;
      env.out << DumpJson(nlohmann::json{{"closure", c.root},
                                         {"ok", verification->ok()},
                                         {"claimed_verdict", c.claimed_verdict},
                                         {"verdict", std::string(consensus::VerdictName(c.verdict))},
                                         {"not_confirmed", c.not_confirmed},
                                         {"problems", c.problems},
                                         {"members", std::move(list)}})
              << "\n";
    } else {
      env.out << DumpJson(list) << "\n";
    }
  } else {
    for (const PathVerification& p : verification->paths) {
      if (p.ok()) {
        env.out << "ok    " << consensus::VerdictName(p.verdict) << " " << p.path << ": "
                << p.signatures_verified
                << " signature(s) verify with the policy's keys; verdict and fingerprints match\n";
      } else {
        env.out << "FAIL  " << p.path << "\n";
        for (const std::string& problem : p.problems) env.out << "      " << problem << "\n";
      }
      // What a PENDING path still needs, in the policy's words ("independent: 1 of 2 needed").
      if (p.verdict == consensus::Verdict::kPending && !p.explanation.empty()) {
        env.out << "      rule " << p.rule << ": " << p.explanation << "\n";
      }
    }
  }
  if (verification->closure.has_value() && !args.Has("json")) {
    const ClosureVerification& c = *verification->closure;
    if (c.problems.empty()) {
      env.out << "ok    closure of " << c.root << " is " << consensus::VerdictName(c.verdict) << ": "
              << verification->paths.size() << " member(s) re-walked from the attested references";
      if (!c.not_confirmed.empty()) env.out << "; not CONFIRMED: " << absl::StrJoin(c.not_confirmed, ", ");
      env.out << "\n";
    } else {
      env.out << "FAIL  closure of " << c.root << "\n";
      for (const std::string& problem : c.problems) env.out << "      " << problem << "\n";
    }
  }
  if (verification->paths.empty()) env.err << "attest verify: the status list is empty; nothing to check\n";
  if (!verification->ok()) {
    env.err << "attest verify: the node's answer does not hold up against policy " << policy->Hash() << " (version "
            << policy->version() << ", " << *policy_file << ")\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

CommandSpec VerifyCommand() {
  return CommandSpec{
      .name = "verify",
      .synopsis = "attest verify --policy FILE [--json] [STATUS_JSON | -]",
      .summary = "Re-check a node's status answer offline, trusting only the policy.",
      .description =
          "Reads what `attest status --json` printed (a file, or standard input) and, for each path,\n"
          "verifies every attestation's signature with the builder keys of the policy (an unknown key or a\n"
          "bad signature fails, naming it), checks that each attestation is about that path, recomputes the\n"
          "tally and compares the verdict, the agreed fingerprint and the operators behind each fingerprint\n"
          "with what the node claimed. The quorum is the one of the policy's rule for the path's name; the\n"
          "rule the node names and the policy version and hash it answered under must be the file's (a\n"
          "mismatch says which policy the answer was computed under). A retired key's attestation counts\n"
          "only when received before its cut-off (receivedTime), a revoked key's never. For a PENDING path\n"
          "the report says what the quorum still needs (\"independent: 1 of 2 needed\").\n"
          "The node itself is never contacted.\n"
          "\n"
          "Exit status: 0 when everything holds, 1 when anything does not, 2 on usage errors.",
      .options = {{"policy", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
                   "the federation's policy (TOML), the only thing trusted"},
                  JsonOptionSpec()},
      .examples =
          "  attest status --node 127.0.0.1:7700 --json /nix/store/...-hello-2.12 | \\\n"
          "    attest verify --policy /etc/attest/policy.toml -\n",
      .run = RunVerify,
  };
}

}  // namespace attest::client
