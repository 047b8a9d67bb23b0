#include "client/rebuilder.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "client/nix_export.h"
#include "consensus/derivation.h"
#include "consensus/derivation_paths.h"
#include "consensus/text.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "storage/files.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::Derivation;
using consensus::DerivationGraph;
using consensus::RebuildStatementKind;
using consensus::StorePath;

constexpr std::string_view kMarkerDir = ".rebuilding";

class GrpcRebuildNode final : public RebuildNode {
 public:
  GrpcRebuildNode(NodeOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)),
        policy_(v1::Policy::NewStub(channel)),
        rebuilds_(v1::Rebuilds::NewStub(channel)) {}

  absl::StatusOr<v1::PolicyInfo> GetPolicy() override {
    v1::PolicyInfo response;
    absl::Status status = CallNode(options_, "GetPolicy", response, [&](grpc::ClientContext* context) {
      return policy_->GetPolicy(context, v1::GetPolicyRequest(), &response);
    });
    if (!status.ok()) return status;
    return response;
  }
  absl::StatusOr<v1::WantedResponse> Wanted(const v1::WantedRequest& request) override {
    v1::WantedResponse response;
    absl::Status status = CallNode(options_, "Wanted", response, [&](grpc::ClientContext* context) {
      return rebuilds_->Wanted(context, request, &response);
    });
    if (!status.ok()) return status;
    return response;
  }
  absl::StatusOr<v1::GetDerivationsResponse> GetDerivations(const v1::GetDerivationsRequest& request) override {
    v1::GetDerivationsResponse response;
    absl::Status status = CallNode(options_, "GetDerivations", response, [&](grpc::ClientContext* context) {
      return rebuilds_->GetDerivations(context, request, &response);
    });
    if (!status.ok()) return status;
    return response;
  }
  absl::StatusOr<v1::AcquireLeaseResponse> AcquireLease(const v1::RebuildStatement& statement) override {
    v1::AcquireLeaseResponse response;
    absl::Status status = CallNode(options_, "AcquireLease", response, [&](grpc::ClientContext* context) {
      return rebuilds_->AcquireLease(context, statement, &response);
    });
    if (!status.ok()) return status;
    return response;
  }
  absl::Status ReportRebuild(const v1::RebuildStatement& statement) override {
    v1::ReportRebuildResponse response;
    return CallNode(options_, "ReportRebuild", response, [&](grpc::ClientContext* context) {
      return rebuilds_->ReportRebuild(context, statement, &response);
    });
  }

 private:
  const NodeOptions options_;
  // Generated stubs are thread-safe; the channel is shared by the workers.
  std::unique_ptr<v1::Policy::Stub> policy_;
  std::unique_ptr<v1::Rebuilds::Stub> rebuilds_;
};

// Why a path was not built: refused (the derivations do not check out) or failed (anything else).
struct Stop final {
  RebuildOutcome outcome;
  std::string detail;
};

// The files to import, each after the derivations it uses (depth-first over input derivations), so
// the order does not depend on the order the node sent them in.
std::vector<StorePath> DependencyOrder(const DerivationGraph& graph, const std::set<StorePath>& wanted) {
  std::vector<StorePath> order;
  std::set<StorePath> done;
  // Iterative, since a chain of input derivations can be thousands deep.
  for (const StorePath& root : wanted) {
    std::vector<std::pair<StorePath, size_t>> stack = {{root, 0}};
    while (!stack.empty()) {
      auto& [path, next] = stack.back();
      if (done.contains(path)) {
        stack.pop_back();
        continue;
      }
      const Derivation* drv = graph.Find(path);
      if (drv != nullptr && next < drv->input_derivations.size()) {
        const StorePath input = drv->input_derivations[next++].drv_path;
        if (wanted.contains(input) && !done.contains(input)) stack.push_back({input, 0});
        continue;
      }
      done.insert(path);
      order.push_back(path);
      stack.pop_back();
    }
  }
  return order;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

struct Rebuilder::Job final {
  StorePath path;
  StorePath deriver;
  std::string output_name;
  bool present = false;  // valid in the local store when the round started
};

absl::StatusOr<std::unique_ptr<RebuildNode>> ConnectRebuildNode(const NodeOptions& options) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NodeChannel(options);
  if (!channel.ok()) return channel.status();
  return std::make_unique<GrpcRebuildNode>(options, *std::move(channel));
}

std::string_view RebuildOutcomeName(RebuildOutcome outcome) {
  switch (outcome) {
    case RebuildOutcome::kLeased:
      return "leased";
    case RebuildOutcome::kSkipped:
      return "skipped";
    case RebuildOutcome::kBuilt:
      return "built";
    case RebuildOutcome::kFailed:
      return "failed";
    case RebuildOutcome::kRefused:
      return "refused";
  }
  return "unknown";
}

std::string RebuildEventLine(const RebuildEvent& event) {
  std::string line = Cat(RebuildOutcomeName(event.outcome), " ", event.store_path);
  if (!event.detail.empty()) line += Cat(": ", event.detail);
  return line;
}

Rebuilder::Rebuilder(std::shared_ptr<RebuildNode> node, consensus::SecretKey key, Spool spool, RebuildOptions options,
                     std::function<PushReport()> push, std::function<void(const RebuildEvent&)> on_event,
                     std::function<bool()> stop)
    : node_(std::move(node)),
      key_(std::move(key)),
      spool_(std::move(spool)),
      options_(std::move(options)),
      push_(std::move(push)),
      on_event_(std::move(on_event)),
      stop_(std::move(stop)) {}

std::string Rebuilder::MarkerPath(std::string_view spool_dir, const StorePath& drv_path) {
  return Cat(spool_dir, "/", kMarkerDir, "/", drv_path.base_name());
}

absl::StatusOr<std::string> Rebuilder::FindOperator() {
  absl::StatusOr<v1::PolicyInfo> policy = node_->GetPolicy();
  if (!policy.ok()) return policy.status();
  const consensus::PublicKey ours = key_.public_key();
  for (const v1::Operator& op : policy->operators()) {
    for (const std::string& builder : op.builders()) {
      absl::StatusOr<consensus::PublicKey> key = consensus::PublicKey::Parse(builder);
      if (key.ok() && *key == ours) {
        operator_ = op.name();
        return operator_;
      }
    }
  }
  return absl::PermissionDeniedError(Cat("this builder's key ", ours.name(),
                                         " is not in the node's policy: its rebuilds would not count (add ",
                                         ours.ToString(), " to an operator's builders in the policy)"));
}

void Rebuilder::Emit(const RebuildEvent& event) {
  if (!on_event_) return;
  absl::MutexLock lock(&event_mu_);
  on_event_(event);
}

v1::RebuildStatement Rebuilder::Statement(RebuildStatementKind kind, const StorePath& path,
                                          std::string_view detail) const {
  consensus::RebuildStatement statement{
      .kind = kind, .path = path, .time_unix = absl::ToUnixSeconds(absl::Now()), .detail = std::string(detail)};
  v1::RebuildStatement message;
  message.set_kind(std::string(consensus::RebuildStatementKindName(kind)));
  message.set_store_path(path.full());
  message.set_time_unix(statement.time_unix);
  message.set_detail(statement.detail);
  message.set_signature(consensus::SignRebuildStatement(statement, key_).ToString());
  return message;
}

void Rebuilder::Report(RebuildStatementKind kind, const StorePath& path, std::string_view detail) {
  // The detail is display text of one line: what Nix printed may hold anything.
  std::string clean = kind == RebuildStatementKind::kFailed
                          ? LastNixErrorLine(detail, consensus::kMaxRebuildDetailBytes)
                          : std::string();
  absl::Status status = node_->ReportRebuild(Statement(kind, path, clean));
  if (!status.ok()) {
    Emit({RebuildOutcome::kFailed, path.full(),
          Cat("the node did not take the ", consensus::RebuildStatementKindName(kind),
              " report (the lease expires by itself): ", status.message())});
  }
}

absl::StatusOr<RoundReport> Rebuilder::RunRound() {
  if (operator_.empty()) {
    return absl::FailedPreconditionError("the builder's operator is not known: call FindOperator first");
  }
  v1::WantedRequest request;
  request.set_operator_(operator_);
  request.set_limit(static_cast<int32_t>(std::clamp<size_t>(options_.max * 4, 100, 10000)));
  absl::StatusOr<v1::WantedResponse> wanted = node_->Wanted(request);
  if (!wanted.ok()) return wanted.status();

  std::vector<Job> jobs;
  std::set<StorePath> taken_derivers;
  auto consider = [&](const v1::WantedPath& entry) {
    if (jobs.size() >= options_.max) return;
    if (std::find(entry.operators().begin(), entry.operators().end(), operator_) != entry.operators().end()) return;
    for (const v1::RebuildLease& lease : entry.leases()) {
      if (lease.operator_() == operator_) return;
    }
    absl::StatusOr<StorePath> path = StorePath::Parse(entry.store_path());
    if (!path.ok()) return;
    for (const v1::WantedDeriver& deriver : entry.derivers()) {
      if (!deriver.available()) continue;
      absl::StatusOr<StorePath> drv = StorePath::Parse(deriver.drv_path());
      if (!drv.ok() || !drv->IsDerivation() || deriver.output_name().empty()) continue;
      // Two wanted outputs of one derivation are one build.
      if (!taken_derivers.insert(*drv).second) return;
      jobs.push_back(Job{*path, *drv, deriver.output_name(), false});
      return;
    }
  };
  for (const v1::WantedPath& entry : wanted->wanted()) consider(entry);
  for (const v1::WantedPath& entry : wanted->disputed()) consider(entry);

  // Which wanted paths the store has, in one query before the workers start: this also makes Nix
  // create a store that does not exist yet, which concurrent nix-store processes cannot do safely.
  std::vector<StorePath> wanted_paths;
  for (const Job& job : jobs) wanted_paths.push_back(job.path);
  absl::StatusOr<std::vector<StorePath>> absent = InvalidPaths(options_.store, wanted_paths);
  if (!absent.ok()) return absent.status();
  for (Job& job : jobs) {
    job.present = std::find(absent->begin(), absent->end(), job.path) == absent->end();
  }

  RemoveStaleMarkers();
  RoundReport report;
  report.wanted = jobs.size();
  std::vector<RebuildEvent> results(jobs.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < jobs.size(); i = next++) {
      if (stop_ && stop_()) {
        results[i] = {RebuildOutcome::kSkipped, jobs[i].path.full(), "not started: stopping"};
        continue;
      }
      results[i] = Process(jobs[i]);
      Emit(results[i]);
    }
  };
  const int threads = std::clamp<int>(options_.jobs, 1, static_cast<int>(std::max<size_t>(jobs.size(), 1)));
  std::vector<std::thread> workers;
  for (int t = 1; t < threads; ++t) workers.emplace_back(work);
  work();
  for (std::thread& worker : workers) worker.join();

  for (const RebuildEvent& event : results) {
    switch (event.outcome) {
      case RebuildOutcome::kBuilt:
        ++report.built;
        break;
      case RebuildOutcome::kFailed:
        ++report.failed;
        break;
      case RebuildOutcome::kRefused:
        ++report.refused;
        break;
      default:
        ++report.skipped;
    }
  }
  return report;
}

NixStoreRunOptions Rebuilder::BuildRun() const {
  NixStoreRunOptions run;
  run.timeout = options_.build_timeout;
  run.cancelled = stop_;
  return run;
}

void Rebuilder::RemoveStaleMarkers() {
  // A marker outlives its build only when the rebuilder died during it; left in place, it would give a
  // later ordinary build of that derivation the rebuild kind. No live build is older than the timeout.
  std::error_code ec;
  const std::filesystem::path dir = Cat(spool_.dir(), "/", kMarkerDir);
  const auto cutoff = std::filesystem::file_time_type::clock::now() -
                      std::chrono::seconds(absl::ToInt64Seconds(options_.build_timeout)) - std::chrono::hours(1);
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code entry_ec;
    const auto written = entry.last_write_time(entry_ec);
    if (!entry_ec && written < cutoff) std::filesystem::remove(entry.path(), entry_ec);
  }
}

RebuildEvent Rebuilder::Process(const Job& job) {
  const std::string& wanted = job.path.full();
  std::vector<std::string> store_args = StoreArgs(options_.store);

  // A path we already have is not built again unless asked (--check).
  std::string kind = "rebuild";
  if (job.present) {
    if (options_.present == PresentPaths::kSkip) {
      return {RebuildOutcome::kSkipped, wanted, "already in the local store; --check builds it again to compare"};
    }
    kind = "check";
  }

  absl::StatusOr<v1::AcquireLeaseResponse> lease =
      node_->AcquireLease(Statement(RebuildStatementKind::kLease, job.path, ""));
  if (!lease.ok()) {
    if (absl::IsFailedPrecondition(lease.status())) {
      return {RebuildOutcome::kSkipped, wanted,
              Cat("no lease (another rebuilder of this operator may hold it): ", lease.status().message())};
    }
    return {RebuildOutcome::kFailed, wanted, Cat("no lease: ", lease.status().message())};
  }
  Emit({RebuildOutcome::kLeased, wanted, ""});

  // From here on every end reports to the node, which ends our lease.
  auto fail = [&](RebuildOutcome outcome, std::string detail) {
    Report(RebuildStatementKind::kFailed, job.path, detail);
    return RebuildEvent{outcome, wanted, std::move(detail)};
  };

  v1::GetDerivationsRequest request;
  request.add_store_paths(job.deriver.full());
  request.set_closure(true);
  absl::StatusOr<v1::GetDerivationsResponse> answer = node_->GetDerivations(request);
  if (!answer.ok()) return fail(RebuildOutcome::kFailed, Cat("derivations: ", answer.status().message()));

  // Everything is checked before anything reaches the store.
  DerivationGraph graph;
  std::map<StorePath, std::string> served;
  for (const v1::DerivationFile& file : answer->derivations()) {
    absl::StatusOr<StorePath> path = StorePath::Parse(file.store_path());
    if (!path.ok()) return fail(RebuildOutcome::kRefused, Cat("the node sent ", path.status().message()));
    absl::StatusOr<Derivation> drv = consensus::VerifyDerivationFile(*path, file.contents());
    if (!drv.ok()) return fail(RebuildOutcome::kRefused, std::string(drv.status().message()));
    if (served.try_emplace(*path, file.contents()).second) graph.Add(*path, *std::move(drv));
  }
  // Input derivations the node did not send must be in the local store; their files are checked too,
  // since the output paths of what we build follow from them. Walked level by level from the deriver,
  // so one validity query covers a level.
  std::set<StorePath> closure = {job.deriver};
  std::map<StorePath, StorePath> needed_by = {{job.deriver, job.deriver}};
  for (std::vector<StorePath> level = {job.deriver}; !level.empty();) {
    std::vector<StorePath> needed;
    for (const StorePath& path : level) {
      if (!graph.Contains(path)) needed.push_back(path);
    }
    if (!needed.empty()) {
      absl::StatusOr<std::vector<StorePath>> absent = InvalidPaths(options_.store, needed);
      if (!absent.ok()) return fail(RebuildOutcome::kFailed, std::string(absent.status().message()));
      if (!absent->empty()) {
        const StorePath& lacking = absent->front();
        return fail(RebuildOutcome::kRefused,
                    lacking == job.deriver
                        ? Cat(lacking.full(), " was not sent by the node and is not in the local store")
                        : Cat(lacking.full(), ", an input of ", needed_by.at(lacking).full(),
                              ", was not sent by the node and is not in the local store"));
      }
      for (const StorePath& path : needed) {
        absl::StatusOr<std::string> text = storage::ReadFileToString(
            Cat(options_.store_root == "/" ? "" : options_.store_root, path.full()), consensus::kMaxDerivationBytes);
        if (!text.ok()) {
          return fail(RebuildOutcome::kFailed, Cat("reading ", path.full(), ": ", text.status().message()));
        }
        absl::StatusOr<Derivation> drv = consensus::VerifyDerivationFile(path, *text);
        if (!drv.ok()) return fail(RebuildOutcome::kRefused, Cat("local store: ", drv.status().message()));
        graph.Add(path, *std::move(drv));
      }
    }
    std::vector<StorePath> next;
    for (const StorePath& path : level) {
      for (const consensus::DerivationInput& input : graph.Find(path)->input_derivations) {
        if (closure.insert(input.drv_path).second) {
          needed_by.emplace(input.drv_path, path);
          next.push_back(input.drv_path);
        }
      }
    }
    level = std::move(next);
  }
  for (const StorePath& path : closure) {
    absl::Status status = graph.CheckOutputPaths(path);
    if (!status.ok()) return fail(RebuildOutcome::kRefused, std::string(status.message()));
  }
  absl::StatusOr<std::map<std::string, StorePath>> outputs = graph.ExpectedOutputPaths(job.deriver);
  if (!outputs.ok()) return fail(RebuildOutcome::kRefused, std::string(outputs.status().message()));
  const auto output = outputs->find(job.output_name);
  if (output == outputs->end()) {
    return fail(RebuildOutcome::kRefused, Cat(job.deriver.full(), " has no output ",
                                              consensus::QuoteForError(job.output_name), ", not the wanted ", wanted));
  }
  if (output->second != job.path) {
    return fail(RebuildOutcome::kRefused,
                Cat(job.deriver.full(), " builds ", output->second.full(), ", not the wanted ", wanted));
  }

  // Import what the store lacks, each derivation after its inputs.
  // Only the closure of the deriver: anything else the node sent is not needed.
  std::vector<StorePath> served_paths;
  for (const auto& [path, contents] : served) {
    if (closure.contains(path)) served_paths.push_back(path);
  }
  absl::StatusOr<std::vector<StorePath>> missing = InvalidPaths(options_.store, served_paths);
  if (!missing.ok()) return fail(RebuildOutcome::kFailed, std::string(missing.status().message()));
  const std::set<StorePath> to_import(missing->begin(), missing->end());
  std::set<StorePath> sources;
  for (const StorePath& path : to_import) {
    const Derivation* drv = graph.Find(path);
    sources.insert(drv->input_sources.begin(), drv->input_sources.end());
  }
  if (!sources.empty()) {
    absl::StatusOr<std::vector<StorePath>> absent_sources =
        InvalidPaths(options_.store, std::vector<StorePath>(sources.begin(), sources.end()));
    if (!absent_sources.ok()) return fail(RebuildOutcome::kFailed, std::string(absent_sources.status().message()));
    if (!absent_sources->empty()) {
      // Sources (builder scripts, patches) are not derivations: only a substituter can provide them.
      std::vector<std::string> args = store_args;
      args.push_back("--realise");
      for (const StorePath& path : *absent_sources) args.push_back(path.full());
      absl::StatusOr<NixStoreRun> run = RunNixStore(args, BuildRun());
      if (!run.ok()) return fail(RebuildOutcome::kFailed, std::string(run.status().message()));
      if (run->exit_code != 0) {
        return fail(RebuildOutcome::kFailed,
                    Cat("input sources are not in the local store and could not be substituted: ",
                        LastNixErrorLine(run->err, 800)));
      }
    }
  }
  std::vector<ExportedFile> files;
  for (const StorePath& path : DependencyOrder(graph, to_import)) {
    files.push_back(ExportedFile{.path = path,
                                 .contents = served.at(path),
                                 .references = consensus::DerivationReferences(*graph.Find(path)),
                                 .deriver = ""});
  }
  if (absl::Status status = ImportIntoStore(options_.store, files); !status.ok()) {
    return fail(RebuildOutcome::kFailed, std::string(status.message()));
  }

  // The inputs may come from substituters; the wanted path itself must be built here.
  const Derivation& drv = *graph.Find(job.deriver);
  if (!drv.input_derivations.empty()) {
    std::vector<std::string> args = store_args;
    args.push_back("--realise");
    for (const consensus::DerivationInput& input : drv.input_derivations) args.push_back(input.drv_path.full());
    absl::StatusOr<NixStoreRun> run = RunNixStore(args, BuildRun());
    if (!run.ok()) return fail(RebuildOutcome::kFailed, std::string(run.status().message()));
    if (run->exit_code != 0)
      return fail(RebuildOutcome::kFailed, LastNixErrorLine(run->err, consensus::kMaxRebuildDetailBytes));
  }

  const std::string marker = MarkerPath(spool_.dir(), job.deriver);
  std::error_code ec;
  std::filesystem::create_directories(Cat(spool_.dir(), "/", kMarkerDir), ec);
  if (absl::Status status = storage::WriteFileAtomically(marker, kind, 0600); !status.ok()) {
    return fail(RebuildOutcome::kFailed, Cat("cannot write the build marker: ", status.message()));
  }
  std::vector<std::string> args = store_args;
  args.insert(args.end(), {"--realise", "--option", "substitute", "false"});
  if (kind == "check") args.push_back("--check");
  args.push_back(job.deriver.full());
  absl::StatusOr<NixStoreRun> run = RunNixStore(args, BuildRun());
  if (!run.ok() || run->exit_code != 0) {
    std::filesystem::remove(marker, ec);
    if (!run.ok() && absl::IsCancelled(run.status())) {
      Report(RebuildStatementKind::kRelease, job.path, "");
      return {RebuildOutcome::kSkipped, wanted, std::string(run.status().message())};
    }
    return fail(RebuildOutcome::kFailed, run.ok() ? LastNixErrorLine(run->err, consensus::kMaxRebuildDetailBytes)
                                                  : std::string(run.status().message()));
  }

  // No post-build-hook took the marker: the records are ours to write.
  if (Exists(marker)) {
    const int64_t now_ms = absl::ToUnixMillis(absl::Now());
    for (const consensus::DerivationOutput& out : drv.outputs) {
      if (!out.path) continue;
      SpoolRecord record;
      record.store_path = out.path->full();
      record.drv_path = job.deriver.full();
      record.output_name = out.name;
      record.build_kind = kind;
      record.store_root = options_.store_root;
      record.store_uri = options_.store;
      record.queued_at_unix_ms = now_ms;
      absl::StatusOr<std::string> id = spool_.Add(record);
      if (!id.ok()) {
        return fail(RebuildOutcome::kFailed, Cat("built, but not spooled (the marker ", marker,
                                                 " stays for `attest push --scan`): ", id.status().message()));
      }
    }
    std::filesystem::remove(marker, ec);
  }

  std::string detail = kind;
  if (push_) {
    PushReport pushed;
    {
      absl::MutexLock lock(&push_mu_);
      pushed = push_();
    }
    const bool delivered =
        std::find(pushed.delivered.begin(), pushed.delivered.end(), wanted) != pushed.delivered.end();
    if (!delivered) detail += "; its attestation is still in the spool (`attest push` sends it later)";
  }
  Report(RebuildStatementKind::kBuilt, job.path, "");
  return {RebuildOutcome::kBuilt, wanted, detail};
}

}  // namespace attest::client
