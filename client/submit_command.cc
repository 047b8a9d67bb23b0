// attest submit: sign what `nix path-info --json` describes and send it to a node.
#include <ostream>

#include "client/commands.h"
#include "client/path_info_json.h"
#include "client/submission.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/strict_decimal.h"
#include "consensus/text.h"
#include "proto/convert.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::ParseStrictDecimal;

constexpr size_t kDefaultBatchSize = 1000;
constexpr size_t kMaxBatchSize = 100000;

absl::StatusOr<consensus::BuildKind> ParseBuildKind(const std::string& text) {
  for (auto kind :
       {consensus::BuildKind::kFirstBuild, consensus::BuildKind::kRebuild, consensus::BuildKind::kCheck}) {
    if (text == consensus::BuildKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      Cat("--build-kind ", consensus::QuoteForError(text), " is not one of build, rebuild, check"));
}

int RunSubmit(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  const std::optional<std::string> key_file = args.Value("key");
  if (!key_file) return UsageError(spec, env, "no signing key: pass --key SECRET_KEY_FILE");
  if (args.positionals().size() > 1) {
    return UsageError(spec, env, "give at most one input (a file, or - for standard input)");
  }
  size_t batch_size = kDefaultBatchSize;
  if (auto text = args.Value("batch-size")) {
    auto parsed = ParseStrictDecimal(*text);
    if (!parsed || *parsed == 0 || *parsed > kMaxBatchSize) {
      return UsageError(spec, env, Cat("--batch-size must be a number from 1 to ", kMaxBatchSize));
    }
    batch_size = static_cast<size_t>(*parsed);
  }
  consensus::BuildKind build_kind = consensus::BuildKind::kFirstBuild;
  if (auto text = args.Value("build-kind")) {
    auto parsed = ParseBuildKind(*text);
    if (!parsed.ok()) return UsageError(spec, env, std::string(parsed.status().message()));
    build_kind = *parsed;
  }
  const std::string system = args.Value("system").value_or("");
  const bool not_built_here_ok = args.Has("not-built-here-ok");
  const OutputFormat format = args.Has("json") ? OutputFormat::kJson : OutputFormat::kText;

  auto key_text = ReadInput(*key_file, env);
  if (!key_text.ok()) return Failure(spec, env, std::string(key_text.status().message()));
  auto key = consensus::SecretKey::Parse(*key_text);
  if (!key.ok()) return Failure(spec, env, Cat(*key_file, ": ", key.status().message()));

  const std::string input_name = args.positionals().empty() ? "-" : args.positionals()[0];
  auto input = ReadInput(input_name, env);
  if (!input.ok()) return Failure(spec, env, std::string(input.status().message()));
  auto infos = ParsePathInfoJson(*input);
  if (!infos.ok()) {
    return Failure(spec, env,
                   Cat(input_name == "-" ? "standard input" : input_name, ": ", infos.status().message()));
  }

  std::vector<ItemOutcome> refused;
  std::vector<v1::Attestation> to_send;
  const std::string public_key = key->public_key().ToString();
  for (const NixPathInfo& info : *infos) {
    if (!info.ultimate && !not_built_here_ok) {
      const std::string message = Cat(
          "path ", info.claim.path.full(),
          " is not marked ultimate (it was substituted, not built here): an attestation must come from an "
          "independent rebuild; pass --not-built-here-ok to override");
      env.err << "attest submit: " << message << "\n";
      refused.push_back(ItemOutcome{.path = info.claim.path.full(),
                                    .key_name = key->name(),
                                    .kind = OutcomeKind::kRefused,
                                    .code = 0,
                                    .message = "not marked ultimate (substituted, not built here)"});
      continue;
    }
    consensus::BuildMetadata metadata{
        .deriver = info.deriver ? info.deriver->full() : "",
        .output_name = info.output_name,
        .system = system,
        .build_kind = build_kind,
        .build_time_unix = info.registration_time,
    };
    if (absl::Status s = consensus::ValidateBuildMetadata(metadata); !s.ok()) {
      // Metadata is informational; a claim is still worth sending without the part that does not fit.
      env.err << "attest submit: " << info.claim.path.full() << ": " << s.message() << "; sent without it\n";
      metadata.output_name.clear();
      if (!consensus::ValidateBuildMetadata(metadata).ok()) {
        metadata = consensus::BuildMetadata();
        metadata.build_kind = build_kind;
      }
    }
    v1::Attestation message =
        proto::ToProto(consensus::SignAttestation(info.claim, *key, std::move(metadata)));
    message.set_public_key(public_key);
    to_send.push_back(std::move(message));
  }

  std::vector<ItemOutcome> outcomes = refused;
  if (!to_send.empty()) {
    auto node = env.connect_node(*node_options);
    if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
    absl::Status sent = SubmitInBatches(**node, to_send, batch_size, outcomes);
    if (!sent.ok()) env.err << "attest submit: " << sent.message() << "\n";
  }
  PrintOutcomes(env.out, outcomes, format);
  bool all_in = true;
  for (const ItemOutcome& o : outcomes) {
    if (o.kind != OutcomeKind::kAccepted && o.kind != OutcomeKind::kAlreadyPresent) all_in = false;
    if (o.kind == OutcomeKind::kObserved) {
      env.err << "attest submit: " << o.path << ": the node stored the attestation for observation only: key "
              << o.key_name << " is not a builder key in its policy, so it does not count\n";
    }
  }
  env.err << "attest submit: " << SummariseOutcomes(outcomes) << "\n";
  return all_in ? kExitOk : kExitFailure;
}

}  // namespace

CommandSpec SubmitCommand() {
  CommandSpec spec{
      .name = "submit",
      .synopsis = "attest submit --node ADDR --key SECRET_KEY_FILE [options] [FILE | -]",
      .summary = "Sign and submit attestations for paths this machine built.",
      .description =
          "Reads `nix path-info --json` output (a file, or standard input when FILE is - or absent), signs\n"
          "each path's Nix fingerprint with the secret key (the same signature `nix store sign` makes) and\n"
          "submits the attestations to the node in batches. Prints one line per path: accepted, already\n"
          "present, observed (the key is not in the node's policy), rejected (with the reason) or refused.\n"
          "\n"
          "Only paths that Nix marks \"ultimate\" (built here, not substituted) are attested: an "
          "attestation\n"
          "must come from an independent rebuild. --not-built-here-ok overrides this.\n"
          "\n"
          "Exit status: 0 when every path was accepted or already present, 1 otherwise, 2 on usage errors.",
      .options = NodeOptionSpecs(),
      .examples =
          "  nix path-info --json /nix/store/...-hello-2.12 | \\\n"
          "    attest submit --node 127.0.0.1:7700 --key /etc/nix/builder.sec -\n",
      .run = RunSubmit,
  };
  spec.options.push_back({"key", OptionKind::kValue, OptionRepeat::kOnce, "SECRET_KEY_FILE",
                          "Nix secret key file (nix key generate-secret) that signs the attestations"});
  spec.options.push_back({"batch-size", OptionKind::kValue, OptionRepeat::kOnce, "N",
                          "attestations per request (default 1000)"});
  spec.options.push_back({"not-built-here-ok", OptionKind::kFlag, OptionRepeat::kOnce, "",
                          "also attest paths not marked ultimate (substituted, not built here)"});
  spec.options.push_back({"build-kind", OptionKind::kValue, OptionRepeat::kOnce, "KIND",
                          "build (default), rebuild or check: recorded with each attestation"});
  spec.options.push_back({"system", OptionKind::kValue, OptionRepeat::kOnce, "SYSTEM",
                          "the build platform to record, e.g. x86_64-linux"});
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

}  // namespace attest::client
