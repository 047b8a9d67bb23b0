// attest disputes list / show / resolve: the disputes a node holds, with their evidence, and the
// maintainers' signed resolutions.
#include <ostream>

#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/status_json.h"
#include "consensus/dispute_subject.h"
#include "consensus/resolution.h"
#include "consensus/strict_decimal.h"
#include "consensus/text.h"
#include "proto/convert.h"

namespace attest::client {
namespace {

using consensus::Cat;

constexpr int kPageSize = 1000;
// A node that keeps handing out page tokens is broken; stop rather than loop forever.
constexpr int kMaxPages = 100000;

std::string TimeText(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(unix_seconds), absl::UTCTimeZone());
}

int RunList(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (!args.positionals().empty())
    return UsageError(spec, env, Cat("unexpected argument ", args.positionals()[0]));
  auto node = env.connect_node(*node_options);
  if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));

  std::vector<v1::Dispute> disputes;
  v1::ListDisputesRequest request;
  request.set_page_size(kPageSize);
  if (auto state = args.Value("state")) {
    if (!consensus::ParseDisputeState(*state).ok()) {
      return UsageError(spec, env, "--state must be one of open, nondeterministic, malicious, resolved");
    }
    request.set_state(*state);
  }
  request.set_name(args.Value("name").value_or(""));
  request.set_operator_(args.Value("operator").value_or(""));
  for (int page = 0;; ++page) {
    if (page == kMaxPages) return Failure(spec, env, "the node keeps returning pages; giving up");
    auto response = (*node)->ListDisputes(request);
    if (!response.ok()) return Failure(spec, env, std::string(response.status().message()));
    for (const auto& d : response->disputes()) disputes.push_back(d);
    if (response->next_page_token().empty()) break;
    if (response->next_page_token() == request.page_token()) {
      return Failure(spec, env, "the node returned the same page token twice");
    }
    request.set_page_token(response->next_page_token());
  }

  if (args.Has("json")) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& d : disputes) list.push_back(DisputeToJson(d, DisputeDetail::kSummary));
    env.out << DumpJson(list) << "\n";
    return kExitOk;
  }
  if (disputes.empty()) {
    env.err << "attest disputes list: the node holds no disputes\n";
    return kExitOk;
  }
  for (const auto& d : disputes) {
    env.out << d.id() << "  " << d.state() << "  " << SubjectOf(d) << "  " << d.fingerprints_size()
            << " fingerprints  opened " << TimeText(d.opened_unix()) << "  updated "
            << TimeText(d.updated_unix()) << "\n";
  }
  return kExitOk;
}

void PrintResolutions(const v1::Dispute& dispute, std::ostream& out) {
  if (dispute.resolutions().empty()) return;
  out << "\nresolutions (oldest first):\n";
  for (const auto& resolution : dispute.resolutions()) {
    out << "  " << TimeText(resolution.time_unix()) << "  " << resolution.outcome() << "  by "
        << resolution.maintainer();
    if (!resolution.builders().empty()) out << "  builders: " << absl::StrJoin(resolution.builders(), ", ");
    if (!resolution.origin().empty()) out << "  (via " << resolution.origin() << ")";
    out << "\n    " << resolution.note() << "\n";
  }
}

int RunShow(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (args.positionals().size() != 1)
    return UsageError(spec, env, "give exactly one dispute id or store path");
  auto node = env.connect_node(*node_options);
  if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
  v1::GetDisputeRequest request;
  request.set_id(args.positionals()[0]);
  auto dispute = (*node)->GetDispute(request);
  if (!dispute.ok()) return Failure(spec, env, std::string(dispute.status().message()));

  if (args.Has("json")) {
    env.out << DumpJson(DisputeToJson(*dispute, DisputeDetail::kFull)) << "\n";
    return kExitOk;
  }
  std::ostream& out = env.out;
  out << "dispute  " << dispute->id() << "\n"
      << (dispute->store_path().empty() ? "output   " : "path     ") << SubjectOf(*dispute) << "\n"
      << "state    " << dispute->state() << "\n"
      << "opened   " << TimeText(dispute->opened_unix()) << "\n"
      << "updated  " << TimeText(dispute->updated_unix()) << "\n";
  for (const auto& tally : dispute->fingerprints()) {
    out << "\nfingerprint " << tally.fingerprint() << "\n"
        << "  operators: " << absl::StrJoin(tally.operators(), ", ") << "\n"
        << "  builders:  " << absl::StrJoin(tally.builders(), ", ") << "\n";
    auto print = [&out](const std::string& signature, const v1::BuildMetadata& meta) {
      out << "  " << signature << "\n";
      out << "    " << BuildKindText(meta.build_kind());
      if (!meta.system().empty()) out << " on " << meta.system();
      if (meta.build_time_unix() > 0) out << " at " << TimeText(meta.build_time_unix());
      if (!meta.deriver().empty()) out << " from " << meta.deriver();
      if (!meta.output_name().empty()) out << " (" << meta.output_name() << ")";
      out << "\n";
    };
    // Group the evidence under the fingerprint it signs.
    for (const auto& attestation : dispute->attestations()) {
      auto claim = proto::FromProto(attestation.path_info());
      if (claim.ok() && claim->Fingerprint() == tally.fingerprint()) print(attestation.signature(), attestation.metadata());
    }
    for (const auto& attestation : dispute->realisations()) {
      if (attestation.fingerprint() == tally.fingerprint()) print(attestation.signature(), attestation.metadata());
    }
  }
  PrintResolutions(*dispute, out);
  if (!dispute->signed_record().empty()) out << "\nsigned record:\n" << dispute->signed_record();
  return kExitOk;
}

int RunResolve(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (args.positionals().size() != 1) return UsageError(spec, env, "give exactly one dispute id or store path");
  const std::optional<std::string> key_file = args.Value("key");
  if (!key_file) return UsageError(spec, env, "no maintainer key: pass --key MAINTAINER_KEY_FILE");
  const std::optional<std::string> outcome_text = args.Value("as");
  if (!outcome_text) return UsageError(spec, env, "no outcome: pass --as nondeterministic|malicious|resolved");
  auto outcome = consensus::ParseOutcome(*outcome_text);
  if (!outcome.ok()) return UsageError(spec, env, Cat("--as: ", outcome.status().message()));
  const std::optional<std::string> note = args.Value("note");
  if (!note || note->empty()) return UsageError(spec, env, "no note: pass --note TEXT (what was found)");
  std::vector<std::string> builders = args.Values("builder");
  std::ranges::sort(builders);
  builders.erase(std::unique(builders.begin(), builders.end()), builders.end());
  if (*outcome == consensus::ResolutionOutcome::kMalicious && builders.empty()) {
    return UsageError(spec, env, "--as malicious needs the builder keys at fault: --builder KEYNAME (repeatable)");
  }
  if (*outcome != consensus::ResolutionOutcome::kMalicious && !builders.empty()) {
    return UsageError(spec, env, "--builder goes only with --as malicious");
  }
  int64_t time_unix = absl::ToUnixSeconds(absl::Now());
  if (auto text = args.Value("time")) {
    auto parsed = consensus::ParseStrictDecimal(*text);
    if (!parsed || *parsed > static_cast<uint64_t>(INT64_MAX)) {
      return UsageError(spec, env, "--time must be Unix seconds (a non-negative integer)");
    }
    time_unix = static_cast<int64_t>(*parsed);
  }

  auto key_text = ReadInput(*key_file, env);
  if (!key_text.ok()) return Failure(spec, env, std::string(key_text.status().message()));
  auto key = consensus::SecretKey::Parse(*key_text);
  if (!key.ok()) return Failure(spec, env, Cat(*key_file, ": ", key.status().message()));

  auto node = env.connect_node(*node_options);
  if (!node.ok()) return Failure(spec, env, std::string(node.status().message()));
  // The statement names the competing fingerprints as the node shows them now: one that appears later
  // reopens the dispute.
  v1::GetDisputeRequest get;
  get.set_id(args.positionals()[0]);
  auto dispute = (*node)->GetDispute(get);
  if (!dispute.ok()) return Failure(spec, env, std::string(dispute.status().message()));
  auto subject = consensus::DisputeSubject::Parse(SubjectOf(*dispute));
  if (!subject.ok()) {
    return Failure(spec, env, Cat("the node answered a bad dispute subject: ", subject.status().message()));
  }
  std::vector<std::string> fingerprints;
  for (const auto& tally : dispute->fingerprints()) fingerprints.push_back(tally.fingerprint());
  std::ranges::sort(fingerprints);
  consensus::Resolution resolution{.dispute_id = dispute->id(),
                                   .subject = *std::move(subject),
                                   .outcome = *outcome,
                                   .fingerprints = std::move(fingerprints),
                                   .builders = std::move(builders),
                                   .time_unix = time_unix,
                                   .note = *note};
  auto statement = consensus::SignResolution(resolution, *key);
  if (!statement.ok()) return Failure(spec, env, std::string(statement.status().message()));

  v1::ResolveDisputeRequest request;
  request.set_signed_statement(statement->Serialize());
  auto response = (*node)->ResolveDispute(request);
  if (!response.ok()) return Failure(spec, env, std::string(response.status().message()));
  if (args.Has("json")) {
    nlohmann::json object = DisputeToJson(response->dispute(), DisputeDetail::kFull);
    object["already_present"] = response->already_present();
    env.out << DumpJson(object) << "\n";
    return kExitOk;
  }
  env.out << (response->already_present() ? "already held: " : "resolved: ") << response->dispute().id() << " "
          << SubjectOf(response->dispute()) << " as " << consensus::OutcomeName(*outcome) << " by "
          << key->name() << "; state now " << response->dispute().state() << "\n";
  return kExitOk;
}

}  // namespace

CommandSpec DisputesListCommand() {
  CommandSpec spec{
      .name = "disputes list",
      .synopsis = "attest disputes list --node ADDR [--state STATE] [--name TEXT] [--operator NAME] [--json]",
      .summary = "List the disputes a node holds.",
      .description =
          "A dispute exists for each store path whose counted builders signed different fingerprints.\n"
          "Open disputes come first. --state (open, nondeterministic, malicious, resolved), --name (a part of\n"
          "the store path's name) and --operator filter the list.\n"
          "--json prints a list of {id, path, state, opened, updated, fingerprints}; times are Unix seconds.",
      .options = NodeOptionSpecs(),
      .examples = "  attest disputes list --node 127.0.0.1:7700\n"
                  "  attest disputes list --node 127.0.0.1:7700 --state open --operator alice-ci\n",
      .run = RunList,
  };
  spec.options.push_back({.name = "state", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "STATE", .help = "only disputes in this state"});
  spec.options.push_back({.name = "name", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "TEXT", .help = "only store paths whose name contains TEXT"});
  spec.options.push_back({.name = "operator", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "NAME", .help = "only disputes with this operator on a side"});
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

CommandSpec DisputesShowCommand() {
  CommandSpec spec{
      .name = "disputes show",
      .synopsis = "attest disputes show --node ADDR [--json] ID | STORE_PATH",
      .summary = "Show one dispute with its evidence and the node's signed record.",
      .description =
          "ID is a dispute id (d-...) or the disputed store path. Prints every competing fingerprint with\n"
          "the operators, builders and signatures behind it, and the dispute record the node signed (a\n"
          "C2SP signed note). --json prints one object with signed_record and attestations.",
      .options = NodeOptionSpecs(),
      .examples = "  attest disputes show --node 127.0.0.1:7700 /nix/store/cp8ic4pc...-nondet\n",
      .run = RunShow,
  };
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

CommandSpec DisputesResolveCommand() {
  CommandSpec spec{
      .name = "disputes resolve",
      .synopsis = "attest disputes resolve --node ADDR --key MAINTAINER_KEY ID | STORE_PATH --as OUTCOME --note TEXT "
                  "[--builder KEYNAME]... [--json]",
      .summary = "Sign and submit a maintainer's resolution of a dispute.",
      .description =
          "Signs a statement (attest/resolution/v1, a C2SP signed note) with a maintainer key of the policy\n"
          "and submits it. The statement names the dispute, the competing fingerprints the node shows now,\n"
          "the outcome, the note and the time. Outcomes:\n"
          "  nondeterministic  the path stays DISPUTED: nobody can vouch for bytes that differ per build\n"
          "  malicious         the builder keys named with --builder stop counting on every node that\n"
          "                    holds the statement (verdicts are recomputed without them)\n"
          "  resolved          closed (e.g. fixed upstream)\n"
          "The node refuses keys that are not maintainers of the policy, statements not newer than the one\n"
          "it holds, and unknown disputes. A competing fingerprint that appears later reopens the dispute.\n"
          "--time UNIX signs with that time instead of now.",
      .options = NodeOptionSpecs(),
      .examples = "  attest disputes resolve --node 127.0.0.1:7700 --key maintainer.sec d-0123... \\\n"
                  "      --as malicious --builder evil-builder-1 --note \"served a patched binary\"\n",
      .run = RunResolve,
  };
  spec.options.push_back({.name = "key", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "FILE", .help = "the maintainer's Nix secret key file"});
  spec.options.push_back({.name = "as", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "OUTCOME", .help = "nondeterministic, malicious or resolved"});
  spec.options.push_back({.name = "note", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "TEXT", .help = "what was found (one line)"});
  spec.options.push_back({.name = "builder", .kind = OptionKind::kValue, .repeat = OptionRepeat::kMany,
                          .value_name = "KEYNAME", .help = "with --as malicious: a builder key at fault"});
  spec.options.push_back({.name = "time", .kind = OptionKind::kValue, .repeat = OptionRepeat::kOnce,
                          .value_name = "UNIX", .help = "the statement's time (default: now)"});
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

}  // namespace attest::client
