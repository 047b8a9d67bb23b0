// server/grpc_services PolicyService over loopback on a started node (SQLite): a signed update submitted
// with SubmitPolicy changes the node's answers at once, bad updates change nothing, and a restart with
// the old policy file keeps the adopted policy.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/clock.h"
#include "consensus/log_entry.h"
#include "consensus/policy_update.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/node.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::ApprovedLink;
using ::attest::testing::Federation;
using ::attest::testing::Signed;
using ::attest::testing::SuccessorToml;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::attest::testing::WriteNodeDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

v1::PolicyLink ToWire(const consensus::PolicyLink& link) {
  v1::PolicyLink wire;
  wire.set_toml(link.toml);
  for (const consensus::Signature& approval : link.approvals) wire.add_approvals(approval.ToString());
  return wire;
}

class PolicyServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteNodeDir(dir_, federation_);
    StartNode();
  }
  void TearDown() override { StopNode(); }

  void StartNode() {
    auto config = LoadNodeConfig(dir_.File("node.toml"));
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    // Over loopback, as a maintainer's `attest policy submit` reaches it.
    auto channel = grpc::CreateChannel(node_->grpc_address(), grpc::InsecureChannelCredentials());
    attestations_ = v1::Attestations::NewStub(channel);
    policy_ = v1::Policy::NewStub(channel);
  }
  void StopNode() {
    if (node_ == nullptr) return;
    node_->Shutdown(absl::Now() + absl::Seconds(10));
    node_.reset();
  }

  v1::PathStatus StatusOf(const consensus::StorePath& path) {
    v1::StatusRequest request;
    request.add_store_paths(path.full());
    v1::StatusResponse response;
    grpc::Status status = attestations_->Status(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.statuses_size() == 1 ? response.statuses(0) : v1::PathStatus{};
  }
  void Submit(const std::vector<v1::Attestation>& items) {
    v1::SubmitRequest request;
    for (const v1::Attestation& item : items) *request.add_attestations() = item;
    v1::SubmitResponse response;
    grpc::Status status = attestations_->Submit(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  v1::PolicyInfo GetPolicy() {
    v1::PolicyInfo info;
    grpc::Status status = policy_->GetPolicy(Context().get(), v1::GetPolicyRequest(), &info);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return info;
  }
  grpc::Status SubmitPolicy(const v1::PolicyLink& link, v1::SubmitPolicyResponse* response) {
    return policy_->SubmitPolicy(Context().get(), link, response);
  }
  // The file's policy with bob's key revoked, approved by the maintainer.
  consensus::PolicyLink RevokeBob() {
    return ApprovedLink(SuccessorToml(federation_.MakePolicy(), federation_.PolicyTomlRevokingBob()),
                        {&federation_.maintainer});
  }

  TempDir dir_;
  Federation federation_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::Policy::Stub> policy_;
};

TEST_F(PolicyServiceTest, RevokingABuilderKeyMakesAConfirmedPathPendingAtOnce) {
  const auto claim = TestClaim("hello");
  Submit({Signed(claim, federation_.alice), Signed(claim, federation_.bob)});
  const v1::PathStatus before = StatusOf(claim.path);
  ASSERT_EQ(before.verdict(), v1::CONFIRMED);
  const v1::PolicyInfo first = GetPolicy();
  EXPECT_EQ(first.version(), 1);
  EXPECT_EQ(before.policy_hash(), first.hash());
  EXPECT_EQ(before.policy_version(), 1);
  EXPECT_EQ(before.rule(), "default");
  EXPECT_EQ(before.quorum(), 2);
  EXPECT_FALSE(before.quorum_text().empty());

  const consensus::PolicyLink link = RevokeBob();
  v1::SubmitPolicyResponse adopted;
  grpc::Status submitted = SubmitPolicy(ToWire(link), &adopted);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();
  EXPECT_EQ(adopted.version(), 2);
  EXPECT_EQ(adopted.previous_hash(), first.hash());
  EXPECT_THAT(adopted.counted_approvals(), ElementsAre("maintainer-1"));

  // No restart: the next answer is computed under the new policy.
  const v1::PathStatus after = StatusOf(claim.path);
  EXPECT_EQ(after.verdict(), v1::PENDING);
  EXPECT_EQ(after.policy_hash(), adopted.hash());
  EXPECT_EQ(after.policy_version(), 2);
  EXPECT_FALSE(after.quorum_explanation().empty()) << "says what quorum still needs";

  const v1::PolicyInfo second = GetPolicy();
  EXPECT_EQ(second.hash(), adopted.hash());
  EXPECT_EQ(second.version(), 2);
  EXPECT_EQ(second.parent(), first.hash());
  EXPECT_EQ(second.update_threshold(), 1);
  EXPECT_EQ(second.toml(), link.toml);
  ASSERT_EQ(second.approvals_size(), 1);
  EXPECT_EQ(second.approvals(0), link.approvals[0].ToString());
  EXPECT_THAT(second.counted_approvals(), ElementsAre("maintainer-1"));
  EXPECT_GT(second.adopted_unix(), 0);
  EXPECT_EQ(second.adopted_from(), "");

  // The chain since the first policy is the one link; since an unknown policy there is none.
  v1::GetPolicyChainRequest since;
  since.set_since(first.hash());
  v1::GetPolicyChainResponse chain;
  ASSERT_TRUE(policy_->GetPolicyChain(Context().get(), since, &chain).ok());
  ASSERT_EQ(chain.links_size(), 1);
  EXPECT_EQ(chain.links(0).toml(), link.toml);
  EXPECT_EQ(chain.links(0).received_unix(), second.adopted_unix());
  since.set_since(federation_.MakePolicy(3).Hash());
  grpc::Status unrelated = policy_->GetPolicyChain(Context().get(), since, &chain);
  EXPECT_EQ(unrelated.error_code(), grpc::StatusCode::NOT_FOUND) << unrelated.error_message();

  // The node's own log holds the update.
  bool logged = false;
  auto head = node_->store()->GetLogHead();
  ASSERT_TRUE(head.ok());
  auto entries = node_->store()->LogEntries(0, head->size);
  ASSERT_TRUE(entries.ok());
  for (const std::string& bytes : *entries) {
    auto entry = consensus::ParseLogEntry(bytes);
    if (entry.ok() && entry->kind == consensus::LogEntryKind::kPolicy) logged = true;
  }
  EXPECT_TRUE(logged);
}

TEST_F(PolicyServiceTest, RefusedUpdatesGetTheirCodeAndChangeNothing) {
  const auto claim = TestClaim("hello");
  Submit({Signed(claim, federation_.alice), Signed(claim, federation_.bob)});
  const std::string hash = GetPolicy().hash();
  v1::SubmitPolicyResponse response;

  v1::PolicyLink bad_approval = ToWire(RevokeBob());
  bad_approval.add_approvals("not a signature");
  grpc::Status status = SubmitPolicy(bad_approval, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("approvals[1]"));

  const consensus::SecretKey stranger = TestKey("stranger-1");
  status = SubmitPolicy(
      ToWire(ApprovedLink(SuccessorToml(federation_.MakePolicy(), federation_.PolicyTomlRevokingBob()), {&stranger})),
      &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();

  status = SubmitPolicy(ToWire(ApprovedLink(SuccessorToml(federation_.MakePolicy(3), federation_.PolicyTomlRevokingBob()),
                                            {&federation_.maintainer})),
                        &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();

  v1::PolicyLink unparsable;
  unparsable.set_toml("quorum = [");
  status = SubmitPolicy(unparsable, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();

  EXPECT_EQ(GetPolicy().hash(), hash);
  EXPECT_EQ(StatusOf(claim.path).verdict(), v1::CONFIRMED);

  // Adopted, then the same update again: ALREADY_EXISTS.
  ASSERT_TRUE(SubmitPolicy(ToWire(RevokeBob()), &response).ok());
  status = SubmitPolicy(ToWire(RevokeBob()), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
}

TEST_F(PolicyServiceTest, ANodeRestartedWithTheOldFileKeepsTheAdoptedPolicy) {
  const auto claim = TestClaim("hello");
  Submit({Signed(claim, federation_.alice), Signed(claim, federation_.bob)});
  v1::SubmitPolicyResponse adopted;
  ASSERT_TRUE(SubmitPolicy(ToWire(RevokeBob()), &adopted).ok());

  StopNode();
  StartNode();  // policy.toml is still the version 1 file
  ASSERT_NE(node_, nullptr);
  EXPECT_EQ(node_->policy().current()->Hash(), adopted.hash());
  const v1::PolicyInfo info = GetPolicy();
  EXPECT_EQ(info.version(), 2);
  EXPECT_THAT(info.counted_approvals(), ElementsAre("maintainer-1"));
  EXPECT_EQ(StatusOf(claim.path).verdict(), v1::PENDING);
}

}  // namespace
}  // namespace attest::server
