// attest federation status: how a node follows its peers' logs (attest.v1.Federation).
//
// One GetFederationStatus call, printed as a table (or --json). The exit status is the health check an
// operator or a monitoring job wants: 0 only when every peer is FOLLOWING and the node holds no fork
// evidence and has refused no entry.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/terminal_text.h"
#include "client/status_json.h"
#include "consensus/encoding.h"
#include "consensus/log_entry.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"
#include "proto/attest/v1/attest.grpc.pb.h"

namespace attest::client {
namespace {

using consensus::Cat;
using nlohmann::json;

// The node's Federation service over one channel, with the rules of NodeApi (node_client.h): a deadline
// covering the retries, only UNAVAILABLE retried, errors that keep the gRPC code and name the node.
class FederationNode final {
 public:
  FederationNode(NodeOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)), stub_(v1::Federation::NewStub(std::move(channel))) {}

  absl::StatusOr<v1::GetFederationStatusResponse> GetFederationStatus() {
    v1::GetFederationStatusResponse response;
    absl::Status status = CallNode(
        options_, "GetFederationStatus", response,
        [&](grpc::ClientContext* context) {
          return stub_->GetFederationStatus(context, v1::GetFederationStatusRequest(), &response);
        },
        [](grpc::StatusCode code) {
          return code == grpc::StatusCode::UNIMPLEMENTED
                     ? std::string(" (an older attestd does not follow peers; and the HTTP port does not speak gRPC)")
                     : std::string();
        });
    if (!status.ok()) return status;
    return response;
  }

 private:
  NodeOptions options_;
  std::unique_ptr<v1::Federation::Stub> stub_;
};

std::string StateText(v1::PeerStatus::State state) {
  switch (state) {
    case v1::PeerStatus::CONNECTING:
      return "CONNECTING";
    case v1::PeerStatus::FOLLOWING:
      return "FOLLOWING";
    case v1::PeerStatus::POLICY_MISMATCH:
      return "POLICY_MISMATCH";
    case v1::PeerStatus::FORKED:
      return "FORKED";
    default:
      return "UNSPECIFIED";
  }
}

// "attestation of /nix/store/...-x signed by builder-1", "dispute record", or "" when unparseable.
std::string DescribeEntry(std::string_view bytes) {
  absl::StatusOr<consensus::LogEntry> entry = consensus::ParseLogEntry(bytes);
  if (!entry.ok()) return "";
  if (entry->kind == consensus::LogEntryKind::kAttestation && entry->attestation) {
    return Cat("attestation of ", entry->attestation->attestation.claim.path.full(), " signed by ",
               Printable(entry->attestation->attestation.key_name(), Lines::kOne));
  }
  return "dispute record";
}

// Why the node is not healthy, one phrase per problem; empty when it is.
std::vector<std::string> Problems(const v1::GetFederationStatusResponse& status) {
  std::vector<std::string> problems;
  std::vector<std::string> not_following;
  uint64_t rejected = 0;
  for (const v1::PeerStatus& peer : status.peers()) {
    if (peer.state() != v1::PeerStatus::FOLLOWING) {
      not_following.push_back(Cat(Printable(peer.name(), Lines::kOne), " ", StateText(peer.state())));
    }
    rejected += peer.rejected_entries();
  }
  if (!not_following.empty()) {
    std::string list;
    for (const std::string& p : not_following) list += (list.empty() ? "" : ", ") + p;
    problems.push_back(Cat(not_following.size(), " of ", status.peers_size(), " peers not following (", list, ")"));
  }
  if (status.forks_size() > 0) {
    problems.push_back(Cat(status.forks_size(), status.forks_size() == 1 ? " fork" : " forks",
                           " detected (the evidence is above: keep it)"));
  }
  if (rejected > 0 || status.recent_rejections_size() > 0) {
    problems.push_back(Cat(std::max<uint64_t>(rejected, status.recent_rejections_size()), " peer entries rejected"));
  }
  return problems;
}

json ToJson(const v1::GetFederationStatusResponse& status, bool healthy) {
  json peers = json::array();
  for (const v1::PeerStatus& p : status.peers()) {
    peers.push_back(json{{"name", p.name()},
                         {"grpc", p.grpc()},
                         {"http", p.http()},
                         {"public_key", p.public_key()},
                         {"state", StateText(p.state())},
                         {"peer_size", p.peer_size()},
                         {"cursor", p.cursor()},
                         {"lag_entries", p.lag_entries()},
                         {"last_success_unix", p.last_success_unix()},
                         {"last_error", p.last_error()},
                         {"rejected_entries", p.rejected_entries()},
                         {"peer_policy_hash", p.peer_policy_hash()},
                         {"cosigned_checkpoint", p.cosigned_checkpoint()}});
  }
  json forks = json::array();
  for (const v1::ForkEvidence& f : status.forks()) {
    forks.push_back(json{{"peer", f.peer()},
                         {"first_checkpoint", f.first_checkpoint()},
                         {"second_checkpoint", f.second_checkpoint()},
                         {"reason", f.reason()},
                         {"detected_unix", f.detected_unix()}});
  }
  json rejections = json::array();
  for (const v1::RejectedEntry& r : status.recent_rejections()) {
    rejections.push_back(json{{"peer", r.peer()},
                              {"index", r.index()},
                              {"reason", r.reason()},
                              {"entry", consensus::Base64Encode(consensus::AsBytes(r.entry()))},
                              {"detected_unix", r.detected_unix()}});
  }
  return json{{"node", status.node()},     {"policy_hash", status.policy_hash()},
              {"healthy", healthy},        {"peers", std::move(peers)},
              {"forks", std::move(forks)}, {"recent_rejections", std::move(rejections)}};
}

void PrintText(std::ostream& out, const v1::GetFederationStatusResponse& status, absl::Time now) {
  out << "node    " << Printable(status.node(), Lines::kOne) << "\n"
      << "policy  " << Printable(status.policy_hash(), Lines::kOne) << "\n\n";
  if (status.peers().empty()) {
    out << "no peers configured ([[peer]] in the node's config)\n";
  } else {
    std::vector<std::vector<std::string>> rows{
        {"PEER", "STATE", "PEER SIZE", "CURSOR", "LAG", "REJECTED", "LAST SUCCESS", "LAST ERROR"}};
    for (const v1::PeerStatus& p : status.peers()) {
      rows.push_back({Printable(p.name(), Lines::kOne), StateText(p.state()), Cat(p.peer_size()), Cat(p.cursor()),
                      Cat(p.lag_entries()), Cat(p.rejected_entries()), AgeText(p.last_success_unix(), now),
                      p.last_error().empty() ? "-" : Printable(p.last_error(), Lines::kOne)});
    }
    PrintTable(out, rows);
    for (const v1::PeerStatus& p : status.peers()) {
      if (p.state() == v1::PeerStatus::POLICY_MISMATCH) {
        out << "\npeer " << Printable(p.name(), Lines::kOne) << " reports policy "
            << (p.peer_policy_hash().empty() ? "(none)" : Printable(p.peer_policy_hash(), Lines::kOne))
            << ", this node has " << Printable(status.policy_hash(), Lines::kOne)
            << ": its log is not followed until both run the same policy\n";
      }
    }
  }
  for (const v1::ForkEvidence& f : status.forks()) {
    out << "\nFORK: peer " << Printable(f.peer(), Lines::kOne) << ", detected " << TimeText(f.detected_unix()) << " ("
        << AgeText(f.detected_unix(), now) << "): " << Printable(f.reason(), Lines::kOne) << "\n"
        << "Evidence: two checkpoints signed by the peer that cannot both hold:\n"
        << "--- first\n"
        << Printable(f.first_checkpoint(), Lines::kMany) << "--- second\n"
        << Printable(f.second_checkpoint(), Lines::kMany);
  }
  if (status.recent_rejections_size() > 0) {
    out << "\nRejected entries (latest " << status.recent_rejections_size() << "):\n";
    std::vector<std::vector<std::string>> rows{{"PEER", "INDEX", "DETECTED", "ENTRY", "REASON"}};
    for (const v1::RejectedEntry& r : status.recent_rejections()) {
      const std::string entry = DescribeEntry(r.entry());
      rows.push_back({Printable(r.peer(), Lines::kOne), Cat(r.index()), AgeText(r.detected_unix(), now),
                      entry.empty() ? Cat(r.entry().size(), " bytes, unparseable") : entry,
                      Printable(r.reason(), Lines::kOne)});
    }
    PrintTable(out, rows);
  }
}

int RunStatus(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (!args.positionals().empty()) return UsageError(spec, env, Cat("unexpected argument ", args.positionals()[0]));

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NodeChannel(*node_options);
  if (!channel.ok()) return Failure(spec, env, std::string(channel.status().message()));
  FederationNode node(*node_options, *std::move(channel));
  absl::StatusOr<v1::GetFederationStatusResponse> status = node.GetFederationStatus();
  if (!status.ok()) return Failure(spec, env, std::string(status.status().message()));

  const std::vector<std::string> problems = Problems(*status);
  if (args.Has("json")) {
    env.out << DumpJson(ToJson(*status, problems.empty())) << "\n";
  } else {
    PrintText(env.out, *status, absl::Now());
  }
  if (problems.empty()) return kExitOk;
  std::string message;
  for (const std::string& p : problems) message += (message.empty() ? "" : "; ") + p;
  return Failure(spec, env, message);
}

}  // namespace

CommandSpec FederationStatusCommand() {
  CommandSpec spec{
      .name = "federation status",
      .synopsis = "attest federation status --node ADDR [--json]",
      .summary = "Show how a node follows its peers' logs: state, lag, errors, forks, rejected entries.",
      .description =
          "Asks the node (attest.v1.Federation/GetFederationStatus) and prints its name and policy hash,\n"
          "then one row per [[peer]] of its config: the state (CONNECTING, FOLLOWING, POLICY_MISMATCH,\n"
          "FORKED), the size of the peer's latest checkpoint the node verified, the cursor (entries of the\n"
          "peer's log applied here), the lag, the entries refused, when a round last succeeded and the last\n"
          "error. Fork evidence (the two signed checkpoints of the peer that cannot both hold) and the latest\n"
          "rejected entries follow when there are any.\n"
          "--json prints {node, policy_hash, healthy, peers: [{name, grpc, http, public_key, state,\n"
          "peer_size, cursor, lag_entries, last_success_unix, last_error, rejected_entries,\n"
          "peer_policy_hash, cosigned_checkpoint}], forks: [{peer, first_checkpoint, second_checkpoint,\n"
          "reason, detected_unix}], recent_rejections: [{peer, index, reason, entry (base64),\n"
          "detected_unix}]}.\n"
          "\n"
          "Exit status: 0 when every peer is FOLLOWING and there are no forks and no rejected entries; 1\n"
          "otherwise (the answer is still printed, the problems are summarised on stderr) or when the node\n"
          "cannot be asked; 2 on usage errors.",
      .options = NodeOptionSpecs(),
      .examples =
          "  attest federation status --node 127.0.0.1:7700\n"
          "  attest federation status --node 127.0.0.1:7700 --json | jq '.peers[] | {name, lag_entries}'\n",
      .run = RunStatus,
  };
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

}  // namespace attest::client
