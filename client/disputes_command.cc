// attest disputes list / show: the disputes a node holds, with their evidence.
#include <ostream>

#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/status_json.h"
#include "consensus/encoding.h"
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
    env.out << d.id() << "  " << d.state() << "  " << d.store_path() << "  " << d.fingerprints_size()
            << " fingerprints  opened " << TimeText(d.opened_unix()) << "  updated "
            << TimeText(d.updated_unix()) << "\n";
  }
  return kExitOk;
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
      << "path     " << dispute->store_path() << "\n"
      << "state    " << dispute->state() << "\n"
      << "opened   " << TimeText(dispute->opened_unix()) << "\n"
      << "updated  " << TimeText(dispute->updated_unix()) << "\n";
  for (const auto& tally : dispute->fingerprints()) {
    out << "\nfingerprint " << tally.fingerprint() << "\n"
        << "  operators: " << absl::StrJoin(tally.operators(), ", ") << "\n"
        << "  builders:  " << absl::StrJoin(tally.builders(), ", ") << "\n";
    for (const auto& attestation : dispute->attestations()) {
      // Group the evidence under the fingerprint it signs.
      auto claim = proto::FromProto(attestation.path_info());
      if (!claim.ok() || claim->Fingerprint() != tally.fingerprint()) continue;
      out << "  " << attestation.signature() << "\n";
      const auto& meta = attestation.metadata();
      out << "    " << BuildKindText(meta.build_kind());
      if (!meta.system().empty()) out << " on " << meta.system();
      if (meta.build_time_unix() > 0) out << " at " << TimeText(meta.build_time_unix());
      if (!meta.deriver().empty()) out << " from " << meta.deriver();
      if (!meta.output_name().empty()) out << " (" << meta.output_name() << ")";
      out << "\n";
    }
  }
  if (!dispute->signed_record().empty()) out << "\nsigned record:\n" << dispute->signed_record();
  return kExitOk;
}

}  // namespace

CommandSpec DisputesListCommand() {
  CommandSpec spec{
      .name = "disputes list",
      .synopsis = "attest disputes list --node ADDR [--json]",
      .summary = "List the disputes a node holds.",
      .description =
          "A dispute exists for each store path whose counted builders signed different fingerprints.\n"
          "--json prints a list of {id, path, state, opened, updated, fingerprints}; times are Unix seconds.",
      .options = NodeOptionSpecs(),
      .examples = "  attest disputes list --node 127.0.0.1:7700\n",
      .run = RunList,
  };
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

}  // namespace attest::client
