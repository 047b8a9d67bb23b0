// attest wanted: what a node's federation is missing, for rebuilders to build
// (attest.v1.Rebuilds/Wanted).
//
// One Wanted call, printed as a table of the wanted paths and, under their own heading, the disputed
// ones (or --json). A successful answer exits 0 whatever it holds, an empty queue included.
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/commands.h"
#include "client/status_json.h"
#include "client/terminal_text.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"
#include "proto/attest/v1/attest.grpc.pb.h"

namespace attest::client {
namespace {

using consensus::Cat;
using nlohmann::json;

constexpr int kMaxLimit = 10000;  // the node's bound (attest.proto WantedRequest)

absl::StatusOr<v1::WantedResponse> AskWanted(const NodeOptions& options, std::shared_ptr<grpc::Channel> channel,
                                             const v1::WantedRequest& request) {
  std::unique_ptr<v1::Rebuilds::Stub> stub = v1::Rebuilds::NewStub(std::move(channel));
  v1::WantedResponse response;
  absl::Status status = CallNode(
      options, "Wanted", response,
      [&](grpc::ClientContext* context) { return stub->Wanted(context, request, &response); },
      [](grpc::StatusCode code) {
        return code == grpc::StatusCode::UNIMPLEMENTED
                   ? std::string(" (an older attestd has no rebuild queue: upgrade the node; and the HTTP port does "
                                 "not speak gRPC)")
                   : std::string();
      });
  if (!status.ok()) return status;
  return response;
}

std::string Join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : ", ") + Printable(item);
  return text.empty() ? "-" : text;
}

// Nix's way of naming one output of a derivation: "<drv>!<output>".
std::string DeriverText(const v1::WantedDeriver& deriver) {
  std::string text = Printable(deriver.drv_path());
  if (!deriver.output_name().empty()) text += "!" + Printable(deriver.output_name());
  return text;
}

// "alice (builder-eu-1, 4m left)", one per lease.
std::string LeasesText(const v1::WantedPath& path, absl::Time now) {
  if (path.leases().empty()) return "-";
  std::string text;
  for (const v1::RebuildLease& lease : path.leases()) {
    const absl::Duration left = absl::FromUnixSeconds(lease.expires_unix()) - now;
    const std::string until = left > absl::ZeroDuration()
                                  ? Cat(absl::FormatDuration(absl::Trunc(left, absl::Seconds(1))), " left")
                                  : std::string("expired");
    text += Cat(text.empty() ? "" : ", ", Printable(lease.operator_()), " (", Printable(lease.builder()), ", ",
                until, ")");
  }
  return text;
}

std::string DemandText(double demand) { return absl::StrFormat("%.1f", demand); }

// One row per path, plus a row per further deriver (a path two derivations are known to build).
void PrintPaths(std::ostream& out, const google::protobuf::RepeatedPtrField<v1::WantedPath>& paths,
                bool disputed, absl::Time now) {
  std::vector<std::vector<std::string>> rows{{"PATH", "VERDICT", "DEMAND", disputed ? "DISPUTE" : "NEEDS",
                                              "OPERATORS", "DERIVER", "AVAILABLE", "LEASES"}};
  for (const v1::WantedPath& p : paths) {
    const std::string fourth =
        disputed ? (p.dispute_id().empty() ? std::string("-") : Printable(p.dispute_id()))
                 : Cat(p.operators_needed(), p.operators_needed() == 1 ? " operator" : " operators");
    if (p.derivers().empty()) {
      rows.push_back({Printable(p.store_path()), VerdictText(p.verdict()), DemandText(p.demand()), fourth,
                      Join(p.operators()), "(unknown)", "no", LeasesText(p, now)});
      continue;
    }
    for (int i = 0; i < p.derivers_size(); ++i) {
      const v1::WantedDeriver& d = p.derivers(i);
      const std::string available = d.available() ? "yes" : "no";
      if (i == 0) {
        rows.push_back({Printable(p.store_path()), VerdictText(p.verdict()), DemandText(p.demand()), fourth,
                        Join(p.operators()), DeriverText(d), available, LeasesText(p, now)});
      } else {
        rows.push_back({"", "", "", "", "", DeriverText(d), available, ""});
      }
    }
  }
  PrintTable(out, rows);
}

void PrintText(std::ostream& out, const v1::WantedResponse& answer, absl::Time now) {
  if (answer.wanted().empty()) {
    out << "nothing wanted: every path with demand is confirmed or disputed\n";
  } else {
    PrintPaths(out, answer.wanted(), /*disputed=*/false, now);
  }
  if (!answer.disputed().empty()) {
    out << "\nDisputed (builders disagree; a rebuild by a further operator is evidence too):\n";
    PrintPaths(out, answer.disputed(), /*disputed=*/true, now);
  }
  out << "\n"
      << answer.wanted_size() << " wanted, " << answer.disputed_size() << " disputed shown; the node counts demand for "
      << answer.demand_paths() << (answer.demand_paths() == 1 ? " path" : " paths") << "; quorum "
      << answer.quorum() << " operators\n";
}

json PathJson(const v1::WantedPath& p) {
  json derivers = json::array();
  for (const v1::WantedDeriver& d : p.derivers()) {
    derivers.push_back({{"drvPath", d.drv_path()}, {"outputName", d.output_name()}, {"available", d.available()}});
  }
  json leases = json::array();
  for (const v1::RebuildLease& l : p.leases()) {
    leases.push_back({{"operator", l.operator_()}, {"builder", l.builder()}, {"expires", l.expires_unix()}});
  }
  return {{"path", p.store_path()},
          {"verdict", VerdictText(p.verdict())},
          {"demand", p.demand()},
          {"lastRequested", p.last_requested_unix()},
          {"operatorsNeeded", p.operators_needed()},
          {"operators", std::vector<std::string>(p.operators().begin(), p.operators().end())},
          {"derivers", std::move(derivers)},
          {"disputeId", p.dispute_id()},
          {"leases", std::move(leases)}};
}

json ToJson(const v1::WantedResponse& answer) {
  json wanted = json::array();
  for (const v1::WantedPath& p : answer.wanted()) wanted.push_back(PathJson(p));
  json disputed = json::array();
  for (const v1::WantedPath& p : answer.disputed()) disputed.push_back(PathJson(p));
  return {{"quorum", answer.quorum()},
          {"demandPaths", answer.demand_paths()},
          {"wanted", std::move(wanted)},
          {"disputed", std::move(disputed)}};
}

int RunWanted(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (!args.positionals().empty()) return UsageError(spec, env, Cat("unexpected argument ", args.positionals()[0]));
  v1::WantedRequest request;
  request.set_operator_(args.Value("operator").value_or(""));
  if (auto text = args.Value("limit")) {
    int limit = 0;
    if (!absl::SimpleAtoi(*text, &limit) || limit < 1 || limit > kMaxLimit) {
      return UsageError(spec, env,
                        Cat("--limit ", consensus::QuoteForError(*text), " must be a whole number from 1 to ",
                            kMaxLimit));
    }
    request.set_limit(limit);
  }

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NodeChannel(*node_options);
  if (!channel.ok()) return Failure(spec, env, std::string(channel.status().message()));
  absl::StatusOr<v1::WantedResponse> answer = AskWanted(*node_options, *std::move(channel), request);
  if (!answer.ok()) return Failure(spec, env, std::string(answer.status().message()));

  if (args.Has("json")) {
    env.out << DumpJson(ToJson(*answer)) << "\n";
  } else {
    PrintText(env.out, *answer, absl::Now());
  }
  return kExitOk;
}

}  // namespace

CommandSpec WantedCommand() {
  CommandSpec spec{
      .name = "wanted",
      .synopsis = "attest wanted --node ADDR [--operator NAME] [--limit N] [--json]",
      .summary = "Show the paths a node's federation is missing: the queue for rebuilders.",
      .description =
          "Asks the node (attest.v1.Rebuilds/Wanted) which store paths were asked for but are not confirmed,\n"
          "ordered by demand (requests the node could not answer CONFIRMED, decayed over time), then by how\n"
          "many more operators each needs for quorum. For each: its verdict, demand, operators still needed,\n"
          "the operators that attested it, the derivation(s) that build it (as <drv>!<output>) and whether\n"
          "the node holds that derivation with every input derivation (a rebuilder can start from it), and\n"
          "the rebuild leases under way. Disputed paths follow under their own heading: a rebuild by a\n"
          "further operator is evidence too.\n"
          "--operator NAME leaves out what that operator already attested: what it could add. --limit N\n"
          "asks for at most N paths (1 to 10000; the node's default is 100).\n"
          "--json prints {quorum, demandPaths, wanted: [path], disputed: [path]}, each path\n"
          "{path, verdict, demand, lastRequested (unix seconds), operatorsNeeded, operators,\n"
          "derivers: [{drvPath, outputName, available}], disputeId, leases: [{operator, builder, expires\n"
          "(unix seconds)}]}.\n"
          "\n"
          "Exit status: 0 when the node answered (an empty queue included); 1 when it cannot be asked;\n"
          "2 on usage errors.",
      .options = NodeOptionSpecs(),
      .examples =
          "  attest wanted --node 127.0.0.1:7700\n"
          "  attest wanted --node 127.0.0.1:7700 --operator bob-labs --limit 20\n"
          "  attest wanted --node 127.0.0.1:7700 --json | jq -r '.wanted[] | select(.derivers[0].available) | .path'\n",
      .run = RunWanted,
  };
  spec.options.push_back({"operator", OptionKind::kValue, OptionRepeat::kOnce, "NAME",
                          "leave out the paths this operator already attested"});
  spec.options.push_back(
      {"limit", OptionKind::kValue, OptionRepeat::kOnce, "N", "at most N paths, 1 to 10000 (default: the node's, 100)"});
  spec.options.push_back(JsonOptionSpec());
  return spec;
}

}  // namespace attest::client
