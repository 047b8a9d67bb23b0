// Realisation attestations between real nodes in this process, on loopback ports: a follower verifies
// and stores a peer's realisation entries (server/replication.h) and answers the same verdict, and a
// node that lost its database gets them back from its peer's mirror (server/restore.h).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "consensus/checkpoint.h"
#include "consensus/dispute.h"
#include "consensus/log_entry.h"
#include "consensus/realisation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/node.h"
#include "server/node_config.h"
#include "server/policy_book.h"
#include "server/restore.h"
#include "tests/server/http_test_client.h"
#include "tests/server/realisation_test_util.h"
#include "tests/server/server_test_util.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::DrvHashKey;
using ::attest::testing::DrvPathKey;
using ::attest::testing::Federation;
using ::attest::testing::OutPath;
using ::attest::testing::RealisationOf;
using ::attest::testing::Signed;
using ::attest::testing::SignedRealisation;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::attest::testing::WriteFileOrDie;
using ::testing::UnorderedElementsAre;

// Generous: the machine is shared; replication normally takes well under a second here.
constexpr absl::Duration kDeadline = absl::Seconds(60);

template <typename Predicate>
bool Eventually(Predicate done) {
  const absl::Time deadline = absl::Now() + kDeadline;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

struct NodeDir {
  std::unique_ptr<TempDir> dir = std::make_unique<TempDir>();
  std::string config_path;
};

class RealisationReplicationTest : public ::testing::Test {
 protected:
  NodeDir MakeDir(const std::string& name, const std::vector<const Node*>& peers) {
    NodeDir dir;
    WriteFileOrDie(dir.dir->File("policy.toml"), federation_.PolicyToml());
    WriteFileOrDie(dir.dir->File("node.sec"), TestKey(name).ExportText() + "\n");
    dir.config_path = dir.dir->File("node.toml");
    WriteFileOrDie(dir.config_path, "");
    PointAt(dir, peers);
    return dir;
  }

  // Writes the node config of `dir`, following `peers`.
  static void PointAt(const NodeDir& dir, const std::vector<const Node*>& peers) {
    std::string text =
        "[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\ndatabase = \"attest.db\"\nkey = \"node.sec\"\n"
        "policy = \"policy.toml\"\n[log]\ncheckpoint_interval = \"50ms\"\n[federation]\npoll_interval = \"50ms\"\n"
        "max_backoff = \"200ms\"\nbatch_entries = 256\n";
    for (const Node* peer : peers) {
      absl::StrAppend(&text, "[[peer]]\ngrpc = \"", peer->grpc_address(), "\"\nhttp = \"", peer->http_address(),
                      "\"\nkey = \"", peer->public_key().ToString(), "\"\n");
    }
    WriteFileOrDie(dir.config_path, text);
  }

  static std::unique_ptr<Node> StartNode(const NodeDir& dir) {
    auto config = LoadNodeConfig(dir.config_path);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    auto node = Node::Open(*config);
    EXPECT_TRUE(node.ok()) << node.status();
    if (!node.ok()) return nullptr;
    absl::Status started = (*node)->Start();
    EXPECT_TRUE(started.ok()) << started;
    return *std::move(node);
  }

  static void Submit(Node& node, const std::vector<v1::RealisationAttestation>& realisations,
                     const std::vector<v1::Attestation>& attestations = {}) {
    auto stub = v1::Attestations::NewStub(node.InProcessChannel());
    v1::SubmitRequest request;
    for (const auto& item : attestations) *request.add_attestations() = item;
    for (const auto& item : realisations) *request.add_realisations() = item;
    v1::SubmitResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->Submit(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const auto& result : response.results()) {
      EXPECT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.message();
    }
  }

  static v1::PathStatus StatusOf(Node& node, const std::string& entry) {
    auto stub = v1::Attestations::NewStub(node.InProcessChannel());
    v1::StatusRequest request;
    request.add_store_paths(entry);
    v1::StatusResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->Status(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.statuses_size() == 1 ? response.statuses(0) : v1::PathStatus{};
  }

  static uint64_t LogSize(Node& node) { return node.store()->GetLogHead()->size; }

  static uint64_t Cursor(Node& node) {
    auto stub = v1::Federation::NewStub(node.InProcessChannel());
    v1::GetFederationStatusResponse response;
    grpc::ClientContext context;
    if (!stub->GetFederationStatus(&context, v1::GetFederationStatusRequest(), &response).ok()) return 0;
    return response.peers_size() == 1 ? response.peers(0).cursor() : 0;
  }

  // The size of `origin`'s checkpoint that `follower` verified and cosigned (0 when none).
  static uint64_t MirroredSize(Node& follower, const std::string& origin) {
    auto answer = ::attest::testing::HttpGet(follower.http_port(), absl::StrCat("/federation/mirror/", origin, "/checkpoint"));
    if (!answer.has_value() || answer->status != 200) return 0;
    auto checkpoint = consensus::VerifyCheckpoint(answer->body, TestKey(origin).public_key());
    return checkpoint.ok() ? checkpoint->size : 0;
  }

  static std::vector<std::string> AllEntries(Node& node) {
    auto entries = node.store()->LogEntries(0, LogSize(node));
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.value_or(std::vector<std::string>{});
  }

  Federation federation_;
  const consensus::Realisation agreed_ = RealisationOf(DrvPathKey("hello"), OutPath("hello"));
  const consensus::Realisation one_ = RealisationOf(DrvHashKey("flaky"), OutPath("flaky", "one"));
  const consensus::Realisation other_ = RealisationOf(DrvHashKey("flaky"), OutPath("flaky", "other"));

  // What A is given: an agreed realisation (CONFIRMED), a disputed one and an attestation, interleaved
  // over two requests so that the log mixes the kinds.
  void Fill(Node& a) {
    Submit(a, {SignedRealisation(agreed_, federation_.alice), SignedRealisation(one_, federation_.alice)},
           {Signed(TestClaim("plain"), federation_.alice)});
    Submit(a, {SignedRealisation(agreed_, federation_.bob), SignedRealisation(one_, federation_.bob),
               SignedRealisation(other_, federation_.carol)},
           {Signed(TestClaim("plain"), federation_.bob)});
  }
};

TEST_F(RealisationReplicationTest, AFollowerStoresThePeersRealisationsWithTheirOriginAndAnswersTheSameVerdict) {
  NodeDir a_dir = MakeDir("node-a", {});
  std::unique_ptr<Node> a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  NodeDir b_dir = MakeDir("node-b", {a.get()});
  std::unique_ptr<Node> b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  ASSERT_NO_FATAL_FAILURE(Fill(*a));
  ASSERT_EQ(StatusOf(*a, agreed_.key.ToString()).verdict(), v1::CONFIRMED);
  ASSERT_EQ(StatusOf(*a, one_.key.ToString()).verdict(), v1::DISPUTED);

  ASSERT_TRUE(Eventually([&] { return Cursor(*b) == LogSize(*a); })) << Cursor(*b) << " of " << LogSize(*a);
  const v1::PathStatus agreed = StatusOf(*b, agreed_.key.ToString());
  EXPECT_EQ(agreed.verdict(), v1::CONFIRMED);
  EXPECT_EQ(agreed.fingerprints(0).fingerprint(), agreed_.Fingerprint());
  // The received times are the origin's.
  const v1::PathStatus on_a = StatusOf(*a, agreed_.key.ToString());
  ASSERT_EQ(agreed.attestations_size(), on_a.attestations_size());
  for (int i = 0; i < agreed.attestations_size(); ++i) {
    EXPECT_EQ(agreed.attestations(i).received_unix(), on_a.attestations(i).received_unix());
  }
  const v1::PathStatus disputed = StatusOf(*b, one_.key.ToString());
  EXPECT_EQ(disputed.verdict(), v1::DISPUTED);
  ASSERT_EQ(disputed.fingerprints_size(), 2);
  EXPECT_EQ(disputed.fingerprints(0).fingerprint(), one_.Fingerprint());
  EXPECT_EQ(disputed.fingerprints(1).fingerprint(), other_.Fingerprint());

  // Stored with the peer as origin and never appended to B's own log.
  auto stored = b->store()->RealisationsFor(std::vector<consensus::RealisationKey>{agreed_.key});
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ((*stored)[0].size(), 2u);
  EXPECT_EQ((*stored)[0][0].origin, "node-a");
  EXPECT_EQ((*stored)[0][1].origin, "node-a");
  bool logged_dispute = false;
  for (const std::string& entry : AllEntries(*b)) {
    auto parsed = consensus::ParseLogEntry(entry);
    ASSERT_TRUE(parsed.ok());
    EXPECT_NE(parsed->kind, consensus::LogEntryKind::kRealisation);
    logged_dispute |= parsed->kind == consensus::LogEntryKind::kDispute;
  }
  // B made and logged its own signed record of the derivation output's dispute, under the same id as A's.
  EXPECT_TRUE(logged_dispute);
  for (Node* node : {a.get(), b.get()}) {
    auto dispute = node->store()->GetDispute(consensus::DisputeId(one_.key));
    ASSERT_TRUE(dispute.ok()) << dispute.status();
    ASSERT_TRUE(dispute->has_value());
    ASSERT_TRUE((*dispute)->subject.is_realisation());
    EXPECT_EQ((*dispute)->subject.realisation(), one_.key);
    EXPECT_EQ((*dispute)->fingerprint_count, 2);
  }
}

TEST_F(RealisationReplicationTest, ARestoredNodeGetsItsRealisationsBackFromItsPeersMirror) {
  NodeDir a_dir = MakeDir("node-a", {});
  std::unique_ptr<Node> a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  NodeDir b_dir = MakeDir("node-b", {a.get()});
  std::unique_ptr<Node> b = StartNode(b_dir);
  ASSERT_NE(b, nullptr);
  ASSERT_NO_FATAL_FAILURE(Fill(*a));
  ASSERT_TRUE(Eventually([&] { return MirroredSize(*b, "node-a") == LogSize(*a) && Cursor(*b) == LogSize(*a); }))
      << "mirrored " << MirroredSize(*b, "node-a") << " of " << LogSize(*a);
  const std::vector<std::string> entries = AllEntries(*a);
  ASSERT_GE(entries.size(), 8u);  // 2 attestations, 5 realisations, the dispute record of one of them
  const storage::LogHead head = *a->store()->GetLogHead();
  a.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove(a_dir.dir->File(absl::StrCat("attest.db", suffix)).c_str());

  PointAt(a_dir, {b.get()});
  auto config = LoadNodeConfig(a_dir.config_path);
  ASSERT_TRUE(config.ok()) << config.status();
  auto loaded = LoadPolicyAndKey(*config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto report = RestoreFromPeers(*config, PolicyBook(loaded->policy), loaded->key,
                                 RestoreOptions{.timeout = absl::Seconds(20)});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->entries, entries.size());

  a = StartNode(a_dir);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(AllEntries(*a), entries);  // byte for byte, in the same order
  EXPECT_EQ(a->store()->GetLogHead()->root, head.root);
  EXPECT_EQ(StatusOf(*a, agreed_.key.ToString()).verdict(), v1::CONFIRMED);
  const v1::PathStatus disputed = StatusOf(*a, one_.key.ToString());
  EXPECT_EQ(disputed.verdict(), v1::DISPUTED);
  EXPECT_EQ(disputed.fingerprints_size(), 2);
  EXPECT_EQ(StatusOf(*a, TestClaim("plain").path.full()).verdict(), v1::CONFIRMED);
  auto stored = a->store()->RealisationsFor(std::vector<consensus::RealisationKey>{agreed_.key});
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ((*stored)[0].size(), 2u);
  EXPECT_EQ((*stored)[0][0].origin, "");  // its own again
  // The derivation output's dispute record came back from the log with it.
  auto dispute = a->store()->GetDispute(consensus::DisputeId(one_.key));
  ASSERT_TRUE(dispute.ok()) << dispute.status();
  ASSERT_TRUE(dispute->has_value());
  EXPECT_TRUE((*dispute)->subject.is_realisation());
}

}  // namespace
}  // namespace attest::server
