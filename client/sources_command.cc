// attest sources: where a node's gateway takes NAR bytes from, and what it saw of each source
// (attest.v1.Federation/ListSources).
//
// One ListSources call, printed as a table (or --json). A successful answer exits 0 whatever it says;
// with --check the exit status is the health check a monitoring job wants: 1 when a source is
// unreachable or has served bytes that contradicted the confirmed contents (a mismatch).
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
#include "consensus/text.h"
#include "nlohmann/json.hpp"
#include "proto/attest/v1/attest.grpc.pb.h"

namespace attest::client {
namespace {

using consensus::Cat;
using nlohmann::json;

absl::StatusOr<v1::ListSourcesResponse> ListSources(const NodeOptions& options,
                                                    std::shared_ptr<grpc::Channel> channel) {
  std::unique_ptr<v1::Federation::Stub> stub = v1::Federation::NewStub(std::move(channel));
  v1::ListSourcesResponse response;
  absl::Status status = CallNode(
      options, "ListSources", response,
      [&](grpc::ClientContext* context) { return stub->ListSources(context, v1::ListSourcesRequest(), &response); },
      [](grpc::StatusCode code) {
        return code == grpc::StatusCode::UNIMPLEMENTED
                   ? std::string(" (an older attestd does not report its NAR sources; and the HTTP port does not "
                                 "speak gRPC)")
                   : std::string();
      });
  if (!status.ok()) return status;
  return response;
}

std::string KindText(v1::NarSource::Kind kind) {
  switch (kind) {
    case v1::NarSource::OPERATOR:
      return "operator";
    case v1::NarSource::MIRROR:
      return "mirror";
    case v1::NarSource::UPSTREAM:
      return "upstream";
    default:
      return "unspecified";
  }
}

// "12s ago (2026-12-07 09:40:00Z)", or "at an unknown time".
std::string WhenText(int64_t unix_seconds, absl::Time now) {
  if (unix_seconds <= 0) return "at an unknown time";
  return Cat(AgeText(unix_seconds, now), " (", TimeText(unix_seconds), ")");
}

// "operator alice-ci", "mirror", "upstream": who a source belongs to, for the messages.
std::string Owner(const v1::NarSource& source) {
  if (source.kind() == v1::NarSource::OPERATOR) return Printable(source.operator_name());
  return KindText(source.kind());
}

// What --check fails on, one phrase per problem; empty when every source is reachable and none has
// mismatches.
std::vector<std::string> Problems(const v1::ListSourcesResponse& answer) {
  std::vector<std::string> unreachable;
  std::vector<std::string> bad;
  for (const v1::NarSource& s : answer.sources()) {
    if (!s.reachable()) unreachable.push_back(Cat(Printable(s.url()), " (", Owner(s), ")"));
    if (s.mismatches() > 0) bad.push_back(Cat(Printable(s.url()), " (", Owner(s), ", ", s.mismatches(), ")"));
  }
  auto join = [](const std::vector<std::string>& items) {
    std::string list;
    for (const std::string& item : items) list += (list.empty() ? "" : ", ") + item;
    return list;
  };
  std::vector<std::string> problems;
  if (!unreachable.empty()) {
    problems.push_back(Cat(unreachable.size(), " of ", answer.sources_size(), " sources unreachable: ", join(unreachable)));
  }
  if (!bad.empty()) {
    problems.push_back(Cat(bad.size(), bad.size() == 1 ? " source" : " sources",
                           " served bytes that contradict the confirmed contents (mismatches): ", join(bad)));
  }
  return problems;
}

json ToJson(const v1::ListSourcesResponse& answer, bool healthy) {
  json sources = json::array();
  for (const v1::NarSource& s : answer.sources()) {
    sources.push_back(json{{"kind", KindText(s.kind())},
                           {"operator", s.operator_name()},
                           {"priority", s.priority()},
                           {"url", s.url()},
                           {"reachable", s.reachable()},
                           {"last_error", s.last_error()},
                           {"last_error_unix", s.last_error_unix()},
                           {"narinfos_found", s.narinfos_found()},
                           {"paths_served", s.paths_served()},
                           {"bytes_served", s.bytes_served()},
                           {"mismatches", s.mismatches()},
                           {"last_mismatch", s.last_mismatch()},
                           {"last_mismatch_unix", s.last_mismatch_unix()}});
  }
  return json{{"healthy", healthy}, {"sources", std::move(sources)}};
}

void PrintText(std::ostream& out, const v1::ListSourcesResponse& answer, absl::Time now) {
  if (answer.sources().empty()) {
    out << "this node has no NAR sources: it runs no [gateway], or its policy lists no operator caches and its\n"
           "config no [[source]] mirror or upstream\n";
    return;
  }
  std::vector<std::vector<std::string>> rows{
      {"KIND", "OPERATOR", "URL", "REACHABLE", "NARINFOS", "PATHS", "BYTES", "MISMATCHES"}};
  for (const v1::NarSource& s : answer.sources()) {
    std::string kind = KindText(s.kind());
    if (s.kind() == v1::NarSource::MIRROR) kind = Cat(kind, " (priority ", s.priority(), ")");
    rows.push_back({kind, s.kind() == v1::NarSource::OPERATOR ? Printable(s.operator_name()) : "-",
                    Printable(s.url()), s.reachable() ? "yes" : "NO", Cat(s.narinfos_found()), Cat(s.paths_served()),
                    Cat(s.bytes_served()), Cat(s.mismatches())});
  }
  PrintTable(out, rows);
  bool first = true;
  auto detail = [&](const std::string& line) {
    if (first) out << "\n";
    first = false;
    out << line << "\n";
  };
  for (const v1::NarSource& s : answer.sources()) {
    const std::string who = Cat(Printable(s.url()), " (", Owner(s), ")");
    if (!s.reachable()) {
      detail(Cat(who, ": unreachable: the last contact failed ", WhenText(s.last_error_unix(), now), ": ",
                 Printable(s.last_error())));
    } else if (!s.last_error().empty()) {
      detail(Cat(who, ": reachable again; a contact failed ", WhenText(s.last_error_unix(), now), ": ",
                 Printable(s.last_error())));
    }
    if (s.mismatches() > 0) {
      detail(Cat(who, ": BAD SOURCE: ", s.mismatches(), s.mismatches() == 1 ? " mismatch" : " mismatches",
                 ", the last ", WhenText(s.last_mismatch_unix(), now), ": ", Printable(s.last_mismatch())));
    }
  }
}

int RunSources(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  auto node_options = NodeOptionsFromArgs(args, env);
  if (!node_options.ok()) return UsageError(spec, env, std::string(node_options.status().message()));
  if (!args.positionals().empty()) return UsageError(spec, env, Cat("unexpected argument ", args.positionals()[0]));

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NodeChannel(*node_options);
  if (!channel.ok()) return Failure(spec, env, std::string(channel.status().message()));
  absl::StatusOr<v1::ListSourcesResponse> answer = ListSources(*node_options, *std::move(channel));
  if (!answer.ok()) return Failure(spec, env, std::string(answer.status().message()));

  const std::vector<std::string> problems = Problems(*answer);
  if (args.Has("json")) {
    env.out << DumpJson(ToJson(*answer, problems.empty())) << "\n";
  } else {
    PrintText(env.out, *answer, absl::Now());
  }
  if (problems.empty() || !args.Has("check")) return kExitOk;
  std::string message;
  for (const std::string& p : problems) message += (message.empty() ? "" : "; ") + p;
  return Failure(spec, env, message);
}

}  // namespace

CommandSpec SourcesCommand() {
  CommandSpec spec{
      .name = "sources",
      .synopsis = "attest sources --node ADDR [--json] [--check]",
      .summary = "Show where a node's gateway takes NAR bytes from: reachable, served, mismatches.",
      .description =
          "Asks the node (attest.v1.Federation/ListSources) and prints one row per source of its gateway's\n"
          "NAR bytes, in the order the node tries them: the caches the policy lists for its operators, the\n"
          "node's [[source]] mirrors, its upstream. For each: the kind, the operator, the URL, whether the\n"
          "last contact got an answer, the narinfos that matched the confirmed contents, the NARs and bytes\n"
          "it served that verified, and its mismatches (a narinfo or NAR that contradicted the confirmed\n"
          "contents: evidence of a bad source). Below the table, the last error of each source that failed\n"
          "and the last mismatch of each bad source (store path and what differed). Counts are since the\n"
          "node started. A node without [gateway] has no sources, and says so.\n"
          "--json prints {healthy, sources: [{kind, operator, priority, url, reachable, last_error,\n"
          "last_error_unix, narinfos_found, paths_served, bytes_served, mismatches, last_mismatch,\n"
          "last_mismatch_unix}]}; healthy is false when a source is unreachable or has mismatches.\n"
          "\n"
          "Exit status: 0 when the node answered (whatever the sources' state); with --check, 1 when a\n"
          "source is unreachable or has mismatches (the answer is still printed, the problems summarised on\n"
          "stderr); 1 when the node cannot be asked; 2 on usage errors.",
      .options = NodeOptionSpecs(),
      .examples =
          "  attest sources --node 127.0.0.1:7700\n"
          "  attest sources --node 127.0.0.1:7700 --check || echo 'a NAR source is down or bad'\n"
          "  attest sources --node 127.0.0.1:7700 --json | jq '.sources[] | select(.mismatches > 0)'\n",
      .run = RunSources,
  };
  spec.options.push_back(JsonOptionSpec());
  spec.options.push_back({"check", OptionKind::kFlag, OptionRepeat::kOnce, "",
                          "exit 1 when a source is unreachable or has mismatches"});
  return spec;
}

}  // namespace attest::client
