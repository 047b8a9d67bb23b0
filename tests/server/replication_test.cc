// Replication between real nodes in this process, on loopback ports: node B follows node A's log
// (server/replication.h). Multi-process federations (3-5 attestd, SIGKILL, partitions) are in
// tests/e2e/federation_e2e_test.cc.
#include "server/replication.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "consensus/checkpoint.h"
#include "consensus/dispute.h"
#include "consensus/log_entry.h"
#include "consensus/resolution.h"
#include "consensus/signed_note.h"
#include "consensus/tlog_tiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/http_server.h"
#include "server/node.h"
#include "server/restore.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "tests/server/http_test_client.h"
#include "tests/server/server_test_util.h"
#include "tests/support/checkpoint_forgery.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::attest::testing::WriteFileOrDie;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Generous: the machine is shared; replication normally takes well under a second here.
constexpr absl::Duration kDeadline = absl::Seconds(60);

// Polls `done` every 20 ms until it holds or the deadline passes.
template <typename Predicate>
bool Eventually(Predicate done) {
  const absl::Time deadline = absl::Now() + kDeadline;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

// status 0 when the request failed.
::attest::testing::HttpAnswer Get(int port, std::string_view target) {
  return ::attest::testing::HttpGet(port, target).value_or(::attest::testing::HttpAnswer{});
}

struct NodeDir {
  std::unique_ptr<TempDir> dir = std::make_unique<TempDir>();
  std::string config_path;
};

class ReplicationTest : public ::testing::Test {
 protected:
  // A node directory with its own key `name`, following `peers` (started nodes).
  NodeDir MakeDir(const std::string& name, const std::vector<const Node*>& peers, const std::string& extra = "",
                  int quorum = 2) {
    NodeDir dir;
    WriteFileOrDie(dir.dir->File("policy.toml"), federation_.PolicyToml(quorum));
    WriteFileOrDie(dir.dir->File("node.sec"), TestKey(name).ExportText() + "\n");
    std::string text = absl::StrCat(
        "[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\ndatabase = \"attest.db\"\nkey = \"node.sec\"\n"
        "policy = \"policy.toml\"\n[log]\ncheckpoint_interval = \"50ms\"\n[federation]\npoll_interval = \"50ms\"\n"
        "max_backoff = \"200ms\"\nbatch_entries = 256\n",
        extra);
    for (const Node* peer : peers) {
      absl::StrAppend(&text, "[[peer]]\ngrpc = \"", peer->grpc_address(), "\"\nhttp = \"", peer->http_address(),
                      "\"\nkey = \"", peer->public_key().ToString(), "\"\n");
    }
    dir.config_path = dir.dir->File("node.toml");
    WriteFileOrDie(dir.config_path, text);
    return dir;
  }

  std::unique_ptr<Node> StartNode(const NodeDir& dir, NodeOptions options = {}) {
    auto config = LoadNodeConfig(dir.config_path);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    auto node = Node::Open(*config, std::move(options));
    EXPECT_TRUE(node.ok()) << node.status();
    if (!node.ok()) return nullptr;
    absl::Status started = (*node)->Start();
    EXPECT_TRUE(started.ok()) << started;
    return *std::move(node);
  }

  // Node A, and node B following it. Members are destroyed follower first.
  struct FollowedPair {
    NodeDir a_dir;
    std::unique_ptr<Node> a;
    NodeDir b_dir;
    std::unique_ptr<Node> b;
  };
  FollowedPair StartFollowedPair() {
    FollowedPair pair;
    pair.a_dir = MakeDir("node-a", {});
    pair.a = StartNode(pair.a_dir);
    if (pair.a == nullptr) return pair;
    pair.b_dir = MakeDir("node-b", {pair.a.get()});
    pair.b = StartNode(pair.b_dir);
    return pair;
  }

  // Writes `attestations` into the database of `dir` directly and appends them to its log, as a peer
  // that logged them would hold them (the store itself verifies no signature).
  static void LogDirectly(const NodeDir& dir, const std::vector<consensus::Attestation>& attestations) {
    auto store = storage::SqliteAttestationStore::Open(dir.dir->File("attest.db"), storage::SqliteOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    storage::WriteBatch write;
    for (const consensus::Attestation& attestation : attestations) {
      write.attestations.push_back(
          storage::StoredAttestation{.attestation = attestation, .received_unix = 1, .observed_key = {}, .origin = {}});
    }
    write.log_append = storage::LogAppend::kAll;
    ASSERT_TRUE((*store)->Write(write).ok());
  }

  static void Submit(Node& node, const std::vector<v1::Attestation>& items) {
    auto stub = v1::Attestations::NewStub(node.InProcessChannel());
    v1::SubmitRequest request;
    for (const auto& item : items) *request.add_attestations() = item;
    v1::SubmitResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->Submit(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const auto& result : response.results()) {
      EXPECT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.message();
    }
  }

  static v1::PathStatus StatusOf(Node& node, const consensus::StorePath& path) {
    auto stub = v1::Attestations::NewStub(node.InProcessChannel());
    v1::StatusRequest request;
    request.add_store_paths(path.full());
    v1::StatusResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->Status(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.statuses_size() == 1 ? response.statuses(0) : v1::PathStatus{};
  }

  static v1::GetFederationStatusResponse FederationStatus(Node& node) {
    auto stub = v1::Federation::NewStub(node.InProcessChannel());
    v1::GetFederationStatusResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->GetFederationStatus(&context, v1::GetFederationStatusRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  static uint64_t Cursor(Node& node) {
    v1::GetFederationStatusResponse status = FederationStatus(node);
    return status.peers_size() == 1 ? status.peers(0).cursor() : 0;
  }

  static uint64_t LogSize(Node& node) { return node.store()->GetLogHead()->size; }

  Federation federation_;
};

TEST_F(ReplicationTest, FollowerStoresThePeersAttestationsWithTheirOriginAndReachesTheSameVerdict) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  const auto agreed = TestClaim("agreed");
  const auto contested = TestClaim("contested");
  Submit(*a, {Signed(agreed, federation_.alice), Signed(agreed, federation_.bob),
              Signed(contested, federation_.alice), Signed(TestClaim("contested", "other bytes"), federation_.carol)});
  ASSERT_EQ(StatusOf(*a, agreed.path).verdict(), v1::CONFIRMED);
  ASSERT_EQ(StatusOf(*a, contested.path).verdict(), v1::DISPUTED);

  ASSERT_TRUE(Eventually([&] { return StatusOf(*b, contested.path).verdict() == v1::DISPUTED; }));
  EXPECT_EQ(StatusOf(*b, agreed.path).verdict(), v1::CONFIRMED);

  // Stored with the peer as origin, and not appended to B's own log: B's log holds only the dispute
  // record B made itself.
  auto stored = b->store()->AttestationsFor(std::vector<consensus::StorePath>{agreed.path});
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ((*stored)[0].size(), 2u);
  EXPECT_EQ((*stored)[0][0].origin, "node-a");
  EXPECT_EQ((*stored)[0][1].origin, "node-a");
  ASSERT_TRUE(Eventually([&] { return LogSize(*b) == 1; }));
  auto entries = b->store()->LogEntries(0, 1);
  ASSERT_TRUE(entries.ok());
  auto entry = consensus::ParseLogEntry((*entries)[0]);
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(entry->kind, consensus::LogEntryKind::kDispute);
  auto disputes = b->store()->ListDisputes({});
  ASSERT_TRUE(disputes.ok());
  ASSERT_EQ(disputes->size(), 1u);
  EXPECT_THAT((*disputes)[0].signed_record, HasSubstr("— node-b "));  // B's own record

  v1::GetFederationStatusResponse status = FederationStatus(*b);
  EXPECT_EQ(status.node(), "node-b");
  ASSERT_EQ(status.peers_size(), 1);
  EXPECT_EQ(status.peers(0).name(), "node-a");
  EXPECT_EQ(status.peers(0).cursor(), LogSize(*a));
  EXPECT_EQ(status.peers(0).rejected_entries(), 0u);
  EXPECT_TRUE(Eventually([&] { return FederationStatus(*b).peers(0).state() == v1::PeerStatus::FOLLOWING; }));
}

TEST_F(ReplicationTest, AMaintainersStatementReachesTheFollowerAndExcludesTheBuilderThere) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  const auto good = TestClaim("contested", "good");
  const auto evil = TestClaim("contested", "evil");
  Submit(*a, {Signed(good, federation_.alice), Signed(good, federation_.bob), Signed(evil, federation_.carol)});
  ASSERT_TRUE(Eventually([&] { return StatusOf(*b, good.path).verdict() == v1::DISPUTED; }));

  std::vector<std::string> fingerprints = {good.Fingerprint(), evil.Fingerprint()};
  std::sort(fingerprints.begin(), fingerprints.end());
  const consensus::Resolution statement{.dispute_id = consensus::DisputeId(good.path),
                                        .subject = good.path,
                                        .outcome = consensus::ResolutionOutcome::kMalicious,
                                        .fingerprints = fingerprints,
                                        .builders = {"carol-builder-1"},
                                        .time_unix = absl::ToUnixSeconds(absl::Now()),
                                        .note = "served a patched binary"};
  auto note = consensus::SignResolution(statement, federation_.maintainer);
  ASSERT_TRUE(note.ok()) << note.status();
  v1::ResolveDisputeRequest request;
  request.set_signed_statement(note->Serialize());
  v1::ResolveDisputeResponse response;
  grpc::ClientContext context;
  grpc::Status status = v1::Disputes::NewStub(a->InProcessChannel())->ResolveDispute(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(StatusOf(*a, good.path).verdict(), v1::CONFIRMED);

  // B verifies the statement from A's log, stores it with A as origin (not in its own log) and stops
  // counting carol too.
  ASSERT_TRUE(Eventually([&] { return StatusOf(*b, good.path).verdict() == v1::CONFIRMED; }));
  auto held = b->store()->ResolutionsFor(statement.dispute_id);
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_EQ(held->size(), 1u);
  EXPECT_EQ((*held)[0].origin, "node-a");
  EXPECT_EQ((*held)[0].signed_note, note->Serialize());
  auto dispute = b->store()->GetDispute(statement.dispute_id);
  ASSERT_TRUE(dispute.ok() && dispute->has_value());
  EXPECT_EQ((*dispute)->state, consensus::DisputeState::kMalicious);
  for (uint64_t i = 0; i < LogSize(*b); ++i) {
    auto entries = b->store()->LogEntries(i, 1);
    ASSERT_TRUE(entries.ok());
    auto entry = consensus::ParseLogEntry((*entries)[0]);
    ASSERT_TRUE(entry.ok());
    EXPECT_NE(entry->kind, consensus::LogEntryKind::kResolution) << "replicated statements are not logged again";
  }
}

TEST_F(ReplicationTest, CosignedCheckpointVerifiesWithBothKeys) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Submit(*a, {Signed(TestClaim("p"), federation_.alice)});
  ASSERT_TRUE(Eventually([&] { return Cursor(*b) == 1; }));

  ::attest::testing::HttpAnswer answer = Get(b->http_port(), "/federation/checkpoint/node-a");
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto checkpoint = consensus::VerifyCheckpoint(answer.body, a->public_key());
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_GE(checkpoint->size, 1u);
  auto note = consensus::SignedNote::Parse(answer.body);
  ASSERT_TRUE(note.ok());
  auto cosigned = consensus::VerifyCosignature(*note, b->public_key());
  EXPECT_TRUE(cosigned.ok()) << cosigned.status();
  EXPECT_EQ(FederationStatus(*b).peers(0).cosigned_checkpoint(), answer.body);

  EXPECT_EQ(Get(b->http_port(), "/federation/checkpoint/node-z").status, 404);
  EXPECT_EQ(Get(b->http_port(), "/federation/fork/node-a").status, 404);
}

TEST_F(ReplicationTest, MetricsShowEachPeersProgress) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Submit(*a, {Signed(TestClaim("p"), federation_.alice), Signed(TestClaim("q"), federation_.bob)});
  ASSERT_TRUE(Eventually([&] { return Cursor(*b) == 2; }));
  ASSERT_TRUE(Eventually([&] { return FederationStatus(*b).peers(0).state() == v1::PeerStatus::FOLLOWING; }));

  ::attest::testing::HttpAnswer answer = Get(b->http_port(), "/metrics");
  ASSERT_EQ(answer.status, 200) << answer.body;
  const v1::PeerStatus peer = FederationStatus(*b).peers(0);
  EXPECT_THAT(answer.body, HasSubstr("attest_peer_cursor_entries{peer=\"node-a\"} 2\n"));
  EXPECT_THAT(answer.body, HasSubstr("attest_peer_lag_entries{peer=\"node-a\"} 0\n"));
  EXPECT_THAT(answer.body, HasSubstr("attest_peer_checkpoint_size_entries{peer=\"node-a\"} 2\n"));
  EXPECT_THAT(answer.body, HasSubstr("attest_peer_rejected_entries{peer=\"node-a\"} 0\n"));
  EXPECT_THAT(answer.body, HasSubstr("attest_peer_state{peer=\"node-a\",state=\"following\"} 1\n"));
  EXPECT_THAT(answer.body, HasSubstr("attest_peer_state{peer=\"node-a\",state=\"forked\"} 0\n"));
  EXPECT_THAT(answer.body, HasSubstr("attest_peer_last_success_timestamp_seconds{peer=\"node-a\"} "));
  EXPECT_THAT(answer.body, ::testing::Not(HasSubstr("attest_peer_last_success_timestamp_seconds{peer=\"node-a\"} 0\n")));
  EXPECT_THAT(answer.body, HasSubstr("attest_replicated_attestations_total{peer=\"node-a\",result=\"stored\"} 2\n"));
  EXPECT_THAT(answer.body, HasSubstr("attest_verify_seconds_count{source=\"replication\"} "));
  // A node without peers has no peer metrics.
  EXPECT_THAT(Get(a->http_port(), "/metrics").body, ::testing::Not(HasSubstr("attest_peer_")));
}

TEST_F(ReplicationTest, ManyBatchesAndARestartResumeFromTheCursor) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  // 700 entries: batches of 256 (two full tiles) and a partial tile; then more while B is down.
  std::vector<v1::Attestation> batch;
  for (int i = 0; i < 700; ++i) batch.push_back(Signed(TestClaim(absl::StrCat("many-", i)), federation_.alice));
  Submit(*a, batch);
  ASSERT_TRUE(Eventually([&] { return Cursor(*b) == 700; }));
  EXPECT_EQ(b->store()->Stats()->attestations, 700);

  b->Shutdown(absl::Now() + absl::Seconds(5));
  b.reset();
  batch.clear();
  for (int i = 0; i < 100; ++i) batch.push_back(Signed(TestClaim(absl::StrCat("many-", i)), federation_.bob));
  Submit(*a, batch);

  b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  EXPECT_GE(Cursor(*b), 700u);  // resumed from the stored cursor, never below it
  ASSERT_TRUE(Eventually([&] { return Cursor(*b) == 800; }));
  EXPECT_EQ(b->store()->Stats()->attestations, 800);
  EXPECT_EQ(StatusOf(*b, TestClaim("many-5").path).verdict(), v1::CONFIRMED);
  EXPECT_EQ(FederationStatus(*b).peers(0).rejected_entries(), 0u);
}

TEST_F(ReplicationTest, ForgedAttestationInAValidlySignedLogIsRefusedAndReported) {
  NodeDir a_dir = MakeDir("node-a", {});
  consensus::Attestation good = consensus::SignAttestation(TestClaim("good"), federation_.alice);
  consensus::Attestation forged = consensus::SignAttestation(TestClaim("forged"), federation_.bob);
  forged.signature.bytes[7] ^= 0x20;
  ASSERT_NO_FATAL_FAILURE(LogDirectly(a_dir, {forged, good}));
  std::unique_ptr<Node> a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  NodeDir b_dir = MakeDir("node-b", {a.get()});
  std::unique_ptr<Node> b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);

  ASSERT_TRUE(Eventually([&] { return Cursor(*b) == 2; }));
  EXPECT_EQ(StatusOf(*b, TestClaim("good").path).verdict(), v1::PENDING);
  EXPECT_EQ(StatusOf(*b, TestClaim("forged").path).verdict(), v1::UNKNOWN);
  v1::GetFederationStatusResponse status = FederationStatus(*b);
  EXPECT_EQ(status.peers(0).rejected_entries(), 1u);
  ASSERT_EQ(status.recent_rejections_size(), 1);
  EXPECT_EQ(status.recent_rejections(0).peer(), "node-a");
  EXPECT_EQ(status.recent_rejections(0).index(), 0u);
  EXPECT_THAT(status.recent_rejections(0).reason(), HasSubstr("does not verify"));
  EXPECT_THAT(status.recent_rejections(0).entry(), HasSubstr("forged"));
}

// Issue: a follower whose own dispute record for a peer's entries did not fit in one log entry failed
// every round; its cursor never moved and later, unrelated entries were never applied.
TEST_F(ReplicationTest, ADisputeOverAPathWithManyReferencesDoesNotStallTheFollower) {
  NodeDir a_dir = MakeDir("node-a", {});
  const consensus::PathInfo agreed = ::attest::testing::TestClaimWithReferences("many-refs", "bytes A", 700);
  const consensus::PathInfo other = ::attest::testing::TestClaimWithReferences("many-refs", "bytes B", 700);
  ASSERT_NO_FATAL_FAILURE(LogDirectly(a_dir, {consensus::SignAttestation(agreed, federation_.alice),
                                               consensus::SignAttestation(agreed, federation_.bob),
                                               consensus::SignAttestation(other, federation_.carol),
                                               consensus::SignAttestation(TestClaim("later"), federation_.alice)}));
  std::unique_ptr<Node> a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  NodeDir b_dir = MakeDir("node-b", {a.get()});
  std::unique_ptr<Node> b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);

  ASSERT_TRUE(Eventually([&] { return Cursor(*b) == 4; })) << "cursor " << Cursor(*b);
  EXPECT_EQ(StatusOf(*b, agreed.path).verdict(), v1::DISPUTED);
  EXPECT_EQ(StatusOf(*b, TestClaim("later").path).verdict(), v1::PENDING);
  EXPECT_EQ(FederationStatus(*b).peers(0).rejected_entries(), 0u);
  // B's own record of the dispute, logged in parts.
  auto disputes = b->store()->ListDisputes({});
  ASSERT_TRUE(disputes.ok());
  ASSERT_EQ(disputes->size(), 1u);
  EXPECT_GT((*disputes)[0].signed_record.size(), consensus::kMaxLogEntryBytes);
  ASSERT_TRUE(Eventually([&] { return LogSize(*b) >= 2; }));
  auto entries = b->store()->LogEntries(0, LogSize(*b));
  ASSERT_TRUE(entries.ok()) << entries.status();
  std::vector<consensus::DisputePart> parts;
  for (const std::string& entry : *entries) {
    auto parsed = consensus::ParseLogEntry(entry);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->kind, consensus::LogEntryKind::kDisputePart);
    parts.push_back(*parsed->part);
  }
  EXPECT_EQ(consensus::AssembleDisputeParts(parts).value_or(""), (*disputes)[0].signed_record);
}

TEST_F(ReplicationTest, PeerWithAnotherPolicyIsNotFollowed) {
  NodeDir a_dir = MakeDir("node-a", {}, "", /*quorum=*/3);
  std::unique_ptr<Node> a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  Submit(*a, {Signed(TestClaim("p"), federation_.alice)});
  NodeDir b_dir = MakeDir("node-b", {a.get()});
  std::unique_ptr<Node> b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(Eventually([&] { return FederationStatus(*b).peers(0).state() == v1::PeerStatus::POLICY_MISMATCH; }));
  v1::PeerStatus peer = FederationStatus(*b).peers(0);
  EXPECT_THAT(peer.last_error(), HasSubstr(absl::StrCat("the peer's policy ", a->policy().current()->Hash(),
                                                       " is not in this node's policy chain")));
  EXPECT_EQ(peer.peer_policy_hash(), a->policy().current()->Hash());
  EXPECT_EQ(peer.cursor(), 0u);
  EXPECT_EQ(b->store()->Stats()->attestations, 0);
  // Nothing of the unrelated policy was adopted.
  EXPECT_NE(b->policy().current()->Hash(), a->policy().current()->Hash());
  EXPECT_TRUE(b->store()->PolicyChain()->empty());
}

TEST_F(ReplicationTest, FollowerAdoptsTheLeadersUpdateThroughItsChainAndKeepsTheOriginsTimes) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const auto claim = TestClaim("hello");
  Submit(*a, {Signed(claim, federation_.alice), Signed(claim, federation_.bob)});
  ASSERT_TRUE(Eventually([&] { return StatusOf(*b, claim.path).verdict() == v1::CONFIRMED; }));

  // A replicated attestation keeps the time the origin received it.
  auto on_a = a->store()->AttestationsFor(std::vector<consensus::StorePath>{claim.path});
  auto on_b = b->store()->AttestationsFor(std::vector<consensus::StorePath>{claim.path});
  ASSERT_TRUE(on_a.ok() && on_b.ok());
  ASSERT_EQ((*on_a)[0].size(), 2u);
  ASSERT_EQ((*on_b)[0].size(), 2u);
  for (const storage::StoredAttestation& replicated : (*on_b)[0]) {
    const auto original = std::find_if((*on_a)[0].begin(), (*on_a)[0].end(), [&](const auto& s) {
      return s.attestation.key_name() == replicated.attestation.key_name();
    });
    ASSERT_NE(original, (*on_a)[0].end());
    EXPECT_EQ(replicated.received_unix, original->received_unix);
  }

  // A maintainer revokes bob's key on A only.
  const consensus::Policy file = federation_.MakePolicy();
  const consensus::PolicyLink link = ::attest::testing::ApprovedLink(
      ::attest::testing::SuccessorToml(file, federation_.PolicyTomlRevokingBob()), {&federation_.maintainer});
  v1::PolicyLink wire;
  wire.set_toml(link.toml);
  for (const consensus::Signature& approval : link.approvals) wire.add_approvals(approval.ToString());
  v1::SubmitPolicyResponse adopted;
  grpc::ClientContext context;
  grpc::Status submitted = v1::Policy::NewStub(a->InProcessChannel())->SubmitPolicy(&context, wire, &adopted);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();
  EXPECT_EQ(StatusOf(*a, claim.path).verdict(), v1::PENDING);

  // B sees A ahead, fetches the chain since its own policy, adopts it and follows on.
  ASSERT_TRUE(Eventually([&] { return b->policy().current()->Hash() == adopted.hash(); }));
  EXPECT_EQ(StatusOf(*b, claim.path).verdict(), v1::PENDING);
  EXPECT_EQ(StatusOf(*b, claim.path).policy_version(), 2);
  auto chain_a = a->store()->PolicyChain();
  auto chain_b = b->store()->PolicyChain();
  ASSERT_TRUE(chain_a.ok() && chain_b.ok());
  ASSERT_EQ(chain_b->size(), 1u);
  EXPECT_EQ((*chain_b)[0].origin, "node-a");
  EXPECT_EQ((*chain_b)[0].received_unix, (*chain_a)[0].received_unix);
  EXPECT_EQ((*chain_b)[0].toml, link.toml);
  ASSERT_TRUE(Eventually([&] { return FederationStatus(*b).peers(0).state() == v1::PeerStatus::FOLLOWING; }));
  // Replication goes on under the new policy.
  const auto later = TestClaim("later");
  Submit(*a, {Signed(later, federation_.alice), Signed(later, federation_.carol)});
  EXPECT_TRUE(Eventually([&] { return StatusOf(*b, later.path).verdict() == v1::CONFIRMED; }));
}

TEST_F(ReplicationTest, ForkingPeerIsCaughtWithBothCheckpointsAndNoLongerFollowed) {
  NodeDir a_dir = MakeDir("node-a", {});
  std::unique_ptr<Node> a =
      StartNode(a_dir, NodeOptions{.serve_checkpoint = ::attest::testing::ForgeEveryOtherCheckpoint});
  ASSERT_NE(a, nullptr);
  Submit(*a, {Signed(TestClaim("p"), federation_.alice)});
  NodeDir b_dir = MakeDir("node-b", {a.get()});
  std::unique_ptr<Node> b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);

  ASSERT_TRUE(Eventually([&] { return FederationStatus(*b).peers(0).state() == v1::PeerStatus::FORKED; }));
  v1::GetFederationStatusResponse status = FederationStatus(*b);
  ASSERT_EQ(status.forks_size(), 1);
  const v1::ForkEvidence& fork = status.forks(0);
  EXPECT_EQ(fork.peer(), "node-a");
  auto first = consensus::VerifyCheckpoint(fork.first_checkpoint(), a->public_key());
  auto second = consensus::VerifyCheckpoint(fork.second_checkpoint(), a->public_key());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(*first, *second);
  ::attest::testing::HttpAnswer served = Get(b->http_port(), "/federation/fork/node-a");
  EXPECT_EQ(served.status, 200);
  EXPECT_THAT(served.body, HasSubstr(fork.first_checkpoint()));
  EXPECT_THAT(served.body, HasSubstr(fork.second_checkpoint()));

  // Still not followed after a restart: the evidence is stored.
  const uint64_t cursor = status.peers(0).cursor();
  b->Shutdown(absl::Now() + absl::Seconds(5));
  b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  Submit(*a, {Signed(TestClaim("q"), federation_.alice)});
  status = FederationStatus(*b);
  EXPECT_EQ(status.peers(0).state(), v1::PeerStatus::FORKED);
  EXPECT_EQ(status.peers(0).cursor(), cursor);
}

// The Policy service of a peer: all a follower asks before the checkpoint (its hash, and the chain
// since the follower's policy when the hashes differ).
class FakePolicyService final : public v1::Policy::Service {
 public:
  explicit FakePolicyService(std::string hash, v1::GetPolicyChainResponse chain = {})
      : hash_(std::move(hash)), chain_(std::move(chain)) {}
  grpc::Status GetPolicy(grpc::ServerContext*, const v1::GetPolicyRequest*, v1::PolicyInfo* info) override {
    info->set_hash(hash_);
    return grpc::Status::OK;
  }
  grpc::Status GetPolicyChain(grpc::ServerContext*, const v1::GetPolicyChainRequest*,
                              v1::GetPolicyChainResponse* response) override {
    *response = chain_;
    return grpc::Status::OK;
  }

 private:
  const std::string hash_;
  const v1::GetPolicyChainResponse chain_;
};

// A peer whose chain holds a valid first link and a second one its maintainers did not sign: the
// follower adopts neither.
TEST_F(ReplicationTest, APeerWhoseChainBreaksIsRefusedAndNothingOfItIsAdopted) {
  const consensus::Policy file = federation_.MakePolicy();
  const std::string second_toml = ::attest::testing::SuccessorToml(file, federation_.PolicyTomlRevokingBob());
  const consensus::PolicyLink second =
      ::attest::testing::ApprovedLink(second_toml, {&federation_.maintainer});
  absl::StatusOr<consensus::Policy> second_policy = consensus::Policy::ParseToml(second_toml, "second.toml");
  ASSERT_TRUE(second_policy.ok()) << second_policy.status();
  const consensus::SecretKey stranger = TestKey("stranger-1");
  const std::string third_toml =
      ::attest::testing::SuccessorToml(*second_policy, federation_.PolicyTomlRevokingBob(/*quorum=*/3));
  const consensus::PolicyLink third = ::attest::testing::ApprovedLink(third_toml, {&stranger});
  absl::StatusOr<consensus::Policy> third_policy = consensus::Policy::ParseToml(third_toml, "third.toml");
  ASSERT_TRUE(third_policy.ok()) << third_policy.status();

  v1::GetPolicyChainResponse chain;
  for (const consensus::PolicyLink* link : {&second, &third}) {
    v1::PolicyLink* out = chain.add_links();
    out->set_toml(link->toml);
    for (const consensus::Signature& approval : link->approvals) out->add_approvals(approval.ToString());
    out->set_received_unix(::attest::testing::kTestNow);
  }
  FakePolicyService policy_service(third_policy->Hash(), chain);
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(&policy_service);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  ASSERT_NE(grpc_server, nullptr);

  const consensus::SecretKey peer_key = TestKey("node-liar");
  NodeDir b_dir = MakeDir("node-b", {}, absl::StrCat("[[peer]]\ngrpc = \"127.0.0.1:", grpc_port,
                                                      "\"\nhttp = \"127.0.0.1:9\"\nkey = \"",
                                                      peer_key.public_key().ToString(), "\"\n"));
  std::unique_ptr<Node> b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(Eventually([&] { return FederationStatus(*b).peers(0).state() == v1::PeerStatus::POLICY_MISMATCH; }));
  const v1::PeerStatus peer = FederationStatus(*b).peers(0);
  EXPECT_THAT(peer.last_error(), HasSubstr(absl::StrCat("the peer's policy ", third_policy->Hash(),
                                                       " is not in this node's policy chain")));
  EXPECT_THAT(peer.last_error(), HasSubstr("link 2 of its chain does not verify"));
  EXPECT_EQ(b->policy().current()->Hash(), file.Hash());
  EXPECT_TRUE(b->store()->PolicyChain()->empty());
  b->Shutdown(absl::Now() + absl::Seconds(5));
  b.reset();
  grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

// A peer that signs a checkpoint of 2^40 entries and serves none of them: the follower cannot
// apply anything, and its status must still say what the peer signed (it showed PEER SIZE 0 with a
// lag of 2^40).
TEST_F(ReplicationTest, PeerSizeIsTheSizeThePeerSignedAndLagIsSizeMinusCursor) {
  const consensus::SecretKey peer_key = TestKey("node-huge");
  FakePolicyService policy_service(federation_.MakePolicy().Hash());
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(&policy_service);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  ASSERT_NE(grpc_server, nullptr);

  constexpr uint64_t kSize = uint64_t{1} << 40;
  consensus::Checkpoint checkpoint{.origin = peer_key.name(), .size = kSize, .root = {}};
  checkpoint.root.fill(7);
  absl::StatusOr<consensus::SignedNote> note = consensus::SignCheckpoint(checkpoint, peer_key);
  ASSERT_TRUE(note.ok()) << note.status();
  HttpRouter router;
  router.Exact("/log/checkpoint", [text = note->Serialize()](const HttpRequest&) {
    HttpResponse response;
    response.body = text;
    return HttpReply::Now(std::move(response));
  });
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(ListenAddress{"127.0.0.1", 0}, std::move(router));
  ASSERT_TRUE(http.ok()) << http.status();

  NodeDir b_dir = MakeDir("node-b", {}, absl::StrCat("[[peer]]\ngrpc = \"127.0.0.1:", grpc_port, "\"\nhttp = \"127.0.0.1:",
                                                      (*http)->port(), "\"\nkey = \"", peer_key.public_key().ToString(),
                                                      "\"\n"));
  std::unique_ptr<Node> b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  // A round verified the checkpoint and then failed to fetch its entries.
  ASSERT_TRUE(Eventually([&] { return !FederationStatus(*b).peers(0).last_error().empty(); }));
  const v1::PeerStatus peer = FederationStatus(*b).peers(0);
  EXPECT_EQ(peer.name(), "node-huge");
  EXPECT_EQ(peer.cursor(), 0u);
  EXPECT_EQ(peer.peer_size(), kSize);
  EXPECT_EQ(peer.lag_entries(), kSize);
  EXPECT_EQ(peer.lag_entries(), peer.peer_size() - peer.cursor());
  // /metrics says the same.
  ::attest::testing::HttpAnswer metrics = Get(b->http_port(), "/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("attest_peer_checkpoint_size_entries{peer=\"node-huge\"} 1099511627776\n"));
  b->Shutdown(absl::Now() + absl::Seconds(5));
  b.reset();
  (*http)->Stop();
  grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

TEST_F(ReplicationTest, APeerWithThisNodesOwnKeyNameIsRefusedAtOpen) {
  NodeDir a_dir = MakeDir("node-a", {});
  std::unique_ptr<Node> a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  NodeDir twin = MakeDir("node-a", {a.get()});
  auto config = LoadNodeConfig(twin.config_path);
  ASSERT_TRUE(config.ok());
  auto node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(node.status().message()), HasSubstr("this node's own key name 'node-a'"));
}

// ---- restore from peers (server/restore.h): a follower keeps the peer's log and gives it back ----

class RestoreTest : public ReplicationTest {
 protected:
  // The size of `origin`'s checkpoint that `follower` verified and cosigned (0 when none).
  static uint64_t MirroredSize(Node& follower, const std::string& origin) {
    ::attest::testing::HttpAnswer answer = Get(follower.http_port(), absl::StrCat("/federation/mirror/", origin,
                                                                                   "/checkpoint"));
    if (answer.status != 200) return 0;
    auto checkpoint = consensus::VerifyCheckpoint(answer.body, TestKey(origin).public_key());
    return checkpoint.ok() ? checkpoint->size : 0;
  }

  // Every entry of the node's log, as bytes.
  static std::vector<std::string> AllEntries(Node& node) {
    auto entries = node.store()->LogEntries(0, LogSize(node));
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.value_or(std::vector<std::string>{});
  }

  // The database is lost: its files are removed (the signed-checkpoint file beside it stays).
  static void LoseDatabase(const NodeDir& dir) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove(dir.dir->File(absl::StrCat("attest.db", suffix)).c_str());
  }

  static void ExecuteOnFile(const std::string& path, std::string_view sql) {
    auto db = storage::sqlite::Connection::Open(path, storage::sqlite::OpenMode::kReadWrite, absl::Seconds(5));
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Execute(sql, "test setup").ok());
  }

  // Runs the restore for the node in `dir`, which now names `peers` as its [[peer]]s.
  static absl::StatusOr<RestoreReport> Restore(const NodeDir& dir, const std::vector<const Node*>& peers) {
    PointAt(dir, peers);
    auto config = LoadNodeConfig(dir.config_path);
    if (!config.ok()) return config.status();
    auto loaded = LoadPolicyAndKey(*config);
    if (!loaded.ok()) return loaded.status();
    return RestoreFromPeers(*config, PolicyBook(loaded->policy), loaded->key, RestoreOptions{.timeout = absl::Seconds(20)});
  }

  // Makes `peers` the [[peer]]s of the node config in `dir` (they are the last tables of the file).
  static void PointAt(const NodeDir& dir, const std::vector<const Node*>& peers) {
    std::string text = ::attest::testing::ReadFileOrDie(dir.config_path);
    text = text.substr(0, text.find("[[peer]]"));
    for (const Node* peer : peers) {
      absl::StrAppend(&text, "[[peer]]\ngrpc = \"", peer->grpc_address(), "\"\nhttp = \"", peer->http_address(),
                      "\"\nkey = \"", peer->public_key().ToString(), "\"\n");
    }
    WriteFileOrDie(dir.config_path, text);
  }

  // A submits attestations, a dispute logged in parts and a maintainer's statement; B follows until it
  // holds A's whole log and has cosigned a checkpoint of all of it.
  void FillAndWaitForTheFollower(Node& a, Node& b) {
    const consensus::PathInfo many = ::attest::testing::TestClaimWithReferences("many-refs", "bytes A", 700);
    Submit(a, {Signed(TestClaim("agreed"), federation_.alice), Signed(TestClaim("agreed"), federation_.bob),
               Signed(good_, federation_.alice), Signed(good_, federation_.bob), Signed(evil_, federation_.carol),
               Signed(many, federation_.alice), Signed(many, federation_.bob)});
    Submit(a, {Signed(::attest::testing::TestClaimWithReferences("many-refs", "bytes B", 700), federation_.carol)});
    std::vector<std::string> fingerprints = {good_.Fingerprint(), evil_.Fingerprint()};
    std::sort(fingerprints.begin(), fingerprints.end());
    auto note = consensus::SignResolution(consensus::Resolution{.dispute_id = consensus::DisputeId(good_.path),
                                                                .subject = good_.path,
                                                                .outcome = consensus::ResolutionOutcome::kMalicious,
                                                                .fingerprints = fingerprints,
                                                                .builders = {"carol-builder-1"},
                                                                .time_unix = absl::ToUnixSeconds(absl::Now()),
                                                                .note = "served a patched binary"},
                                          federation_.maintainer);
    ASSERT_TRUE(note.ok()) << note.status();
    v1::ResolveDisputeRequest request;
    request.set_signed_statement(note->Serialize());
    v1::ResolveDisputeResponse response;
    grpc::ClientContext context;
    grpc::Status status = v1::Disputes::NewStub(a.InProcessChannel())->ResolveDispute(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_TRUE(Eventually([&] { return MirroredSize(b, "node-a") == LogSize(a) && Cursor(b) == LogSize(a); }))
        << "mirrored " << MirroredSize(b, "node-a") << " of " << LogSize(a);
  }

  const consensus::PathInfo good_ = TestClaim("contested", "good");
  const consensus::PathInfo evil_ = TestClaim("contested", "evil");
};

TEST_F(RestoreTest, ANodeThatLostItsDatabaseGetsTheSameLogBackFromItsPeerAndGoesOn) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NO_FATAL_FAILURE(FillAndWaitForTheFollower(*a, *b));
  const std::vector<std::string> entries = AllEntries(*a);
  const storage::LogHead head = *a->store()->GetLogHead();
  ASSERT_GE(entries.size(), 10u);  // 8 attestations, a dispute, its parts, a statement
  // B serves its copy in the tlog-tiles layout, any width it holds.
  ::attest::testing::HttpAnswer first = Get(b->http_port(), "/federation/mirror/node-a/tile/entries/000.p/1");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_THAT(consensus::DecodeEntryBundle(first.body).value_or(std::vector<std::string>{}), ElementsAre(entries[0]));
  EXPECT_EQ(Get(b->http_port(), "/federation/mirror/node-a/tile/entries/001").status, 404);  // not held
  EXPECT_EQ(Get(b->http_port(), "/federation/mirror/node-z/tile/entries/000.p/1").status, 404);  // not followed
  EXPECT_EQ(Get(b->http_port(), "/federation/mirror/node-a/tile/entries/0001").status, 400);
  a.reset();
  LoseDatabase(a_dir);
  // As the node refuses to start on the emptied database ...
  auto config = LoadNodeConfig(a_dir.config_path);
  ASSERT_TRUE(config.ok());
  auto refused = Node::Open(*config);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("attestd restore --from-peers"));
  refused = absl::UnknownError("closed");  // releases the database it created

  // ... the restore rebuilds its log from B's copy, byte for byte.
  auto report = Restore(a_dir, {b.get()});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->entries, entries.size());
  EXPECT_EQ(report->checkpoint_from, "node-b");
  EXPECT_EQ(report->entries_from, "node-b");
  EXPECT_THAT(report->moved_aside, HasSubstr("attest.db.before-restore-"));
  a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(AllEntries(*a), entries);
  EXPECT_EQ(a->store()->GetLogHead()->root, head.root);
  // And what it derived from them: the verdicts, the dispute and its state.
  EXPECT_EQ(StatusOf(*a, TestClaim("agreed").path).verdict(), v1::CONFIRMED);
  EXPECT_EQ(StatusOf(*a, good_.path).verdict(), v1::CONFIRMED);  // carol no longer counts
  auto dispute = a->store()->GetDispute(consensus::DisputeId(good_.path));
  ASSERT_TRUE(dispute.ok() && dispute->has_value());
  EXPECT_EQ((*dispute)->state, consensus::DisputeState::kMalicious);
  const consensus::StorePath many = ::attest::testing::TestClaimWithReferences("many-refs", "bytes A", 700).path;
  auto many_dispute = a->store()->GetDispute(consensus::DisputeId(many));  // its record was logged in parts
  ASSERT_TRUE(many_dispute.ok() && many_dispute->has_value());
  EXPECT_GT((*many_dispute)->signed_record.size(), consensus::kMaxLogEntryBytes);
  EXPECT_EQ(StatusOf(*a, many).verdict(), v1::CONFIRMED);  // carol's side no longer counts there either

  // The log goes on from there, and B (told A's new address) keeps following it without seeing a fork.
  b.reset();
  PointAt(b_dir, {a.get()});
  b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  Submit(*a, {Signed(TestClaim("after"), federation_.alice)});
  ASSERT_TRUE(Eventually([&] { return Cursor(*b) == entries.size() + 1; })) << "cursor " << Cursor(*b);
  EXPECT_EQ(FederationStatus(*b).peers(0).state(), v1::PeerStatus::FOLLOWING);
  EXPECT_THAT(*b->store()->ListForkEvidence(), ::testing::IsEmpty());
}

TEST_F(RestoreTest, ANodeThatAdoptedAnUpdateGetsItsPolicyChainBackFromItsLog) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const auto claim = TestClaim("hello");
  Submit(*a, {Signed(claim, federation_.alice), Signed(claim, federation_.bob)});
  const consensus::PolicyLink link = ::attest::testing::ApprovedLink(
      ::attest::testing::SuccessorToml(federation_.MakePolicy(), federation_.PolicyTomlRevokingBob()),
      {&federation_.maintainer});
  absl::StatusOr<PolicyBook::Adopted> adopted = a->policy().Adopt(link, "", absl::ToUnixSeconds(absl::Now()));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  Submit(*a, {Signed(TestClaim("after-the-update"), federation_.alice)});  // the log goes on after it
  ASSERT_TRUE(Eventually([&] { return MirroredSize(*b, "node-a") == LogSize(*a) && Cursor(*b) == LogSize(*a); }));
  const std::vector<std::string> entries = AllEntries(*a);

  a.reset();
  LoseDatabase(a_dir);
  auto report = Restore(a_dir, {b.get()});  // with the version 1 policy file
  ASSERT_TRUE(report.ok()) << report.status();
  a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(AllEntries(*a), entries);
  EXPECT_EQ(a->policy().current()->Hash(), adopted->policy->Hash());
  auto chain = a->store()->PolicyChain();
  ASSERT_TRUE(chain.ok());
  ASSERT_EQ(chain->size(), 1u);
  EXPECT_EQ((*chain)[0].toml, link.toml);
  EXPECT_EQ(StatusOf(*a, claim.path).verdict(), v1::PENDING);
}

TEST_F(RestoreTest, RefusalsNameTheProblemAndChangeNothing) {
  auto [a_dir, a, b_dir, b] = StartFollowedPair();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NO_FATAL_FAILURE(FillAndWaitForTheFollower(*a, *b));
  const uint64_t mirrored = LogSize(*a);

  // The database still holds the whole log: nothing to restore.
  a.reset();
  auto whole = Restore(a_dir, {b.get()});
  EXPECT_EQ(whole.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(whole.status().message(), HasSubstr("nothing to restore"));

  // A signs more while B is down: B's copy is smaller than what A signed, so it cannot give it back.
  b.reset();
  a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  Submit(*a, {Signed(TestClaim("unreplicated"), federation_.alice)});
  ASSERT_TRUE(Eventually([&] {
    auto latest = a->store()->LatestCheckpoint();
    return latest.ok() && latest->has_value() && (*latest)->size == mirrored + 1;
  }));
  a.reset();
  LoseDatabase(a_dir);
  b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  auto smaller = Restore(a_dir, {b.get()});
  EXPECT_EQ(smaller.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(smaller.status().message(), HasSubstr(absl::StrCat("this node signed a checkpoint of size ", mirrored + 1)));
  EXPECT_THAT(smaller.status().message(), HasSubstr("Restore the database from a backup"));
  EXPECT_FALSE(std::filesystem::exists(a_dir.dir->File("attest.db")));

  // Without that record (the whole disk was lost), B's copy would do, but B's entries 0 and 1 were
  // swapped (each a valid entry): they no longer hash to the root A signed, so B is named and not used.
  std::remove(a_dir.dir->File("attest.db.signed-checkpoint").c_str());
  b.reset();
  ExecuteOnFile(b_dir.dir->File("attest.db"),
                "UPDATE peer_entries SET idx = -1 WHERE idx = 0; UPDATE peer_entries SET idx = 0 WHERE idx = 1; "
                "UPDATE peer_entries SET idx = 1 WHERE idx = -1;");
  b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  auto swapped = Restore(a_dir, {b.get()});
  EXPECT_EQ(swapped.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(swapped.status().message(), HasSubstr("node-b: its copy of the log's"));
  EXPECT_FALSE(std::filesystem::exists(a_dir.dir->File("attest.db")));
  EXPECT_FALSE(std::filesystem::exists(a_dir.dir->File("attest.db.restoring")));
  EXPECT_FALSE(std::filesystem::exists(a_dir.dir->File("attest.db.signed-checkpoint")));
}

}  // namespace
}  // namespace attest::server
