// The Rebuilds service of a real node (SQLite, gRPC over an in-process channel): demand counted from
// status requests, derivations taken and served, leases and reports from signed statements, and every
// kind of bad statement refused with its own code.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "consensus/rebuild_statement.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/node.h"
#include "tests/server/derivation_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/support/subprocess.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::MakeTestDrv;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestDrv;
using ::attest::testing::TestKey;
using ::attest::testing::WriteFileOrDie;
using ::testing::HasSubstr;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

class RebuildsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Operator alice-ci has two builders here, so that one can be refused a lease the other holds.
    const std::string policy = absl::StrCat(
        "quorum = 2\n", "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", federation_.alice.public_key().ToString(),
        "\", \"", alice_second_.public_key().ToString(), "\"]\n", "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"",
        federation_.bob.public_key().ToString(), "\"]\n", "[[operator]]\nname = \"carol-home\"\nbuilders = [\"",
        federation_.carol.public_key().ToString(), "\"]\n");
    testing::WriteNodeDir(dir_, federation_);
    WriteFileOrDie(dir_.File("policy.toml"), policy);
    absl::StatusOr<NodeConfig> config = LoadNodeConfig(dir_.File("node.toml"));
    ASSERT_TRUE(config.ok()) << config.status();
    absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(*config, [this] { return now_; });
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    channel_ = node_->InProcessChannel();
    attestations_ = v1::Attestations::NewStub(channel_);
    rebuilds_ = v1::Rebuilds::NewStub(channel_);
  }
  void TearDown() override {
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
  }

  void Submit(const consensus::StorePath& path, const consensus::SecretKey& key, const std::string& deriver = "") {
    absl::StatusOr<consensus::PathInfo> claim =
        consensus::PathInfo::Create(path, testing::TestClaim("x").nar_hash, 100, {});
    ASSERT_TRUE(claim.ok());
    consensus::BuildMetadata metadata;
    metadata.deriver = deriver;
    metadata.output_name = deriver.empty() ? "" : "out";
    v1::SubmitRequest request;
    *request.add_attestations() = proto::ToProto(consensus::SignAttestation(*claim, key, metadata));
    v1::SubmitResponse response;
    ASSERT_TRUE(attestations_->Submit(Context().get(), request, &response).ok());
    ASSERT_EQ(response.results(0).outcome(), v1::SubmitResult::ACCEPTED) << response.results(0).message();
  }

  v1::RebuildStatement Statement(consensus::RebuildStatementKind kind, const consensus::StorePath& path,
                                 const consensus::SecretKey& key, std::string detail = "") {
    consensus::RebuildStatement statement{
        .kind = kind, .path = path, .time_unix = absl::ToUnixSeconds(now_), .detail = std::move(detail)};
    v1::RebuildStatement out;
    out.set_kind(std::string(consensus::RebuildStatementKindName(kind)));
    out.set_store_path(path.full());
    out.set_time_unix(statement.time_unix);
    out.set_detail(statement.detail);
    out.set_signature(consensus::SignRebuildStatement(statement, key).ToString());
    return out;
  }

  grpc::Status Lease(const v1::RebuildStatement& statement, v1::AcquireLeaseResponse* response = nullptr) {
    v1::AcquireLeaseResponse ignored;
    return rebuilds_->AcquireLease(Context().get(), statement, response ? response : &ignored);
  }

  v1::WantedResponse Wanted(const std::string& operator_name = "") {
    v1::WantedRequest request;
    request.set_operator_(operator_name);
    v1::WantedResponse response;
    grpc::Status status = rebuilds_->Wanted(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  TempDir dir_;
  Federation federation_;
  consensus::SecretKey alice_second_ = TestKey("alice-builder-2");
  absl::Time now_ = absl::FromUnixSeconds(testing::kTestNow);
  std::unique_ptr<Node> node_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::Rebuilds::Stub> rebuilds_;
};

TEST_F(RebuildsServiceTest, StatusRequestsForPathsShortOfQuorumAreDemand) {
  const TestDrv drv = MakeTestDrv("wanted");
  Submit(drv.out, federation_.alice, drv.path.full());
  v1::StatusRequest request;
  request.add_store_paths(drv.out.full());
  request.add_store_paths(drv.out.full());  // a repeat in one request counts once
  v1::StatusResponse response;
  ASSERT_TRUE(attestations_->Status(Context().get(), request, &response).ok());

  v1::WantedResponse wanted = Wanted();
  ASSERT_EQ(wanted.wanted_size(), 1);
  EXPECT_EQ(wanted.wanted(0).store_path(), drv.out.full());
  EXPECT_EQ(wanted.wanted(0).verdict(), v1::PENDING);
  EXPECT_DOUBLE_EQ(wanted.wanted(0).demand(), 1.0);
  EXPECT_EQ(wanted.wanted(0).operators_needed(), 1);
  ASSERT_EQ(wanted.wanted(0).derivers_size(), 1);
  EXPECT_EQ(wanted.wanted(0).derivers(0).drv_path(), drv.path.full());
  EXPECT_FALSE(wanted.wanted(0).derivers(0).available()) << "not sent yet";
  EXPECT_EQ(wanted.demand_paths(), 1);
  EXPECT_EQ(Wanted("alice-ci").wanted_size(), 0);

  // The derivation arrives: available now; the same builder may take a lease on it.
  v1::SubmitDerivationsRequest upload;
  v1::DerivationFile* file = upload.add_derivations();
  file->set_store_path(drv.path.full());
  file->set_contents(drv.contents);
  v1::SubmitDerivationsResponse uploaded;
  ASSERT_TRUE(rebuilds_->SubmitDerivations(Context().get(), upload, &uploaded).ok());
  ASSERT_EQ(uploaded.results(0).outcome(), v1::DerivationResult::STORED) << uploaded.results(0).message();
  EXPECT_TRUE(Wanted().wanted(0).derivers(0).available());

  v1::GetDerivationsRequest get;
  get.add_store_paths(drv.path.full());
  get.set_closure(true);
  v1::GetDerivationsResponse got;
  ASSERT_TRUE(rebuilds_->GetDerivations(Context().get(), get, &got).ok());
  ASSERT_EQ(got.derivations_size(), 1);
  EXPECT_EQ(got.derivations(0).contents(), drv.contents);

  // Confirmed by a second operator: out of the queue.
  Submit(drv.out, federation_.bob);
  EXPECT_TRUE(testing::PollUntil([&] { return Wanted().wanted_size() == 0; }, std::chrono::seconds(10)));
}

TEST_F(RebuildsServiceTest, LeasesKeepTwoRebuildersOfOneOperatorApart) {
  const TestDrv drv = MakeTestDrv("leased");
  Submit(drv.out, federation_.bob, drv.path.full());
  v1::SubmitDerivationsRequest upload;
  upload.add_derivations()->set_store_path(drv.path.full());
  upload.mutable_derivations(0)->set_contents(drv.contents);
  v1::SubmitDerivationsResponse uploaded;
  ASSERT_TRUE(rebuilds_->SubmitDerivations(Context().get(), upload, &uploaded).ok());

  v1::AcquireLeaseResponse lease;
  ASSERT_TRUE(Lease(Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.alice), &lease).ok());
  EXPECT_EQ(lease.lease().operator_(), "alice-ci");
  EXPECT_EQ(lease.lease().builder(), "alice-builder-1");
  // Renewal by the holder is fine; the operator's other builder is refused; another operator is not.
  EXPECT_TRUE(Lease(Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.alice)).ok());
  grpc::Status refused = Lease(Statement(consensus::RebuildStatementKind::kLease, drv.out, alice_second_));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("alice-builder-1"));
  EXPECT_TRUE(Lease(Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.carol)).ok());

  // A failure report ends alice's lease: the second builder may take it.
  v1::ReportRebuildResponse reported;
  ASSERT_TRUE(rebuilds_
                  ->ReportRebuild(Context().get(),
                                  Statement(consensus::RebuildStatementKind::kFailed, drv.out, federation_.alice,
                                            "builder for '/nix/store/x.drv' failed with exit code 1"),
                                  &reported)
                  .ok());
  EXPECT_TRUE(Lease(Statement(consensus::RebuildStatementKind::kLease, drv.out, alice_second_)).ok());
  const std::vector<RebuildResult> results = node_->rebuild_book()->RecentResults();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].built);
  EXPECT_THAT(results[0].detail, HasSubstr("exit code 1"));
}

TEST_F(RebuildsServiceTest, RefusesStatementsThatCannotCount) {
  const TestDrv drv = MakeTestDrv("refused");
  Submit(drv.out, federation_.bob, drv.path.full());

  // No derivation held yet: nothing to build from.
  grpc::Status no_drv = Lease(Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.alice));
  EXPECT_EQ(no_drv.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(no_drv.error_message(), HasSubstr("no derivation"));

  // A key outside the policy.
  grpc::Status outsider = Lease(Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.outsider));
  EXPECT_EQ(outsider.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(outsider.error_message(), HasSubstr("outsider-1"));

  // A signature over other fields.
  v1::RebuildStatement forged = Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.alice);
  forged.set_time_unix(forged.time_unix() + 1);
  EXPECT_EQ(Lease(forged).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // A statement from another time.
  now_ += absl::Hours(1);
  v1::RebuildStatement stale = Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.alice);
  now_ -= absl::Hours(1);
  grpc::Status skewed = Lease(stale);
  EXPECT_EQ(skewed.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(skewed.error_message(), HasSubstr("clock"));

  // The wrong kind for the call, and an unknown kind.
  v1::ReportRebuildResponse reported;
  EXPECT_EQ(rebuilds_
                ->ReportRebuild(Context().get(),
                                Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.alice),
                                &reported)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::RebuildStatement unknown_kind = Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.alice);
  unknown_kind.set_kind("steal");
  EXPECT_EQ(Lease(unknown_kind).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A CONFIRMED path is not leased.
  Submit(drv.out, federation_.carol);
  grpc::Status confirmed = Lease(Statement(consensus::RebuildStatementKind::kLease, drv.out, federation_.alice));
  EXPECT_EQ(confirmed.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(confirmed.error_message(), HasSubstr("CONFIRMED"));
}

}  // namespace
}  // namespace attest::server
