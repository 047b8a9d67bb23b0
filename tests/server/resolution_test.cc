// Maintainers' resolutions through a real node: the ResolveDispute RPC over loopback gRPC, the
// refusals, the dispute state, builders excluded from the tally, the log, and a restart.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "consensus/dispute.h"
#include "consensus/log_entry.h"
#include "consensus/resolution.h"
#include "consensus/signed_note.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/node.h"
#include "server/node_config.h"
#include "tests/server/http_test_client.h"
#include "tests/server/realisation_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::testing::HasSubstr;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

class ResolutionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    config_path_ = testing::WriteNodeDir(*dir_, federation_);
    StartNode();
  }
  void TearDown() override { StopNode(); }

  void StartNode() {
    auto config = LoadNodeConfig(config_path_);
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    channel_ = grpc::CreateChannel(node_->grpc_address(), grpc::InsecureChannelCredentials());
    attestations_ = v1::Attestations::NewStub(channel_);
    disputes_ = v1::Disputes::NewStub(channel_);
  }
  void StopNode() {
    attestations_.reset();
    disputes_.reset();
    channel_.reset();
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
    node_.reset();
  }

  void Submit(const consensus::PathInfo& claim, const consensus::SecretKey& key) {
    v1::SubmitRequest request;
    *request.add_attestations() = Signed(claim, key);
    v1::SubmitResponse response;
    grpc::Status status = attestations_->Submit(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results(0).outcome(), v1::SubmitResult::ACCEPTED) << response.results(0).DebugString();
  }

  v1::PathStatus StatusOf(const consensus::StorePath& path) {
    v1::StatusRequest request;
    request.add_store_paths(path.full());
    v1::StatusResponse response;
    grpc::Status status = attestations_->Status(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.statuses_size() == 1 ? response.statuses(0) : v1::PathStatus{};
  }

  v1::Dispute DisputeOf(const consensus::StorePath& path) {
    v1::GetDisputeRequest request;
    request.set_id(path.full());
    v1::Dispute dispute;
    grpc::Status status = disputes_->GetDispute(Context().get(), request, &dispute);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return dispute;
  }

  // alice and bob agree on "good", carol signed "evil": DISPUTED.
  void MakeDispute() {
    Submit(good_, federation_.alice);
    Submit(good_, federation_.bob);
    Submit(evil_, federation_.carol);
    ASSERT_EQ(StatusOf(good_.path).verdict(), v1::DISPUTED);
  }

  consensus::Resolution Statement(consensus::ResolutionOutcome outcome, std::vector<std::string> builders,
                                  int64_t time, std::vector<std::string> fingerprints = {}) {
    if (fingerprints.empty()) fingerprints = {good_.Fingerprint(), evil_.Fingerprint()};
    std::sort(fingerprints.begin(), fingerprints.end());
    return consensus::Resolution{.dispute_id = consensus::DisputeId(good_.path),
                                 .subject = good_.path,
                                 .outcome = outcome,
                                 .fingerprints = std::move(fingerprints),
                                 .builders = std::move(builders),
                                 .time_unix = time,
                                 .note = "reviewed the build logs"};
  }

  grpc::Status Resolve(const consensus::Resolution& statement, const consensus::SecretKey& key,
                       v1::ResolveDisputeResponse* response) {
    auto note = consensus::SignResolution(statement, key);
    EXPECT_TRUE(note.ok()) << note.status();
    v1::ResolveDisputeRequest request;
    request.set_signed_statement(note->Serialize());
    return disputes_->ResolveDispute(Context().get(), request, response);
  }

  int64_t Now() const { return absl::ToUnixSeconds(absl::Now()); }

  Federation federation_;
  std::unique_ptr<TempDir> dir_;
  std::string config_path_;
  std::unique_ptr<Node> node_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::Disputes::Stub> disputes_;
  const consensus::PathInfo good_ = TestClaim("hello-2.12", "good");
  const consensus::PathInfo evil_ = TestClaim("hello-2.12", "evil");
};

// A derivation output's dispute is resolved like a path's: the statement names the realisation key, and a
// malicious builder stops counting for realisations as for paths.
TEST_F(ResolutionTest, ADerivationOutputsDisputeIsResolvedAndTheMaliciousBuilderStopsCounting) {
  const consensus::RealisationKey key = testing::DrvPathKey("flaky-1.0");
  const consensus::Realisation good = testing::RealisationOf(key, testing::OutPath("flaky-1.0", "good"));
  const consensus::Realisation evil = testing::RealisationOf(key, testing::OutPath("flaky-1.0", "evil"));
  v1::SubmitRequest request;
  *request.add_realisations() = testing::SignedRealisation(good, federation_.alice);
  *request.add_realisations() = testing::SignedRealisation(evil, federation_.carol);
  v1::SubmitResponse submitted;
  ASSERT_TRUE(attestations_->Submit(Context().get(), request, &submitted).ok());
  v1::StatusRequest ask;
  ask.add_store_paths(key.ToString());
  v1::StatusResponse before;
  ASSERT_TRUE(attestations_->Status(Context().get(), ask, &before).ok());
  ASSERT_EQ(before.statuses(0).verdict(), v1::DISPUTED);
  const std::string id = consensus::DisputeId(key);
  EXPECT_EQ(before.statuses(0).dispute_id(), id);

  // The dispute is found by its key and names it; its evidence is the realisation attestations.
  v1::GetDisputeRequest get;
  get.set_id(key.ToString());
  v1::Dispute dispute;
  ASSERT_TRUE(disputes_->GetDispute(Context().get(), get, &dispute).ok());
  EXPECT_EQ(dispute.id(), id);
  EXPECT_EQ(dispute.realisation_key(), key.ToString());
  EXPECT_EQ(dispute.store_path(), "");
  EXPECT_EQ(dispute.realisations_size(), 2);
  EXPECT_EQ(dispute.attestations_size(), 0);

  std::vector<std::string> fingerprints = {good.Fingerprint(), evil.Fingerprint()};
  std::sort(fingerprints.begin(), fingerprints.end());
  const consensus::Resolution statement{.dispute_id = id,
                                        .subject = key,
                                        .outcome = consensus::ResolutionOutcome::kMalicious,
                                        .fingerprints = fingerprints,
                                        .builders = {federation_.carol.name()},
                                        .time_unix = Now(),
                                        .note = "carol's builder substituted another output"};
  v1::ResolveDisputeResponse resolved;
  grpc::Status status = Resolve(statement, federation_.maintainer, &resolved);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resolved.dispute().state(), "malicious");
  EXPECT_EQ(resolved.dispute().realisation_key(), key.ToString());

  // carol no longer counts: alice alone leaves the output PENDING, bob's agreement confirms it.
  v1::StatusResponse after;
  ASSERT_TRUE(attestations_->Status(Context().get(), ask, &after).ok());
  EXPECT_EQ(after.statuses(0).verdict(), v1::PENDING);
  v1::SubmitRequest bob;
  *bob.add_realisations() = testing::SignedRealisation(good, federation_.bob);
  ASSERT_TRUE(attestations_->Submit(Context().get(), bob, &submitted).ok());
  ASSERT_TRUE(attestations_->Status(Context().get(), ask, &after).ok());
  EXPECT_EQ(after.statuses(0).verdict(), v1::CONFIRMED);

  // A statement naming the derivation's own path is about another dispute.
  consensus::Resolution wrong = statement;
  wrong.subject = key.drv_path();
  wrong.dispute_id = consensus::DisputeId(key.drv_path());
  wrong.fingerprints = {TestClaim(std::string(key.drv_path().name()), "x").Fingerprint()};
  status = Resolve(wrong, federation_.maintainer, &resolved);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
}

TEST_F(ResolutionTest, MaliciousStatementExcludesTheBuilderEverywhereAndSurvivesRestart) {
  MakeDispute();
  const uint64_t log_before = node_->store()->GetLogHead()->size;
  v1::ResolveDisputeResponse response;
  const consensus::Resolution statement =
      Statement(consensus::ResolutionOutcome::kMalicious, {"carol-builder-1"}, Now());
  grpc::Status status = Resolve(statement, federation_.maintainer, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.already_present());
  EXPECT_EQ(response.dispute().state(), "malicious");
  ASSERT_EQ(response.dispute().resolutions_size(), 1);
  EXPECT_EQ(response.dispute().resolutions(0).maintainer(), "maintainer-1");
  EXPECT_EQ(response.dispute().resolutions(0).note(), "reviewed the build logs");
  // The evidence stays: carol's attestation is still shown with the dispute.
  EXPECT_EQ(response.dispute().attestations_size(), 3);

  // carol no longer counts: alice and bob reach quorum; the statement travels with the answer.
  v1::PathStatus after = StatusOf(good_.path);
  EXPECT_EQ(after.verdict(), v1::CONFIRMED);
  ASSERT_EQ(after.exclusions_size(), 1);
  EXPECT_EQ(after.exclusions(0), response.dispute().resolutions(0).signed_statement());
  // ... on every path, not only the disputed one.
  const consensus::PathInfo other = TestClaim("other-1.0", "x");
  Submit(other, federation_.carol);
  EXPECT_EQ(StatusOf(other.path).verdict(), v1::UNKNOWN);

  // The statement is in the node's log.
  auto head = node_->store()->GetLogHead();
  ASSERT_TRUE(head.ok());
  auto entries = node_->store()->LogEntries(log_before, head->size - log_before);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_FALSE(entries->empty());
  auto parsed = consensus::ParseLogEntry(entries->front());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->kind, consensus::LogEntryKind::kResolution);

  // The same statement again changes nothing.
  v1::ResolveDisputeResponse again;
  ASSERT_TRUE(Resolve(statement, federation_.maintainer, &again).ok());
  EXPECT_TRUE(again.already_present());
  EXPECT_EQ(again.dispute().resolutions_size(), 1);

  // After a restart the statement is still in force.
  StopNode();
  StartNode();
  EXPECT_EQ(StatusOf(good_.path).verdict(), v1::CONFIRMED);
  EXPECT_EQ(DisputeOf(good_.path).state(), "malicious");
}

TEST_F(ResolutionTest, RefusalsAreSpecificAndChangeNothing) {
  MakeDispute();
  v1::ResolveDisputeResponse response;
  const int64_t now = Now();

  // A builder key of the policy is not a maintainer.
  grpc::Status status =
      Resolve(Statement(consensus::ResolutionOutcome::kResolved, {}, now), federation_.alice, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("maintainer"));

  // A key with the maintainer's name that is not the maintainer's key.
  status = Resolve(Statement(consensus::ResolutionOutcome::kResolved, {}, now), TestKey("maintainer-1", "impostor"),
                   &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // An unknown dispute.
  const consensus::PathInfo quiet = TestClaim("quiet-1", "x");
  consensus::Resolution unknown = Statement(consensus::ResolutionOutcome::kResolved, {}, now, {quiet.Fingerprint()});
  unknown.subject = quiet.path;
  unknown.dispute_id = consensus::DisputeId(quiet.path);
  status = Resolve(unknown, federation_.maintainer, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  // Blaming a builder that signed nothing in the dispute: alice and carol disagree about another path,
  // bob never signed it.
  const consensus::PathInfo mine = TestClaim("two-sides", "a");
  const consensus::PathInfo theirs = TestClaim("two-sides", "c");
  Submit(mine, federation_.alice);
  Submit(theirs, federation_.carol);
  std::vector<std::string> sides = {mine.Fingerprint(), theirs.Fingerprint()};
  std::sort(sides.begin(), sides.end());
  consensus::Resolution blame_bob{.dispute_id = consensus::DisputeId(mine.path),
                                  .subject = mine.path,
                                  .outcome = consensus::ResolutionOutcome::kMalicious,
                                  .fingerprints = sides,
                                  .builders = {"bob-builder-1"},
                                  .time_unix = now,
                                  .note = "wrong builder"};
  status = Resolve(blame_bob, federation_.maintainer, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("signed nothing"));

  // A valid statement about the first dispute.
  status = Resolve(Statement(consensus::ResolutionOutcome::kMalicious, {"carol-builder-1"}, now), federation_.maintainer,
                   &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.dispute().state(), "malicious");

  // Garbage.
  v1::ResolveDisputeRequest garbage;
  garbage.set_signed_statement("attest/resolution/v1\nnot really\n");
  status = disputes_->ResolveDispute(Context().get(), garbage, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Not newer than the statement held.
  status = Resolve(Statement(consensus::ResolutionOutcome::kResolved, {}, now - 10), federation_.maintainer, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("not after the latest"));
  status = Resolve(Statement(consensus::ResolutionOutcome::kResolved, {}, now), federation_.maintainer, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Dated far in the future.
  status = Resolve(Statement(consensus::ResolutionOutcome::kResolved, {}, now + 3600), federation_.maintainer,
                   &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("clock"));

  // Only the one accepted statement is held; the node keeps serving.
  EXPECT_EQ(DisputeOf(good_.path).resolutions_size(), 1);
  auto stats = node_->store()->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->resolutions, 1);
}

TEST_F(ResolutionTest, NondeterministicStaysDisputedAndANewFingerprintReopens) {
  MakeDispute();
  v1::ResolveDisputeResponse response;
  const int64_t now = Now();
  grpc::Status status =
      Resolve(Statement(consensus::ResolutionOutcome::kNondeterministic, {}, now), federation_.maintainer, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.dispute().state(), "nondeterministic");
  EXPECT_EQ(StatusOf(good_.path).verdict(), v1::DISPUTED);  // nobody can vouch for it

  // A third fingerprint nobody reviewed reopens the dispute.
  Submit(TestClaim("hello-2.12", "third"), federation_.bob);
  EXPECT_EQ(DisputeOf(good_.path).state(), "open");

  v1::ListDisputesRequest open;
  open.set_state("open");
  v1::ListDisputesResponse listed;
  ASSERT_TRUE(disputes_->ListDisputes(Context().get(), open, &listed).ok());
  EXPECT_EQ(listed.total(), 1);
  v1::ListDisputesRequest bad_state;
  bad_state.set_state("closed");
  EXPECT_EQ(disputes_->ListDisputes(Context().get(), bad_state, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// One rule for key names: a builder and a maintainer named with the characters Nix allows ('+' and
// the rest, and markup characters the pages must escape) are listed in the policy, the maintainer
// signs, and the node excludes the builder.
class NixKeyNameResolutionTest : public ResolutionTest {
 protected:
  static constexpr std::string_view kBuilder = "carol+ci.example.org/b_1=@\xC3\xBC<b>&";
  static constexpr std::string_view kMaintainer = "maint+ops.example/m-1=@\xC3\xA9";
  NixKeyNameResolutionTest() {
    federation_.carol = TestKey(kBuilder);
    federation_.maintainer = TestKey(kMaintainer);
  }
};

TEST_F(NixKeyNameResolutionTest, MaintainerSignsAndMaliciousExcludesTheBuilder) {
  MakeDispute();
  v1::ResolveDisputeResponse response;
  grpc::Status status = Resolve(Statement(consensus::ResolutionOutcome::kMalicious, {std::string(kBuilder)}, Now()),
                                federation_.maintainer, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.dispute().state(), "malicious");
  ASSERT_EQ(response.dispute().resolutions_size(), 1);
  EXPECT_EQ(response.dispute().resolutions(0).maintainer(), kMaintainer);
  // The builder no longer counts: alice and bob reach quorum.
  EXPECT_EQ(StatusOf(good_.path).verdict(), v1::CONFIRMED);

  // The dispute page names them, escaped.
  const std::string id = consensus::DisputeId(good_.path);
  std::optional<testing::HttpAnswer> page = testing::HttpGet(node_->http_port(), "/disputes/" + id);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("carol+ci.example.org/b_1=@\xC3\xBC&lt;b&gt;&amp;"));
  EXPECT_THAT(page->body, ::testing::Not(HasSubstr("b_1=@\xC3\xBC<b>")));
  EXPECT_THAT(page->body, HasSubstr(std::string(kMaintainer)));
}

TEST_F(ResolutionTest, ListDisputesOperatorFilterMustBeAnOperatorName) {
  MakeDispute();
  auto list = [&](const std::string& op, v1::ListDisputesResponse* listed) {
    v1::ListDisputesRequest request;
    request.set_operator_(op);
    return disputes_->ListDisputes(Context().get(), request, listed);
  };
  v1::ListDisputesResponse listed;
  ASSERT_TRUE(list("carol-home", &listed).ok());
  EXPECT_EQ(listed.total(), 1);
  ASSERT_TRUE(list("dave-elsewhere", &listed).ok());  // well formed, on no side
  EXPECT_EQ(listed.total(), 0);
  // Operators are stored newline-separated: a filter holding a newline must not match a span of them.
  for (const std::string& bad : {std::string("alice-ci\nbob-labs"), std::string("\n"), std::string("carol home"),
                                 std::string(129, 'a')}) {
    grpc::Status status = list(bad, &listed);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_THAT(status.error_message(), HasSubstr("operator")) << bad;
  }
}

}  // namespace
}  // namespace attest::server
