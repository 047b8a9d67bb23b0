// `attest rebuild` against a fake node (an in-process gRPC server on 127.0.0.1 serving Policy,
// Rebuilds and Attestations with canned answers) and real Nix: the derivations are made by
// nix-instantiate in one chroot store and built by the rebuilder in another, empty one.
#include "client/rebuilder.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/cli.h"
#include "client/command.h"
#include "client/node_client.h"
#include "client/spool.h"
#include "consensus/keys.h"
#include "consensus/rebuild_statement.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "tests/client/nix_test_env.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::testing::HasSubstr;
using testing::NixTestEnv;
using ::testing::Not;
using testing::ReadFileOrDie;
using testing::TempDir;
using testing::TestKey;
using testing::WriteFileOrDie;

// A two-level chain (top uses dep), a derivation whose builder fails and one that takes a minute
// (its script holds @TOKEN@, replaced by a word unique to the test, to find its process).
constexpr char kExpression[] = R"(
let
  dep = derivation { name = "rb-dep"; system = builtins.currentSystem; builder = "/bin/sh";
                     args = [ "-c" "echo dep > $out" ]; };
  top = derivation { name = "rb-top"; system = builtins.currentSystem; builder = "/bin/sh";
                     args = [ "-c" "read x < ${dep}; echo \"top $x\" > $out" ]; };
  broken = derivation { name = "rb-broken"; system = builtins.currentSystem; builder = "/bin/sh";
                        args = [ "-c" "echo 'the frobnicator is missing' >&2; exit 3" ]; };
  slow = derivation { name = "rb-slow"; system = builtins.currentSystem; builder = "/bin/sh";
                      args = [ "-c" "/bin/sleep 60; echo @TOKEN@ > $out" ]; };
in { inherit dep top broken slow; }
)";

// What the fake node holds and what it was told. Shared by its three services.
struct FakeNodeState final {
  absl::Mutex mu;
  v1::PolicyInfo policy ABSL_GUARDED_BY(mu);
  v1::WantedResponse wanted ABSL_GUARDED_BY(mu);
  std::vector<v1::DerivationFile> derivations ABSL_GUARDED_BY(mu);  // the closure it answers with
  std::optional<grpc::Status> lease_error ABSL_GUARDED_BY(mu);
  std::optional<consensus::PublicKey> builder ABSL_GUARDED_BY(mu);  // verifies the statements
  std::vector<v1::RebuildStatement> leases ABSL_GUARDED_BY(mu);
  std::vector<v1::RebuildStatement> reports ABSL_GUARDED_BY(mu);
  std::vector<std::string> derivation_requests ABSL_GUARDED_BY(mu);
  std::vector<std::string> wanted_for ABSL_GUARDED_BY(mu);  // the operator of each Wanted request
  std::vector<std::string> submitted ABSL_GUARDED_BY(mu);   // store paths of submitted attestations
};

grpc::Status CheckStatement(FakeNodeState& state, const v1::RebuildStatement& message)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
  auto kind = consensus::ParseRebuildStatementKind(message.kind());
  auto path = consensus::StorePath::Parse(message.store_path());
  auto signature = consensus::Signature::Parse(message.signature());
  if (!kind.ok() || !path.ok() || !signature.ok()) return {grpc::StatusCode::INVALID_ARGUMENT, "malformed statement"};
  consensus::RebuildStatement statement{
      .kind = *kind, .path = *path, .time_unix = message.time_unix(), .detail = message.detail()};
  if (!consensus::VerifyRebuildStatement(statement, *signature, *state.builder).ok()) {
    return {grpc::StatusCode::UNAUTHENTICATED, "signature does not verify"};
  }
  return grpc::Status::OK;
}

class FakePolicy final : public v1::Policy::Service {
 public:
  explicit FakePolicy(FakeNodeState& state) : state_(state) {}
  grpc::Status GetPolicy(grpc::ServerContext*, const v1::GetPolicyRequest*, v1::PolicyInfo* response) override {
    absl::MutexLock lock(&state_.mu);
    *response = state_.policy;
    return grpc::Status::OK;
  }

 private:
  FakeNodeState& state_;
};

class FakeRebuilds final : public v1::Rebuilds::Service {
 public:
  explicit FakeRebuilds(FakeNodeState& state) : state_(state) {}
  grpc::Status Wanted(grpc::ServerContext*, const v1::WantedRequest* request, v1::WantedResponse* response) override {
    absl::MutexLock lock(&state_.mu);
    state_.wanted_for.push_back(request->operator_());
    *response = state_.wanted;
    return grpc::Status::OK;
  }
  grpc::Status GetDerivations(grpc::ServerContext*, const v1::GetDerivationsRequest* request,
                              v1::GetDerivationsResponse* response) override {
    absl::MutexLock lock(&state_.mu);
    if (!request->closure()) return {grpc::StatusCode::INVALID_ARGUMENT, "the fake serves closures only"};
    for (const std::string& path : request->store_paths()) state_.derivation_requests.push_back(path);
    for (const v1::DerivationFile& file : state_.derivations) *response->add_derivations() = file;
    return grpc::Status::OK;
  }
  grpc::Status AcquireLease(grpc::ServerContext*, const v1::RebuildStatement* request,
                            v1::AcquireLeaseResponse* response) override {
    absl::MutexLock lock(&state_.mu);
    if (grpc::Status status = CheckStatement(state_, *request); !status.ok()) return status;
    if (request->kind() != "lease") return {grpc::StatusCode::INVALID_ARGUMENT, "not a lease"};
    if (state_.lease_error) return *state_.lease_error;
    state_.leases.push_back(*request);
    response->mutable_lease()->set_store_path(request->store_path());
    return grpc::Status::OK;
  }
  grpc::Status ReportRebuild(grpc::ServerContext*, const v1::RebuildStatement* request,
                             v1::ReportRebuildResponse*) override {
    absl::MutexLock lock(&state_.mu);
    if (grpc::Status status = CheckStatement(state_, *request); !status.ok()) return status;
    state_.reports.push_back(*request);
    return grpc::Status::OK;
  }

 private:
  FakeNodeState& state_;
};

// Takes attestations but answers OBSERVED, so the spool records stay for the test to read.
class FakeAttestations final : public v1::Attestations::Service {
 public:
  explicit FakeAttestations(FakeNodeState& state) : state_(state) {}
  grpc::Status Submit(grpc::ServerContext*, const v1::SubmitRequest* request, v1::SubmitResponse* response) override {
    absl::MutexLock lock(&state_.mu);
    for (const v1::Attestation& attestation : request->attestations()) {
      state_.submitted.push_back(attestation.path_info().store_path());
      response->add_results()->set_outcome(v1::SubmitResult::OBSERVED);
    }
    return grpc::Status::OK;
  }

 private:
  FakeNodeState& state_;
};

struct CliResult final {
  int code = -1;
  std::string out;
  std::string err;
};

class RebuilderTest : public ::testing::Test {
 protected:
  // `with_hook`: the builder's nix.conf also runs attest-hook as post-build-hook.
  void SetUpNix(bool with_hook) {
    nix_.emplace(dir_, with_hook ? std::string("post-build-hook = ") + ATTEST_HOOK_BIN + "\n" : "");
    if (with_hook) nix_->Set("ATTEST_BUILDER_CONFIG", dir_.File("builder.toml"));
    token_ = "rb-slow-" + std::filesystem::path(dir_.path()).filename().string();
    std::string expression = kExpression;
    expression.replace(expression.find("@TOKEN@"), 7, token_);
    WriteFileOrDie(dir_.File("rebuild.nix"), expression);
    for (const char* attr : {"dep", "top", "broken", "slow"}) {
      drvs_[attr] = nix_->Instantiate(source_store(), dir_.File("rebuild.nix"), attr);
      outs_[attr] = nix_->OutputOf(source_store(), drvs_[attr]);
    }

    WriteFileOrDie(dir_.File("builder.sec"), key_.ExportText());
    server_ = StartServer();
    WriteFileOrDie(dir_.File("builder.toml"),
                   "key = \"builder.sec\"\nspool = \"spool\"\nnodes = [\"" + address_ + "\"]\n");
    absl::MutexLock lock(&state_.mu);
    state_.builder = key_.public_key();
    v1::Operator* ours = state_.policy.add_operators();
    ours->set_name("op-b");
    ours->add_builders(key_.public_key().ToString());
    v1::Operator* theirs = state_.policy.add_operators();
    theirs->set_name("op-a");
    theirs->add_builders(TestKey("builder-a").public_key().ToString());
    state_.policy.set_quorum(2);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  std::unique_ptr<grpc::Server> StartServer() {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&policy_service_);
    builder.RegisterService(&rebuilds_service_);
    builder.RegisterService(&attestations_service_);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    EXPECT_NE(server, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
    return server;
  }

  std::string source_store() const { return nix_->Store("source"); }
  std::string build_store() const { return nix_->Store("builder"); }

  // Serves `attr` as wanted (output `wanted_path`, default its real one) with the closure of dep and top.
  void Want(const std::string& attr, std::optional<std::string> wanted_path = std::nullopt) {
    absl::MutexLock lock(&state_.mu);
    v1::WantedPath* entry = state_.wanted.add_wanted();
    entry->set_store_path(wanted_path.value_or(outs_[attr]));
    entry->set_verdict(v1::PENDING);
    entry->set_operators_needed(1);
    entry->add_operators("op-a");
    v1::WantedDeriver* deriver = entry->add_derivers();
    deriver->set_drv_path(drvs_[attr]);
    deriver->set_output_name("out");
    deriver->set_available(true);
    for (const std::string& name :
         attr == "top" ? std::vector<std::string>{"dep", "top"} : std::vector<std::string>{attr}) {
      v1::DerivationFile& file = state_.derivations.emplace_back();
      file.set_store_path(drvs_[name]);
      file.set_contents(ReadFileOrDie(source_store() + drvs_[name]));
    }
  }

  // `attest rebuild --once` (or --watch when `extra` has --interval).
  CliResult Rebuild(std::vector<std::string> extra = {}) {
    const bool watch = std::find(extra.begin(), extra.end(), "--interval") != extra.end();
    std::vector<std::string> args = {"rebuild", "--config",    dir_.File("builder.toml"),
                                     "--store", build_store(), watch ? "--watch" : "--once"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::istringstream in;
    std::ostringstream out, err;
    CommandEnv env{.in = in,
                   .out = out,
                   .err = err,
                   .connect_node = ConnectGrpcNode,
                   .random_bytes = [](std::span<uint8_t> bytes) { std::fill(bytes.begin(), bytes.end(), 7); },
                   .default_node = ""};
    CliResult result;
    result.code = RunCli(args, env);
    result.out = out.str();
    result.err = err.str();
    return result;
  }

  std::vector<SpoolRecord> Records() {
    auto spool = Spool::Open(dir_.File("spool"));
    EXPECT_TRUE(spool.ok()) << spool.status();
    auto listing = spool->List();
    EXPECT_TRUE(listing.ok()) << listing.status();
    EXPECT_TRUE(listing->errors.empty());
    std::vector<SpoolRecord> records;
    for (const SpoolEntry& entry : listing->entries) records.push_back(entry.record);
    return records;
  }

  std::vector<SpoolRecord> RecordsFor(const std::string& path) {
    std::vector<SpoolRecord> found;
    for (const SpoolRecord& record : Records()) {
      if (record.store_path == path) found.push_back(record);
    }
    return found;
  }

  std::vector<v1::RebuildStatement> Reports() {
    absl::MutexLock lock(&state_.mu);
    return state_.reports;
  }

  bool MarkersLeft() {
    const std::string dir = dir_.File("spool/.rebuilding");
    return std::filesystem::exists(dir) && !std::filesystem::is_empty(dir);
  }

  void ExpectHappyRebuild(const CliResult& result) {
    EXPECT_EQ(result.code, 0) << result.out << result.err;
    EXPECT_THAT(result.out, HasSubstr("leased " + outs_["top"] + "\n"));
    EXPECT_THAT(result.out, HasSubstr("built " + outs_["top"] + ": rebuild"));
    EXPECT_THAT(result.out, HasSubstr("1 built, 0 failed, 0 refused, 0 skipped"));
    EXPECT_TRUE(nix_->Valid(build_store(), outs_["top"]));
    EXPECT_EQ(ReadFileOrDie(build_store() + outs_["top"]), "top dep\n");

    const std::vector<SpoolRecord> top = RecordsFor(outs_["top"]);
    ASSERT_EQ(top.size(), 1u);
    EXPECT_EQ(top[0].build_kind, "rebuild");
    EXPECT_EQ(top[0].drv_path, drvs_["top"]);
    EXPECT_EQ(top[0].output_name, "out");
    EXPECT_EQ(top[0].store_root, build_store());
    EXPECT_FALSE(MarkersLeft());

    absl::MutexLock lock(&state_.mu);
    EXPECT_EQ(state_.wanted_for, std::vector<std::string>{"op-b"});
    ASSERT_EQ(state_.leases.size(), 1u);
    EXPECT_EQ(state_.leases[0].store_path(), outs_["top"]);
    ASSERT_EQ(state_.reports.size(), 1u);
    EXPECT_EQ(state_.reports[0].kind(), "built");
    EXPECT_EQ(state_.reports[0].store_path(), outs_["top"]);
    // The push pass ran before the report: the attestation of the wanted path went out once.
    EXPECT_EQ(std::count(state_.submitted.begin(), state_.submitted.end(), outs_["top"]), 1);
  }

  // Nothing of the served closure reached the builder's store, and the node heard why.
  void ExpectNothingImported(const std::string& reason) {
    EXPECT_FALSE(nix_->Valid(build_store(), drvs_["top"]));
    EXPECT_FALSE(nix_->Valid(build_store(), drvs_["dep"]));
    EXPECT_FALSE(nix_->Valid(build_store(), outs_["top"]));
    EXPECT_FALSE(nix_->Valid(build_store(), outs_["dep"]));
    EXPECT_TRUE(Records().empty());
    const std::vector<v1::RebuildStatement> reports = Reports();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_EQ(reports[0].kind(), "failed");
    EXPECT_THAT(reports[0].detail(), HasSubstr(reason));
  }

  TempDir dir_;
  std::optional<NixTestEnv> nix_;
  consensus::SecretKey key_ = TestKey("builder-b");
  std::map<std::string, std::string> drvs_;
  std::map<std::string, std::string> outs_;
  FakeNodeState state_;
  FakePolicy policy_service_{state_};
  FakeRebuilds rebuilds_service_{state_};
  FakeAttestations attestations_service_{state_};
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string token_;
};

TEST_F(RebuilderTest, BuildsTheWantedPathSpoolsItOnceAndReports) {
  SetUpNix(/*with_hook=*/false);
  Want("top");
  CliResult result = Rebuild();
  ExpectHappyRebuild(result);
  // Without a hook only the wanted derivation's outputs are spooled (the input was built on the way).
  EXPECT_EQ(Records().size(), 1u);
}

TEST_F(RebuilderTest, WithThePostBuildHookTheOutputIsStillSpooledOnceAsRebuild) {
  SetUpNix(/*with_hook=*/true);
  Want("top");
  CliResult result = Rebuild();
  ExpectHappyRebuild(result);
  // The hook spooled the input it built as a first build, and the wanted path with the marker's kind.
  const std::vector<SpoolRecord> dep = RecordsFor(outs_["dep"]);
  ASSERT_EQ(dep.size(), 1u);
  EXPECT_EQ(dep[0].build_kind, "");
  EXPECT_EQ(Records().size(), 2u);
}

TEST_F(RebuilderTest, TamperedDerivationIsRefusedBeforeAnythingIsImported) {
  SetUpNix(/*with_hook=*/false);
  Want("top");
  {
    absl::MutexLock lock(&state_.mu);
    std::string contents = state_.derivations.back().contents();  // top
    const size_t at = contents.find("top $x");
    ASSERT_NE(at, std::string::npos);
    contents[at + 1] = 'O';  // one byte
    state_.derivations.back().set_contents(contents);
  }
  CliResult result = Rebuild();
  EXPECT_EQ(result.code, 1) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr("refused " + outs_["top"] + ": "));
  EXPECT_THAT(result.out, HasSubstr("the file does not belong to this path"));
  EXPECT_THAT(result.out, Not(HasSubstr("built ")));
  ExpectNothingImported("the file does not belong to this path");
}

TEST_F(RebuilderTest, DerivationThatBuildsAnotherPathIsRefused) {
  SetUpNix(/*with_hook=*/false);
  // The node says top's derivation builds the wanted dep output: it does not.
  Want("top", outs_["dep"]);
  CliResult result = Rebuild();
  EXPECT_EQ(result.code, 1) << result.out << result.err;
  const std::string reason = drvs_["top"] + " builds " + outs_["top"] + ", not the wanted " + outs_["dep"];
  EXPECT_THAT(result.out, HasSubstr("refused " + outs_["dep"] + ": " + reason));
  ExpectNothingImported(reason);
}

TEST_F(RebuilderTest, LeaseHeldByAnotherRebuilderIsSkipped) {
  SetUpNix(/*with_hook=*/false);
  Want("top");
  {
    absl::MutexLock lock(&state_.mu);
    state_.lease_error = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                      "builder-c of operator op-b holds a lease on it until 1764000000");
  }
  CliResult result = Rebuild();
  EXPECT_EQ(result.code, 0) << result.out << result.err;
  EXPECT_THAT(result.out,
              HasSubstr("skipped " + outs_["top"] + ": no lease (another rebuilder of this operator may hold it): "));
  EXPECT_THAT(result.out, HasSubstr("holds a lease on it"));
  EXPECT_THAT(result.out, HasSubstr("0 built, 0 failed, 0 refused, 1 skipped"));
  EXPECT_FALSE(nix_->Valid(build_store(), drvs_["top"]));
  absl::MutexLock lock(&state_.mu);
  EXPECT_TRUE(state_.derivation_requests.empty());
  EXPECT_TRUE(state_.reports.empty());
}

TEST_F(RebuilderTest, FailingBuildIsReportedWithNixsReason) {
  SetUpNix(/*with_hook=*/false);
  Want("broken");
  CliResult result = Rebuild();
  EXPECT_EQ(result.code, 1) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr("failed " + outs_["broken"] + ": "));
  EXPECT_THAT(result.out, HasSubstr("0 built, 1 failed, 0 refused, 0 skipped"));
  // The derivation was imported (it checked out), the build failed, nothing was spooled.
  EXPECT_TRUE(nix_->Valid(build_store(), drvs_["broken"]));
  EXPECT_FALSE(nix_->Valid(build_store(), outs_["broken"]));
  EXPECT_TRUE(Records().empty());
  EXPECT_FALSE(MarkersLeft());
  const std::vector<v1::RebuildStatement> reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind(), "failed");
  EXPECT_THAT(reports[0].detail(), HasSubstr("failed with exit code 3"));
  EXPECT_THAT(reports[0].detail(), HasSubstr("the frobnicator is missing"));
  EXPECT_THAT(reports[0].detail(), Not(HasSubstr("\n")));
  EXPECT_LE(reports[0].detail().size(), consensus::kMaxRebuildDetailBytes);
}

TEST_F(RebuilderTest, PathAlreadyPresentIsSkippedUnlessChecked) {
  SetUpNix(/*with_hook=*/false);
  // The builder already has top (built here without attest: no record).
  testing::RunResult built =
      nix_->Nix({"nix-build", "--store", build_store(), "--no-out-link", dir_.File("rebuild.nix"), "-A", "top"});
  ASSERT_EQ(built.exit_code, 0) << built.err;
  Want("top");

  CliResult skipped = Rebuild();
  EXPECT_EQ(skipped.code, 0) << skipped.out << skipped.err;
  EXPECT_THAT(skipped.out, HasSubstr("skipped " + outs_["top"] +
                                     ": already in the local store; --check builds it again to compare"));
  EXPECT_TRUE(Records().empty());

  CliResult checked = Rebuild({"--check"});
  EXPECT_EQ(checked.code, 0) << checked.out << checked.err;
  EXPECT_THAT(checked.out, HasSubstr("built " + outs_["top"] + ": check"));
  const std::vector<SpoolRecord> top = RecordsFor(outs_["top"]);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].build_kind, "check");
  const std::vector<v1::RebuildStatement> reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind(), "built");
}

TEST_F(RebuilderTest, KeyNotInThePolicyExitsOneAndDoesNothing) {
  SetUpNix(/*with_hook=*/false);
  Want("top");
  {
    absl::MutexLock lock(&state_.mu);
    state_.policy.mutable_operators(0)->set_builders(0, TestKey("someone-else").public_key().ToString());
  }
  CliResult result = Rebuild();
  EXPECT_EQ(result.code, 1) << result.out << result.err;
  EXPECT_THAT(result.err,
              HasSubstr("this builder's key builder-b is not in the node's policy: its rebuilds would not count"));
  absl::MutexLock lock(&state_.mu);
  EXPECT_TRUE(state_.wanted_for.empty());
  EXPECT_TRUE(state_.leases.empty());
}

TEST_F(RebuilderTest, InputDerivationNobodyHasIsRefused) {
  SetUpNix(/*with_hook=*/false);
  Want("top");
  {
    absl::MutexLock lock(&state_.mu);
    state_.derivations.erase(state_.derivations.begin());  // dep's file
  }
  CliResult result = Rebuild();
  EXPECT_EQ(result.code, 1) << result.out << result.err;
  const std::string reason =
      drvs_["dep"] + ", an input of " + drvs_["top"] + ", was not sent by the node and is not in the local store";
  EXPECT_THAT(result.out, HasSubstr("refused " + outs_["top"] + ": " + reason));
  ExpectNothingImported(reason);
}

TEST_F(RebuilderTest, JobsBuildSeveralPathsInOneRound) {
  SetUpNix(/*with_hook=*/false);
  Want("top");
  Want("broken");
  CliResult result = Rebuild({"--jobs", "2"});
  EXPECT_EQ(result.code, 1) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr("built " + outs_["top"] + ": rebuild"));
  EXPECT_THAT(result.out, HasSubstr("failed " + outs_["broken"] + ": "));
  EXPECT_THAT(result.out, HasSubstr("1 built, 1 failed, 0 refused, 0 skipped"));
  EXPECT_EQ(RecordsFor(outs_["top"]).size(), 1u);
  EXPECT_EQ(Reports().size(), 2u);
}

TEST_F(RebuilderTest, WatchRunsRoundsUntilSigterm) {
  SetUpNix(/*with_hook=*/false);
  Want("top");
  // Once a third round asked for the queue (the first built top, the second found it), stop the
  // command as a service manager would.
  std::thread stopper([this] {
    const bool third_round = testing::PollUntil(
        [this] {
          absl::MutexLock lock(&state_.mu);
          return state_.wanted_for.size() >= 3;
        },
        std::chrono::seconds(50));
    EXPECT_TRUE(third_round);
    ::kill(::getpid(), SIGTERM);
  });
  CliResult result = Rebuild({"--interval", "100ms"});
  stopper.join();
  EXPECT_EQ(result.code, 0) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr("built " + outs_["top"] + ": rebuild"));
  // The second round found it in the local store.
  EXPECT_THAT(result.out, HasSubstr("skipped " + outs_["top"] + ": already in the local store"));
  EXPECT_EQ(RecordsFor(outs_["top"]).size(), 1u);
}

// True when a process still runs a command line containing `token`.
bool ProcessRuns(const std::string& token) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    if (entry.path().filename().string().find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (text.find(token) != std::string::npos) return true;
  }
  return false;
}

TEST_F(RebuilderTest, StopSignalEndsTheBuildAndReleasesTheLease) {
  SetUpNix(/*with_hook=*/false);
  Want("slow");
  std::thread stopper([this] {
    EXPECT_TRUE(testing::PollUntil([this] { return ProcessRuns(token_); }, std::chrono::seconds(30)));
    ::kill(::getpid(), SIGTERM);
  });
  CliResult result = Rebuild();
  stopper.join();
  EXPECT_EQ(result.code, 0) << result.out << result.err;
  EXPECT_THAT(result.out, HasSubstr("skipped " + outs_["slow"] + ": nix-store was stopped"));
  EXPECT_FALSE(ProcessRuns(token_)) << "the builder outlived the rebuild";
  EXPECT_FALSE(nix_->Valid(build_store(), outs_["slow"]));
  EXPECT_TRUE(Records().empty());
  EXPECT_FALSE(MarkersLeft());
  const std::vector<v1::RebuildStatement> reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].kind(), "release");
}

TEST_F(RebuilderTest, MarkersOlderThanTheBuildTimeoutAreRemoved) {
  SetUpNix(/*with_hook=*/false);
  const std::string stale = dir_.File("spool/.rebuilding/0123456789abcdfghijklmnpqrsvwxyz-died.drv");
  const std::string fresh = dir_.File("spool/.rebuilding/0123456789abcdfghijklmnpqrsvwxyz-running.drv");
  std::filesystem::create_directories(dir_.File("spool/.rebuilding"));
  WriteFileOrDie(stale, "rebuild");
  WriteFileOrDie(fresh, "rebuild");
  std::filesystem::last_write_time(stale, std::filesystem::file_time_type::clock::now() - std::chrono::hours(3));
  CliResult result = Rebuild({"--timeout", "1m"});  // nothing is wanted: the round only tidies up
  EXPECT_EQ(result.code, 0) << result.out << result.err;
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(fresh));
}

TEST_F(RebuilderTest, UsageErrorsExitTwo) {
  SetUpNix(/*with_hook=*/false);
  std::istringstream in;
  std::ostringstream out, err;
  CommandEnv env{
      .in = in, .out = out, .err = err, .connect_node = ConnectGrpcNode, .random_bytes = {}, .default_node = ""};
  EXPECT_EQ(RunCli(std::vector<std::string>{"rebuild", "--config", dir_.File("builder.toml")}, env), kExitUsage);
  EXPECT_EQ(
      RunCli(std::vector<std::string>{"rebuild", "--config", dir_.File("builder.toml"), "--once", "--watch"}, env),
      kExitUsage);
  EXPECT_EQ(
      RunCli(std::vector<std::string>{"rebuild", "--config", dir_.File("builder.toml"), "--once", "--jobs", "0"}, env),
      kExitUsage);
  EXPECT_THAT(err.str(), HasSubstr("give exactly one of --once and --watch"));
}

}  // namespace
}  // namespace attest::client
