// attest import: every Sig: line of existing narinfos, and every signature of realisation files (.doi of
// Nix 2.8 or 2.35), becomes an attestation by the key that made it.
#include <ostream>

#include "client/commands.h"
#include "client/submission.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/narinfo.h"
#include "consensus/realisation.h"
#include "consensus/text.h"
#include "proto/convert.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::NarInfoSignature;
using consensus::ParseNarInfo;
using consensus::ParseNarInfoSignatures;


constexpr size_t kBatchSize = 1000;

// A realisation file (.doi, either format): each signature becomes a realisation attestation with
// build kind "imported". A signature by a key --public-key names must verify with it, else it is
// reported and not sent (a key not named is left to the node, which checks it against its policy).
// False when the file cannot be read as a realisation.
bool ImportRealisationFile(const std::string& text, const std::string& source,
                           const std::vector<consensus::PublicKey>& public_keys, CommandEnv& env,
                           std::vector<ItemOutcome>& outcomes, std::vector<v1::RealisationAttestation>& to_send) {
  absl::StatusOr<consensus::RealisationFile> file = consensus::ParseRealisationFile(text);
  if (!file.ok()) {
    env.err << "attest import: " << source << ": not a realisation file: " << file.status().message() << "\n";
    return false;
  }
  const std::string key_text = file->claim.key.ToString();
  if (file->signatures.empty()) env.err << "attest import: " << source << ": no signatures, nothing to import\n";
  consensus::BuildMetadata metadata;
  metadata.output_name = file->claim.key.output_name();
  metadata.build_kind = consensus::BuildKind::kImported;
  for (const consensus::Signature& signature : file->signatures) {
    consensus::RealisationAttestation attestation{file->claim, signature, metadata};
    v1::RealisationAttestation message;
    message.set_fingerprint(file->claim.Fingerprint());
    message.set_signature(signature.ToString());
    *message.mutable_metadata() = proto::ToProto(metadata);
    bool refused = false;
    for (const consensus::PublicKey& key : public_keys) {
      if (key.name() != signature.key_name) continue;
      if (absl::Status s = consensus::VerifyRealisation(attestation, key); !s.ok()) {
        env.err << "attest import: " << source << ": signature by " << signature.key_name
                << " does not verify with the --public-key of that name; not sent\n";
        outcomes.push_back(ItemOutcome{.path = key_text,
                                       .key_name = signature.key_name,
                                       .kind = OutcomeKind::kSkipped,
                                       .code = static_cast<int>(s.code()),
                                       .message = Cat("signature does not verify with key ", signature.key_name,
                                                      " (a damaged or altered realisation file, or another key of "
                                                      "that name?)")});
        refused = true;
        break;
      }
      message.set_public_key(key.ToString());
    }
    if (!refused) to_send.push_back(std::move(message));
  }
  return true;
}

int RunImport(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (args.positionals().empty())
    return UsageError(spec, env, "no narinfo or realisation file given (files, or - for standard input)");
  std::vector<consensus::PublicKey> public_keys;
  for (const std::string& text : args.Values("public-key")) {
    auto key = consensus::PublicKey::Parse(text);
    if (!key.ok()) return UsageError(spec, env, Cat("--public-key: ", key.status().message()));
    public_keys.push_back(*std::move(key));
  }
  const OutputFormat format = args.Has("json") ? OutputFormat::kJson : OutputFormat::kText;

  std::vector<ItemOutcome> outcomes;
  std::vector<v1::Attestation> to_send;
  std::vector<v1::RealisationAttestation> realisations_to_send;
  bool input_failed = false;
  for (const std::string& name : args.positionals()) {
    const std::string source = name == "-" ? "standard input" : name;
    auto text = ReadInput(name, env);
    if (!text.ok()) {
      env.err << "attest import: " << text.status().message() << "\n";
      input_failed = true;
      continue;
    }
    // A realisation file is JSON; a narinfo is "Key: value" lines.
    if (const size_t first = text->find_first_not_of(" \t\r\n"); first != std::string::npos && (*text)[first] == '{') {
      if (!ImportRealisationFile(*text, source, public_keys, env, outcomes, realisations_to_send)) input_failed = true;
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

  if (!to_send.empty() || !realisations_to_send.empty()) {
    auto node = env.connect_node(*node_options);
    if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
    if (!to_send.empty()) {
      absl::Status sent = SubmitInBatches(**node, to_send, kBatchSize, outcomes);
      if (!sent.ok()) env.err << "attest import: " << sent.message() << "\n";
    }
    if (!realisations_to_send.empty()) {
      absl::Status sent = SubmitRealisationsInBatches(**node, realisations_to_send, kBatchSize, outcomes);
      if (!sent.ok()) env.err << "attest import: " << sent.message() << "\n";
    }
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
      .synopsis = "attest import --node ADDR [--public-key KEY]... [--json] NARINFO|DOI... | -",
      .summary = "Import the Sig: lines of existing narinfos and realisation files as attestations.",
      .description =
          "Every Sig: line of each narinfo (files, or - for standard input) becomes an attestation of the\n"
          "narinfo's StorePath/NarHash/NarSize/References by the key that made it (build kind "
          "\"imported\").\n"
          "A malformed Sig line is reported and skipped.\n"
          "A realisation file (.doi: Nix 2.8's realisations/<key>.doi or Nix 2.35's\n"
          "build-trace-v2/<drv>/<output>.doi, told from a narinfo by its leading '{') gives one realisation\n"
          "attestation per signature, build kind \"imported\"; a signature that does not verify with the\n"
          "--public-key of its name is reported and not sent.\n"
          "The node counts a signature only when its key is a\n"
          "builder key in the policy; a node that stores observations keeps others when --public-key names\n"
          "the key, and shows them without counting them.\n"
          "\n"
          "Exit status: 0 when every signature was accepted, already present or observed; 1 when any was\n"
          "rejected, skipped or could not be sent, or a narinfo could not be read; 2 on usage errors.",
      .options = NodeOptionSpecs(),
      .examples =
          "  attest import --node 127.0.0.1:7700 --public-key \"$(cat builder.pub)\" cache/realisations/*.doi\n"
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
