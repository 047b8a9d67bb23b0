// attest import: every Sig: line of existing narinfos becomes an attestation by the key that made it.
#include <ostream>

#include "client/commands.h"
#include "client/submission.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/narinfo.h"
#include "consensus/text.h"
#include "proto/convert.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::NarInfoSignature;
using consensus::ParseNarInfo;
using consensus::ParseNarInfoSignatures;


constexpr size_t kBatchSize = 1000;

int RunImport(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (args.positionals().empty())
    return UsageError(spec, env, "no narinfo given (files, or - for standard input)");
  std::vector<consensus::PublicKey> public_keys;
  for (const std::string& text : args.Values("public-key")) {
    auto key = consensus::PublicKey::Parse(text);
    if (!key.ok()) return UsageError(spec, env, Cat("--public-key: ", key.status().message()));
    public_keys.push_back(*std::move(key));
  }
  const OutputFormat format = args.Has("json") ? OutputFormat::kJson : OutputFormat::kText;

  std::vector<ItemOutcome> outcomes;
  std::vector<v1::Attestation> to_send;
  bool input_failed = false;
  for (const std::string& name : args.positionals()) {
    const std::string source = name == "-" ? "standard input" : name;
    auto text = ReadInput(name, env);
    if (!text.ok()) {
      env.err << "attest import: " << text.status().message() << "\n";
      input_failed = true;
      continue;
    }
    auto narinfo = ParseNarInfo(*text, source);
    if (!narinfo.ok()) {
      env.err << "attest import: " << narinfo.status().message() << "\n";
      input_failed = true;
      continue;
    }
    if (narinfo->signatures.empty())
      env.err << "attest import: " << source << ": no Sig: lines, nothing to import\n";
    consensus::BuildMetadata metadata{
        .deriver = narinfo->deriver ? narinfo->deriver->full() : "",
        .output_name = "",
        .system = narinfo->system,
        .build_kind = consensus::BuildKind::kImported,
        .build_time_unix = 0,
    };
    if (!consensus::ValidateBuildMetadata(metadata).ok()) metadata.system.clear();  // informational only
    for (const NarInfoSignature& sig : ParseNarInfoSignatures(*narinfo)) {
      if (!sig.signature) {
        env.err << "attest import: " << source << ": skipping malformed Sig line "
                << consensus::QuoteForError(sig.text) << ": " << sig.error << "\n";
        outcomes.push_back(ItemOutcome{.path = narinfo->claim.path.full(),
                                       .key_name = "",
                                       .kind = OutcomeKind::kSkipped,
                                       .code = 0,
                                       .message = Cat("malformed Sig line: ", sig.error)});
        continue;
      }
      v1::Attestation message =
          proto::ToProto(consensus::Attestation{narinfo->claim, *sig.signature, metadata});
      for (const consensus::PublicKey& key : public_keys) {
        if (key.name() == sig.signature->key_name) message.set_public_key(key.ToString());
      }
      to_send.push_back(std::move(message));
    }
  }

  if (!to_send.empty()) {
    auto node = env.connect_node(*node_options);
    if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
    absl::Status sent = SubmitInBatches(**node, to_send, kBatchSize, outcomes);
    if (!sent.ok()) env.err << "attest import: " << sent.message() << "\n";
  }
  PrintOutcomes(env.out, outcomes, format);
  env.err << "attest import: " << SummariseOutcomes(outcomes) << "\n";
  bool all_in = !input_failed;
  for (const ItemOutcome& o : outcomes) {
    if (o.kind != OutcomeKind::kAccepted && o.kind != OutcomeKind::kAlreadyPresent &&
        o.kind != OutcomeKind::kObserved) {
      all_in = false;
    }
  }
  return all_in ? kExitOk : kExitFailure;
}

}  // namespace

CommandSpec ImportCommand() {
  CommandSpec spec{
      .name = "import",
      .synopsis = "attest import --node ADDR [--public-key KEY]... [--json] NARINFO... | -",
      .summary = "Import the Sig: lines of existing narinfos as attestations.",
      .description =
          "Every Sig: line of each narinfo (files, or - for standard input) becomes an attestation of the\n"
          "narinfo's StorePath/NarHash/NarSize/References by the key that made it (build kind "
          "\"imported\").\n"
          "A malformed Sig line is reported and skipped. The node counts a signature only when its key is a\n"
          "builder key in the policy; a node that stores observations keeps others when --public-key names\n"
          "the key, and shows them without counting them.\n"
          "\n"
          "Exit status: 0 when every signature was accepted, already present or observed; 1 when any was\n"
          "rejected, skipped or could not be sent, or a narinfo could not be read; 2 on usage errors.",
      .options = NodeOptionSpecs(),
      .examples =
          "  curl -s https://cache.nixos.org/syd87l2rxw8cbsxmxl853h0r6pdwhwjr.narinfo | \\\n"
          "    attest import --node 127.0.0.1:7700 \\\n"
          "      --public-key cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= -\n",
      .run = RunImport,
  };
  spec.options.push_back({"public-key", OptionKind::kValue, OptionRepeat::kMany, "KEY",
                          "public key (name:base64) sent with signatures by the key of that name"});
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

}  // namespace attest::client
