// attest narinfo verify: check narinfo signatures against trusted keys, as Nix does.
#include <ostream>

#include "absl/strings/str_join.h"
#include "client/commands.h"
#include "client/status_json.h"
#include "consensus/keys.h"
#include "consensus/narinfo.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::NarInfoVerification;
using consensus::SignatureCheck;
using consensus::ParseNarInfo;
using consensus::VerifyNarInfo;

std::string_view ResultName(SignatureCheck::Result result) {
  switch (result) {
    case SignatureCheck::Result::kValid:
      return "valid";
    case SignatureCheck::Result::kUntrustedKey:
      return "untrusted_key";
    case SignatureCheck::Result::kDoesNotVerify:
      return "does_not_verify";
    case SignatureCheck::Result::kMalformed:
      return "malformed";
  }
  return "malformed";
}

int RunNarInfoVerify(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  std::vector<consensus::PublicKey> trusted;
  for (const std::string& text : args.Values("trusted-key")) {
    auto key = consensus::PublicKey::Parse(text);
    if (!key.ok()) return UsageError(spec, env, Cat("--trusted-key: ", key.status().message()));
    for (const consensus::PublicKey& other : trusted) {
      if (other.name() == key->name() && other != *key) {
        return UsageError(spec, env,
                          Cat("two different trusted keys are named '", key->name(),
                              "'; Nix looks keys up by name, so names must be unique"));
      }
    }
    trusted.push_back(*std::move(key));
  }
  if (trusted.empty()) {
    return UsageError(
        spec, env, "no trusted key: pass --trusted-key NAME:BASE64 (e.g. from nix.conf trusted-public-keys)");
  }
  if (args.positionals().empty())
    return UsageError(spec, env, "no narinfo given (files, or - for standard input)");

  bool all_ok = true;
  nlohmann::json results = nlohmann::json::array();
  for (const std::string& name : args.positionals()) {
    const std::string source = name == "-" ? "standard input" : name;
    auto text = ReadInput(name, env);
    if (!text.ok()) {
      env.err << "attest narinfo verify: " << text.status().message() << "\n";
      all_ok = false;
      results.push_back({{"source", source}, {"ok", false}, {"error", std::string(text.status().message())}});
      continue;
    }
    auto narinfo = ParseNarInfo(*text, source);
    if (!narinfo.ok()) {
      env.err << "attest narinfo verify: " << narinfo.status().message() << "\n";
      all_ok = false;
      results.push_back(
          {{"source", source}, {"ok", false}, {"error", std::string(narinfo.status().message())}});
      continue;
    }
    const NarInfoVerification verification = VerifyNarInfo(*narinfo, trusted);
    all_ok = all_ok && verification.ok();
    if (args.Has("json")) {
      nlohmann::json checks = nlohmann::json::array();
      for (const SignatureCheck& check : verification.checks) {
        checks.push_back({{"key", check.key_name},
                          {"result", std::string(ResultName(check.result))},
                          {"detail", check.detail}});
      }
      results.push_back({{"source", source},
                         {"path", narinfo->claim.path.full()},
                         {"fingerprint", narinfo->claim.Fingerprint()},
                         {"ok", verification.ok()},
                         {"valid_keys", verification.valid_keys},
                         {"signatures", std::move(checks)}});
      continue;
    }
    if (verification.ok()) {
      env.out << "ok    " << narinfo->claim.path.full() << ": signed by "
              << absl::StrJoin(verification.valid_keys, ", ") << "\n";
    } else {
      env.out << "FAIL  " << narinfo->claim.path.full() << ": no valid signature by a trusted key\n";
    }
    for (const SignatureCheck& check : verification.checks) {
      if (check.result == SignatureCheck::Result::kValid) continue;
      env.out << "      " << (check.key_name.empty() ? "(malformed)" : check.key_name) << ": " << check.detail
              << "\n";
    }
    if (verification.checks.empty()) env.out << "      the narinfo has no Sig: line\n";
  }
  if (args.Has("json")) env.out << DumpJson(results) << "\n";
  return all_ok ? kExitOk : kExitFailure;
}

}  // namespace

CommandSpec NarInfoVerifyCommand() {
  return CommandSpec{
      .name = "narinfo verify",
      .synopsis = "attest narinfo verify --trusted-key KEY [--trusted-key KEY]... [--json] NARINFO... | -",
      .summary = "Check that narinfos carry a valid signature by a trusted key.",
      .description =
          "Recomputes each narinfo's fingerprint from StorePath, NarHash, NarSize and References and checks\n"
          "its Sig: lines. As in Nix, a signature counts only under the trusted key with the same name; a\n"
          "malformed Sig line is reported and does not count. Narinfos are read exactly as binary caches\n"
          "serve them (every line ends in a newline).\n"
          "\n"
          "Exit status: 0 when each narinfo has at least one valid signature by a trusted key, 1 otherwise,\n"
          "2 on usage errors.",
      .options = {{"trusted-key", OptionKind::kValue, OptionRepeat::kMany, "KEY",
                   "a trusted public key, name:base64 (as in nix.conf trusted-public-keys)"},
                  JsonOptionSpec()},
      .examples =
          "  curl -s https://cache.nixos.org/syd87l2rxw8cbsxmxl853h0r6pdwhwjr.narinfo | attest narinfo "
          "verify \\\n"
          "    --trusted-key cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= -\n",
      .run = RunNarInfoVerify,
  };
}

}  // namespace attest::client
