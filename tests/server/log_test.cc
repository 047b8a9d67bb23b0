// server/log_publisher, server/log_http, server/log_proofs and the LogService: the node's transparency
// log. The real node (SQLite file, gRPC and HTTP on 127.0.0.1) is checked the way an outside monitor
// would: checkpoint verified with the node key, tiles and entry bundles fetched over HTTP and hashed
// up to the signed root, proofs verified. The publisher's integrity checks run against a store that
// lies on command.
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "consensus/checkpoint.h"
#include "consensus/encoding.h"
#include "consensus/log_entry.h"
#include "consensus/merkle.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/log_http.h"
#include "server/log_proofs.h"
#include "server/log_publisher.h"
#include "server/node.h"
#include "storage/forwarding_attestation_store.h"
#include "storage/memory_attestation_store.h"
#include "tests/server/http_test_client.h"
#include "tests/server/server_test_util.h"
#include "tests/storage/fault_injecting_store.h"
#include "tests/support/checkpoint_forgery.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::FixedNow;
using ::attest::testing::HttpAnswer;
using ::attest::testing::HttpGet;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::WriteNodeDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Checkpoints are signed only when a test asks (PublishNow), so sizes are exact.
constexpr std::string_view kManualPublishing = "\n[log]\ncheckpoint_interval = \"1h\"\n";

std::string Message(const absl::Status& status) { return std::string(consensus::StdView(status.message())); }

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

consensus::MerkleHash ToHash(std::string_view bytes) {
  consensus::MerkleHash hash{};
  EXPECT_EQ(bytes.size(), hash.size());
  std::copy_n(bytes.data(), std::min(bytes.size(), hash.size()), hash.begin());
  return hash;
}

template <typename Response>
std::vector<consensus::MerkleHash> ProofOf(const Response& response) {
  std::vector<consensus::MerkleHash> proof;
  for (const std::string& hash : response.hashes()) proof.push_back(ToHash(hash));
  return proof;
}


struct FetchedCheckpoint {
  std::string note;
  consensus::Checkpoint checkpoint;
};

// ---- the real node ---------------------------------------------------------------------------------

class LogNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    WriteNodeDir(*dir_, federation_, std::string(kManualPublishing));
    StartNode();
  }
  void TearDown() override { StopNode(); }

  void StartNode(NodeOptions options = {}) {
    auto config = LoadNodeConfig(dir_->File("node.toml"));
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config, std::move(options));
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    auto channel = grpc::CreateCustomChannel(node_->grpc_address(), grpc::InsecureChannelCredentials(), args);
    attestations_ = v1::Attestations::NewStub(channel);
    log_ = v1::LogService::NewStub(channel);
  }
  void StopNode() {
    if (!node_) return;
    node_->Shutdown(absl::Now() + absl::Seconds(5));
    node_.reset();
  }
  // Writes the config again with `extra` after [node] and restarts on the same database.
  void RestartWith(const std::string& extra, NodeOptions options = {}) {
    StopNode();
    WriteNodeDir(*dir_, federation_, extra);
    StartNode(std::move(options));
  }

  v1::SubmitResponse Submit(const std::vector<v1::Attestation>& items) {
    v1::SubmitRequest request;
    for (const auto& item : items) *request.add_attestations() = item;
    v1::SubmitResponse response;
    grpc::Status status = attestations_->Submit(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  // `count` distinct attestations by `key`, all accepted.
  void SubmitAccepted(std::string_view prefix, int count, const consensus::SecretKey& key) {
    std::vector<v1::Attestation> items;
    for (int i = 0; i < count; ++i) items.push_back(Signed(TestClaim(consensus::Cat(prefix, "-", i)), key));
    v1::SubmitResponse response = Submit(items);
    ASSERT_EQ(response.results_size(), count);
    for (const auto& result : response.results()) ASSERT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED);
  }

  uint64_t LogSize() {
    auto head = node_->store()->GetLogHead();
    EXPECT_TRUE(head.ok()) << head.status();
    return head.ok() ? head->size : 0;
  }
  void Publish() {
    absl::Status s = node_->log_publisher()->PublishNow();
    ASSERT_TRUE(s.ok()) << s;
  }

  int port() const { return node_->http_port(); }

  // GET /log/checkpoint, checked as a client would: signed by the node key, for its origin.
  FetchedCheckpoint FetchCheckpoint() {
    std::optional<HttpAnswer> answer = HttpGet(port(), "/log/checkpoint");
    EXPECT_TRUE(answer.has_value());
    if (!answer) return {};
    EXPECT_EQ(answer->status, 200) << answer->body;
    EXPECT_THAT(answer->Header("content-type"), StartsWith("text/plain"));
    EXPECT_EQ(answer->Header("cache-control"), "no-cache");
    auto checkpoint = consensus::VerifyCheckpoint(answer->body, federation_.node_key.public_key());
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status() << "\n" << answer->body;
    if (!checkpoint.ok()) return {};
    EXPECT_EQ(checkpoint->origin, federation_.node_key.name());
    return FetchedCheckpoint{answer->body, *checkpoint};
  }

  // Fetches every hash tile and entry bundle the checkpoint implies over HTTP, checks that the tiles
  // hash up to its root and that every entry hashes to its leaf; returns the entries.
  std::vector<std::string> FetchAndCheckLog(const consensus::Checkpoint& checkpoint) {
    const uint64_t size = checkpoint.size;
    ConnectClient();
    std::map<std::string, std::string> tiles;
    for (const consensus::TileId& tile : consensus::TilesForSize(size)) {
      const std::string path = consensus::TilePath(tile);
      std::optional<HttpAnswer> answer = client_->Get(consensus::Cat("/log/", path));
      EXPECT_TRUE(answer.has_value()) << path;
      if (!answer) return {};
      EXPECT_EQ(answer->status, 200) << path << ": " << answer->body;
      EXPECT_EQ(answer->Header("content-type"), "application/octet-stream") << path;
      EXPECT_EQ(answer->Header("cache-control"), "public, max-age=31536000, immutable") << path;
      EXPECT_EQ(answer->body.size(), static_cast<size_t>(tile.width) * 32) << path;
      tiles[path] = answer->body;
    }
    const consensus::TileHashReader reader(size, [&tiles](std::span<const consensus::TileId> ids)
                                                     -> absl::StatusOr<std::vector<std::string>> {
      std::vector<std::string> out;
      for (const consensus::TileId& id : ids) {
        auto it = tiles.find(consensus::TilePath(id));
        if (it == tiles.end()) return absl::NotFoundError(consensus::TilePath(id));
        out.push_back(it->second);
      }
      return out;
    });
    auto root = consensus::TreeHash(size, reader);
    EXPECT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(root.value_or(consensus::MerkleHash{}), checkpoint.root) << "the tiles hash up to the signed root";

    std::vector<std::string> entries;
    for (uint64_t n = 0; n * 256 < size; ++n) {
      const consensus::TileId leaves = *consensus::TileForSize(0, n, size);
      consensus::TileId bundle = leaves;
      bundle.entries = true;
      const std::string path = consensus::TilePath(bundle);
      std::optional<HttpAnswer> answer = client_->Get(consensus::Cat("/log/", path));
      EXPECT_TRUE(answer.has_value()) << path;
      if (!answer) return {};
      EXPECT_EQ(answer->status, 200) << path << ": " << answer->body;
      EXPECT_EQ(answer->Header("cache-control"), "public, max-age=31536000, immutable") << path;
      auto decoded = consensus::DecodeEntryBundle(answer->body);
      EXPECT_TRUE(decoded.ok()) << decoded.status();
      if (!decoded.ok()) return {};
      EXPECT_EQ(decoded->size(), static_cast<size_t>(leaves.width)) << path;
      const std::string& hashes = tiles[consensus::TilePath(leaves)];
      for (size_t i = 0; i < decoded->size() && (i + 1) * 32 <= hashes.size(); ++i) {
        EXPECT_EQ(consensus::LeafHash((*decoded)[i]), ToHash(std::string_view(hashes).substr(i * 32, 32)))
            << "entry " << n * 256 + i;
        entries.push_back((*decoded)[i]);
      }
    }
    EXPECT_EQ(entries.size(), size);
    return entries;
  }

  // One keep-alive connection for the many tile requests (reopened after a restart).
  void ConnectClient() {
    if (!client_ || client_port_ != port()) {
      client_ = std::make_unique<testing::HttpTestClient>(port());
      client_port_ = port();
    }
  }

  grpc::Status InclusionProof(uint64_t index, uint64_t size, v1::GetInclusionProofResponse* response) {
    v1::GetInclusionProofRequest request;
    request.set_index(index);
    request.set_tree_size(size);
    return log_->GetInclusionProof(Context().get(), request, response);
  }
  grpc::Status ConsistencyProof(uint64_t old_size, uint64_t new_size, v1::GetConsistencyProofResponse* response) {
    v1::GetConsistencyProofRequest request;
    request.set_old_size(old_size);
    request.set_new_size(new_size);
    return log_->GetConsistencyProof(Context().get(), request, response);
  }

  // Every entry of the checkpoint's tree has an inclusion proof that verifies against its root, and
  // carries the entry bytes served in the bundles.
  void ExpectInclusionProofsVerify(const consensus::Checkpoint& checkpoint, const std::vector<std::string>& entries) {
    for (uint64_t i = 0; i < checkpoint.size; ++i) {
      v1::GetInclusionProofResponse response;
      grpc::Status status = InclusionProof(i, checkpoint.size, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      if (i < entries.size()) {
        EXPECT_EQ(response.entry(), entries[i]) << "entry " << i;
      }
      absl::Status verified = consensus::VerifyInclusion(i, checkpoint.size, consensus::LeafHash(response.entry()),
                                                         ProofOf(response), checkpoint.root);
      EXPECT_TRUE(verified.ok()) << "entry " << i << " of " << checkpoint.size << ": " << verified;
    }
  }

  Federation federation_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::LogService::Stub> log_;
  std::unique_ptr<testing::HttpTestClient> client_;
  int client_port_ = 0;
};

TEST_F(LogNodeTest, AStartedNodeServesASignedCheckpointOfItsEmptyLog) {
  FetchedCheckpoint fetched = FetchCheckpoint();
  EXPECT_EQ(fetched.checkpoint.size, 0u);
  EXPECT_EQ(fetched.checkpoint.root, consensus::EmptyTreeHash());
  EXPECT_EQ(fetched.note.substr(0, fetched.note.find('\n')), "node-1");
  // No tile exists for an empty tree.
  EXPECT_EQ(HttpGet(port(), "/log/tile/0/000.p/1")->status, 404);
  EXPECT_EQ(HttpGet(port(), "/log/tile/entries/000.p/1")->status, 404);
  EXPECT_EQ(HttpGet(port(), "/healthz")->body, "ok\n");
}

TEST_F(LogNodeTest, CheckpointTilesAndEntryBundlesVerifyOverHttp) {
  // 300 attestations (a full tile and a partial one), then a dispute: attestation and dispute record.
  SubmitAccepted("many", 300, federation_.alice);
  ASSERT_EQ(Submit({Signed(TestClaim("many-0", "other bytes"), federation_.bob)}).results(0).outcome(),
            v1::SubmitResult::ACCEPTED);
  EXPECT_EQ(LogSize(), 302u);
  Publish();

  FetchedCheckpoint fetched = FetchCheckpoint();
  ASSERT_EQ(fetched.checkpoint.size, 302u);
  std::vector<std::string> entries = FetchAndCheckLog(fetched.checkpoint);
  ASSERT_EQ(entries.size(), 302u);
  for (size_t i = 0; i < 301; ++i) {
    auto entry = consensus::ParseLogEntry(entries[i]);
    ASSERT_TRUE(entry.ok()) << entry.status();
    ASSERT_EQ(entry->kind, consensus::LogEntryKind::kAttestation) << i;
  }
  auto first = consensus::ParseLogEntry(entries[0]);
  EXPECT_EQ(first->attestation->attestation.claim.path, TestClaim("many-0").path);
  EXPECT_EQ(first->attestation->attestation.key_name(), "alice-builder-1");
  EXPECT_EQ(consensus::ParseLogEntry(entries[300])->attestation->attestation.key_name(), "bob-builder-1");
  auto dispute = consensus::ParseLogEntry(entries[301]);
  ASSERT_TRUE(dispute.ok()) << dispute.status();
  ASSERT_EQ(dispute->kind, consensus::LogEntryKind::kDispute);
  auto note = consensus::SignedNote::Parse(dispute->note);
  ASSERT_TRUE(note.ok());
  EXPECT_TRUE(consensus::VerifyNote(*note, federation_.node_key.public_key()).ok());

  // HEAD answers like GET without a body.
  std::optional<HttpAnswer> head = HttpGet(port(), "/log/tile/0/000", "HEAD");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-length"), "8192");

  // gRPC gives the same checkpoint.
  v1::GetCheckpointResponse over_grpc;
  ASSERT_TRUE(log_->GetCheckpoint(Context().get(), v1::GetCheckpointRequest{}, &over_grpc).ok());
  EXPECT_EQ(over_grpc.checkpoint(), fetched.note);
  EXPECT_EQ(over_grpc.size(), 302u);
  EXPECT_EQ(over_grpc.publishing_error(), "");
}

TEST_F(LogNodeTest, InclusionAndConsistencyProofsVerify) {
  SubmitAccepted("first", 5, federation_.alice);
  Publish();
  FetchedCheckpoint one = FetchCheckpoint();
  ASSERT_EQ(one.checkpoint.size, 5u);
  SubmitAccepted("second", 20, federation_.bob);
  ASSERT_EQ(Submit({Signed(TestClaim("first-0", "other"), federation_.carol)}).results(0).outcome(),
            v1::SubmitResult::ACCEPTED);  // + a dispute record
  Publish();
  FetchedCheckpoint two = FetchCheckpoint();
  ASSERT_EQ(two.checkpoint.size, 27u);

  std::vector<std::string> entries = FetchAndCheckLog(two.checkpoint);
  ExpectInclusionProofsVerify(one.checkpoint, entries);
  ExpectInclusionProofsVerify(two.checkpoint, entries);

  // Between the two checkpoints, and from every smaller tree (its root computed from the entries).
  consensus::MemoryHashStore local;
  std::vector<consensus::MerkleHash> roots{consensus::EmptyTreeHash()};
  for (const std::string& entry : entries) {
    local.Append(consensus::LeafHash(entry));
    roots.push_back(*consensus::TreeHash(local.size(), local));
  }
  ASSERT_EQ(roots[5], one.checkpoint.root);
  for (uint64_t old_size = 0; old_size <= two.checkpoint.size; ++old_size) {
    v1::GetConsistencyProofResponse response;
    grpc::Status status = ConsistencyProof(old_size, two.checkpoint.size, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(consensus::VerifyConsistency(old_size, two.checkpoint.size, roots[old_size], two.checkpoint.root,
                                             ProofOf(response))
                    .ok())
        << "from " << old_size;
  }
  v1::GetConsistencyProofResponse between;
  ASSERT_TRUE(ConsistencyProof(5, 27, &between).ok());
  EXPECT_TRUE(consensus::VerifyConsistency(5, 27, one.checkpoint.root, two.checkpoint.root, ProofOf(between)).ok());
  // The proof is not a formality: another old root fails.
  consensus::MerkleHash wrong = one.checkpoint.root;
  wrong[7] ^= 1;
  EXPECT_FALSE(consensus::VerifyConsistency(5, 27, wrong, two.checkpoint.root, ProofOf(between)).ok());
  v1::GetInclusionProofResponse inclusion;
  ASSERT_TRUE(InclusionProof(3, 27, &inclusion).ok());
  EXPECT_FALSE(consensus::VerifyInclusion(4, 27, consensus::LeafHash(inclusion.entry()), ProofOf(inclusion),
                                          two.checkpoint.root)
                   .ok());
}

TEST_F(LogNodeTest, ProofRequestsOutsideTheSignedTreeAreRefused) {
  SubmitAccepted("p", 4, federation_.alice);
  v1::GetInclusionProofResponse inclusion;
  grpc::Status status = InclusionProof(0, 4, &inclusion);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << "appended but not signed yet";
  EXPECT_THAT(status.error_message(), HasSubstr("tree_size 4 exceeds the size of the latest signed checkpoint (0)"));
  Publish();
  EXPECT_TRUE(InclusionProof(0, 4, &inclusion).ok());
  status = InclusionProof(0, 5, &inclusion);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(status.error_message(), HasSubstr("(4)"));
  status = InclusionProof(4, 4, &inclusion);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("index 4 is not below tree_size 4"));
  status = InclusionProof(0, 0, &inclusion);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("tree_size is 0"));
  status = InclusionProof(~uint64_t{0}, ~uint64_t{0}, &inclusion);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::GetConsistencyProofResponse consistency;
  status = ConsistencyProof(3, 2, &consistency);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("old_size 3 exceeds new_size 2"));
  status = ConsistencyProof(2, 5, &consistency);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(status.error_message(), HasSubstr("new_size 5 exceeds"));
  ASSERT_TRUE(ConsistencyProof(4, 4, &consistency).ok());
  EXPECT_EQ(consistency.hashes_size(), 0);
  ASSERT_TRUE(ConsistencyProof(0, 4, &consistency).ok());
  EXPECT_EQ(consistency.hashes_size(), 0);
}

TEST_F(LogNodeTest, ReplayedAndRejectedBatchesAppendNothing) {
  std::vector<v1::Attestation> batch;
  for (int i = 0; i < 10; ++i) batch.push_back(Signed(TestClaim(consensus::Cat("replay-", i)), federation_.alice));
  Submit(batch);
  ASSERT_EQ(LogSize(), 10u);
  Publish();
  const FetchedCheckpoint before = FetchCheckpoint();

  v1::SubmitResponse replay = Submit(batch);
  for (const auto& result : replay.results()) EXPECT_EQ(result.outcome(), v1::SubmitResult::ALREADY_PRESENT);
  EXPECT_EQ(LogSize(), 10u);

  v1::Attestation bad_signature = Signed(TestClaim("rejected"), federation_.alice);
  bad_signature.set_signature(Signed(TestClaim("rejected", "other"), federation_.alice).signature());
  v1::SubmitResponse rejected =
      Submit({bad_signature, Signed(TestClaim("rejected"), federation_.outsider), batch[0], batch[0]});
  EXPECT_EQ(rejected.results(0).outcome(), v1::SubmitResult::REJECTED);
  EXPECT_EQ(rejected.results(1).outcome(), v1::SubmitResult::REJECTED);
  EXPECT_EQ(rejected.results(2).outcome(), v1::SubmitResult::ALREADY_PRESENT);
  EXPECT_EQ(rejected.results(3).outcome(), v1::SubmitResult::REJECTED);
  EXPECT_EQ(LogSize(), 10u);

  Publish();
  EXPECT_EQ(FetchCheckpoint().note, before.note) << "nothing new: the same checkpoint is served";
}

TEST_F(LogNodeTest, BadTilePathsAre400AndTilesNotImpliedAre404) {
  SubmitAccepted("t", 3, federation_.alice);
  Publish();
  ASSERT_EQ(FetchCheckpoint().checkpoint.size, 3u);
  ASSERT_EQ(HttpGet(port(), "/log/tile/0/000.p/3")->status, 200);
  ASSERT_EQ(HttpGet(port(), "/log/tile/entries/000.p/3")->status, 200);

  for (const std::string target : {"/log/tile/garbage", "/log/tile/", "/log/tile/0/0", "/log/tile/00/000",
                                   "/log/tile/64/000", "/log/tile/0/000.p/0", "/log/tile/0/000.p/256",
                                   "/log/tile/0/000.p/03", "/log/tile/0/x000/000", "/log/tile/0/000/extra",
                                   "/log/tile/../../etc/passwd", "/log/tile/0/../../../etc/passwd",
                                   "/log/tile/%2e%2e/%2e%2e/etc/passwd", "/log/tile/entries/abc"}) {
    std::optional<HttpAnswer> answer = HttpGet(port(), target);
    ASSERT_TRUE(answer.has_value()) << target;
    EXPECT_EQ(answer->status, 400) << target << ": " << answer->body;
    EXPECT_THAT(answer->body, HasSubstr("tile path")) << target;
  }
  std::optional<HttpAnswer> garbage = HttpGet(port(), "/log/tile/garbage");
  EXPECT_THAT(garbage->body, HasSubstr("level 'garbage' is not 'entries' or a number"));

  // Well formed, but reaching past what the checkpoint holds.
  for (const std::string target : {"/log/tile/0/000", "/log/tile/0/000.p/4", "/log/tile/0/001.p/3",
                                   "/log/tile/1/000.p/1", "/log/tile/entries/000", "/log/tile/entries/000.p/4",
                                   "/log/tile/entries/x001/000"}) {
    std::optional<HttpAnswer> answer = HttpGet(port(), target);
    ASSERT_TRUE(answer.has_value()) << target;
    EXPECT_EQ(answer->status, 404) << target << ": " << answer->body;
    EXPECT_THAT(answer->body, HasSubstr("reaches past the latest checkpoint (size 3)")) << target;
    EXPECT_EQ(answer->Header("cache-control"), "no-cache") << target;
  }
  EXPECT_THAT(HttpGet(port(), "/log/tile/0/000.p/4")->body, HasSubstr("it has tile/0/000.p/3"));
  EXPECT_THAT(HttpGet(port(), "/log/tile/entries/000")->body, HasSubstr("it has tile/entries/000.p/3"));
  // Appended but not yet signed: still 404 until the next checkpoint.
  SubmitAccepted("u", 1, federation_.alice);
  EXPECT_EQ(HttpGet(port(), "/log/tile/0/000.p/4")->status, 404);
  Publish();
  EXPECT_EQ(HttpGet(port(), "/log/tile/0/000.p/4")->status, 200);

  // Other paths under /log/ are not routes; writes are refused.
  EXPECT_EQ(HttpGet(port(), "/log/nothing")->status, 404);
  EXPECT_EQ(HttpGet(port(), "/log/checkpoint", "POST")->status, 405);
  EXPECT_EQ(HttpGet(port(), "/log/checkpoint", "HEAD")->status, 200);
}

TEST_F(LogNodeTest, PartialTilesOfEverySignedSizeStayServed) {
  // Sizes 3, then 300 (one full tile), then 600: every narrower width is the prefix of the wider tile.
  SubmitAccepted("a", 3, federation_.alice);
  Publish();
  const std::string three_hashes = HttpGet(port(), "/log/tile/0/000.p/3")->body;
  const std::string three_entries = HttpGet(port(), "/log/tile/entries/000.p/3")->body;
  ASSERT_EQ(three_hashes.size(), 3u * 32);
  SubmitAccepted("b", 297, federation_.bob);
  Publish();
  SubmitAccepted("c", 300, federation_.carol);
  Publish();
  ASSERT_EQ(FetchCheckpoint().checkpoint.size, 600u);

  std::optional<HttpAnswer> full = HttpGet(port(), "/log/tile/0/000");
  ASSERT_EQ(full->status, 200);
  for (int width : {1, 2, 3, 44, 255}) {
    std::optional<HttpAnswer> partial = HttpGet(port(), consensus::Cat("/log/tile/0/000.p/", width));
    ASSERT_EQ(partial->status, 200) << width << ": " << partial->body;
    EXPECT_EQ(partial->body, full->body.substr(0, width * 32)) << width;
    EXPECT_EQ(partial->Header("cache-control"), "public, max-age=31536000, immutable");
    std::optional<HttpAnswer> bundle = HttpGet(port(), consensus::Cat("/log/tile/entries/000.p/", width));
    ASSERT_EQ(bundle->status, 200) << width << ": " << bundle->body;
    auto entries = consensus::DecodeEntryBundle(bundle->body);
    ASSERT_TRUE(entries.ok()) << entries.status();
    EXPECT_EQ(entries->size(), static_cast<size_t>(width));
  }
  EXPECT_EQ(HttpGet(port(), "/log/tile/0/000.p/3")->body, three_hashes);
  EXPECT_EQ(HttpGet(port(), "/log/tile/entries/000.p/3")->body, three_entries);
  // Size 300's partial tiles at levels 0 and 1, now inside full or wider tiles.
  EXPECT_EQ(HttpGet(port(), "/log/tile/0/001.p/44")->status, 200);
  EXPECT_EQ(HttpGet(port(), "/log/tile/entries/001.p/44")->status, 200);
  EXPECT_EQ(HttpGet(port(), "/log/tile/1/000.p/1")->body, HttpGet(port(), "/log/tile/1/000.p/2")->body.substr(0, 32));
  // Still nothing past the signed tree: tile 2 holds 88 entries, level 1 two hashes.
  EXPECT_EQ(HttpGet(port(), "/log/tile/0/002.p/88")->status, 200);
  EXPECT_EQ(HttpGet(port(), "/log/tile/0/002.p/89")->status, 404);
  EXPECT_EQ(HttpGet(port(), "/log/tile/entries/002.p/89")->status, 404);
  EXPECT_EQ(HttpGet(port(), "/log/tile/1/000.p/3")->status, 404);
  EXPECT_EQ(HttpGet(port(), "/log/tile/0/003.p/1")->status, 404);
}

// tests/log/tlog_client.py: a tlog-tiles client written from the specs in Python's standard library.
const std::string kTlogClient = std::string(ATTEST_SOURCE_DIR) + "/tests/log/tlog_client.py";

TEST(TlogClientTest, ItsEd25519VerifierPassesTheRfc8032Vectors) {
  testing::RunResult r = testing::Run({"python3", kTlogClient, "--self-test",
                                       std::string(ATTEST_TESTDATA_DIR) + "/rfc8032_ed25519.txt"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok: 5 Ed25519 vectors"));
}

TEST_F(LogNodeTest, AClientThatIsNotTheFollowerVerifiesAnOlderCheckpointAfterTheLogGrew) {
  auto run_client = [&](const std::optional<std::string>& pinned_note) {
    std::vector<std::string> argv = {"python3", kTlogClient, "--log", consensus::Cat("http://127.0.0.1:", port(), "/log"),
                                     "--key", federation_.node_key.public_key().ToString()};
    if (pinned_note.has_value()) {
      const std::string file = dir_->File("pinned-checkpoint");
      testing::WriteFileOrDie(file, *pinned_note);
      argv.insert(argv.end(), {"--checkpoint", file});
    }
    return testing::Run(argv);
  };
  // The empty log's root is SHA-256 of the empty string, for this client too.
  testing::RunResult empty = run_client(std::nullopt);
  EXPECT_EQ(empty.exit_code, 0) << empty.err;
  EXPECT_THAT(empty.out, HasSubstr("verified node-1 size 0 root 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));

  // A checkpoint of 300 entries (tile 0 full, tile 1 partial: 44), fetched before the log grows to 600
  // (past the next tile boundary, 512) and a newer checkpoint is signed.
  SubmitAccepted("early", 300, federation_.alice);
  Publish();
  const FetchedCheckpoint old = FetchCheckpoint();
  ASSERT_EQ(old.checkpoint.size, 300u);
  SubmitAccepted("late", 300, federation_.bob);
  Publish();
  ASSERT_EQ(FetchCheckpoint().checkpoint.size, 600u);

  testing::RunResult pinned = run_client(old.note);
  EXPECT_EQ(pinned.exit_code, 0) << pinned.err;
  EXPECT_THAT(pinned.out, HasSubstr(consensus::Cat("verified node-1 size 300 root ",
                                                   consensus::Base64Encode(old.checkpoint.root))));
  testing::RunResult latest = run_client(std::nullopt);
  EXPECT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_THAT(latest.out, HasSubstr("verified node-1 size 600 root "));

  // The client is not a rubber stamp: a checkpoint whose root was changed does not verify.
  std::string forged = old.note;
  const size_t root_line = forged.find('\n', forged.find('\n') + 1) + 1;
  forged[root_line] = forged[root_line] == 'A' ? 'B' : 'A';
  testing::RunResult refused = run_client(forged);
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_THAT(refused.err, HasSubstr("does not verify"));
}

TEST_F(LogNodeTest, RestartOnTheSameDatabaseContinuesTheLog) {
  SubmitAccepted("before", 7, federation_.alice);
  Publish();
  const FetchedCheckpoint before = FetchCheckpoint();
  ASSERT_EQ(before.checkpoint.size, 7u);
  SubmitAccepted("unsigned", 2, federation_.bob);  // appended, signed only after the restart

  RestartWith(std::string(kManualPublishing));
  const FetchedCheckpoint restarted = FetchCheckpoint();
  EXPECT_EQ(restarted.checkpoint.size, 9u) << "the start signs what the log holds";
  v1::GetConsistencyProofResponse proof;
  ASSERT_TRUE(ConsistencyProof(7, 9, &proof).ok());
  EXPECT_TRUE(consensus::VerifyConsistency(7, 9, before.checkpoint.root, restarted.checkpoint.root,
                                           ProofOf(proof))
                  .ok());

  RestartWith(std::string(kManualPublishing));
  EXPECT_EQ(FetchCheckpoint().note, restarted.note) << "nothing new: the stored checkpoint is served again";

  SubmitAccepted("after", 5, federation_.carol);
  Publish();
  const FetchedCheckpoint after = FetchCheckpoint();
  ASSERT_EQ(after.checkpoint.size, 14u);
  std::vector<std::string> entries = FetchAndCheckLog(after.checkpoint);
  ASSERT_EQ(entries.size(), 14u);
  EXPECT_EQ(consensus::ParseLogEntry(entries[7])->attestation->attestation.key_name(), "bob-builder-1");
  EXPECT_EQ(consensus::ParseLogEntry(entries[9])->attestation->attestation.claim.path, TestClaim("after-0").path);
  ASSERT_TRUE(ConsistencyProof(7, 14, &proof).ok());
  EXPECT_TRUE(
      consensus::VerifyConsistency(7, 14, before.checkpoint.root, after.checkpoint.root, ProofOf(proof)).ok());
  ExpectInclusionProofsVerify(after.checkpoint, entries);
}

TEST_F(LogNodeTest, ThePublisherSignsOnItsOwnWhenTheLogGrows) {
  RestartWith("\n[log]\ncheckpoint_interval = \"20ms\"\n");
  SubmitAccepted("auto", 6, federation_.alice);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  uint64_t size = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<HttpAnswer> answer = HttpGet(port(), "/log/checkpoint");
    ASSERT_TRUE(answer.has_value());
    auto checkpoint = consensus::VerifyCheckpoint(answer->body, federation_.node_key.public_key());
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
    size = checkpoint->size;
    if (size == 6) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(size, 6u);
}

TEST_F(LogNodeTest, AnInjectedForgerServesTwoValidlySignedRootsForOneSize) {
  RestartWith(std::string(kManualPublishing),
              NodeOptions{.serve_checkpoint = ::attest::testing::ForgeEveryOtherCheckpoint});
  SubmitAccepted("fork", 9, federation_.alice);
  Publish();

  std::set<std::string> notes;
  std::vector<consensus::Checkpoint> seen;
  for (int i = 0; i < 4; ++i) {
    FetchedCheckpoint fetched = FetchCheckpoint();  // verifies the signature
    EXPECT_EQ(fetched.checkpoint.size, 9u);
    notes.insert(fetched.note);
    seen.push_back(fetched.checkpoint);
  }
  ASSERT_EQ(notes.size(), 2u) << "every other answer is the forged checkpoint";
  EXPECT_NE(seen[0].root, seen[1].root);
  EXPECT_EQ(seen[0], seen[2]);
  EXPECT_EQ(seen[1], seen[3]);

  // gRPC takes turns too; one of the two is the stored, genuine one, which the tiles prove.
  std::set<std::string> over_grpc;
  for (int i = 0; i < 2; ++i) {
    v1::GetCheckpointResponse response;
    ASSERT_TRUE(log_->GetCheckpoint(Context().get(), v1::GetCheckpointRequest{}, &response).ok());
    over_grpc.insert(response.checkpoint());
  }
  EXPECT_EQ(over_grpc, notes);
  auto stored = node_->store()->LatestCheckpoint();
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->size, 9u);
  EXPECT_TRUE(notes.contains((*stored)->note));
  consensus::Checkpoint genuine = seen[0].root == (*stored)->root ? seen[0] : seen[1];
  consensus::Checkpoint forged = seen[0].root == (*stored)->root ? seen[1] : seen[0];
  EXPECT_EQ(genuine.root, (*stored)->root);
  FetchAndCheckLog(genuine);
  // The forged tree differs only in its last leaf, so no proof links it to the genuine one.
  v1::GetConsistencyProofResponse proof;
  ASSERT_TRUE(ConsistencyProof(4, 9, &proof).ok());
  EXPECT_TRUE(consensus::VerifyConsistency(4, 9, *consensus::TreeHash(4, consensus::TileHashReader(
                                                                              9, StoredTileFetcher(node_->store()))),
                                           genuine.root, ProofOf(proof))
                  .ok());
  EXPECT_FALSE(consensus::VerifyConsistency(4, 9, *consensus::TreeHash(4, consensus::TileHashReader(
                                                                               9, StoredTileFetcher(node_->store()))),
                                            forged.root, ProofOf(proof))
                   .ok());
}

// ---- the publisher against a store that lies ---------------------------------------------------------

// Forwards to a MemoryAttestationStore, and alters what it returns on command.
class TamperingStore final : public storage::ForwardingAttestationStore {
 public:
  TamperingStore() : ForwardingAttestationStore(&inner) {}

  absl::StatusOr<storage::LogHead> GetLogHead() override {
    auto head = inner.GetLogHead();
    absl::MutexLock lock(&mu);
    if (head.ok() && alter_head_root) head->root[0] ^= 1;
    if (head.ok() && head_size) head->size = *head_size;
    return head;
  }
  absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count) override {
    auto entries = inner.LogEntries(first, count);
    absl::MutexLock lock(&mu);
    if (entries.ok() && altered_entry && *altered_entry >= first && *altered_entry < first + count) {
      (*entries)[*altered_entry - first] += "x";
    }
    return entries;
  }

  storage::MemoryAttestationStore inner;
  absl::Mutex mu;
  bool alter_head_root ABSL_GUARDED_BY(mu) = false;
  std::optional<uint64_t> head_size ABSL_GUARDED_BY(mu);
  std::optional<uint64_t> altered_entry ABSL_GUARDED_BY(mu);
};

class LogPublisherTest : public ::testing::Test {
 protected:
  // Appends `count` attestations to the store's log.
  void Append(storage::AttestationStore& target, int count) {
    storage::WriteBatch batch;
    batch.log_append = storage::LogAppend::kAll;
    for (int i = 0; i < count; ++i) {
      batch.attestations.push_back(storage::StoredAttestation{
          .attestation = consensus::SignAttestation(TestClaim(consensus::Cat("entry-", next_++)), federation_.alice),
          .received_unix = testing::kTestNow,
          .observed_key = std::nullopt,
          .origin = {}});
    }
    auto written = target.Write(batch);
    ASSERT_TRUE(written.ok()) << written.status();
  }
  LogPublisher MakePublisher(storage::AttestationStore* target, CheckpointServing serve_checkpoint = nullptr) {
    return LogPublisher(target, federation_.node_key, FixedNow,
                        LogPublisherOptions{.interval = absl::Hours(1), .serve_checkpoint = std::move(serve_checkpoint)});
  }

  Federation federation_;
  int next_ = 0;
};

TEST_F(LogPublisherTest, SignsEachNewSizeOnceAndServesTheLatest) {
  storage::MemoryAttestationStore store;
  LogPublisher publisher = MakePublisher(&store);
  EXPECT_EQ(publisher.Latest(), nullptr);
  EXPECT_FALSE(publisher.Health().has_checkpoint);
  ASSERT_TRUE(publisher.PublishNow().ok());
  ASSERT_NE(publisher.Latest(), nullptr);
  EXPECT_EQ(publisher.Latest()->size, 0u);
  Append(store, 3);
  ASSERT_TRUE(publisher.PublishNow().ok());
  auto latest = publisher.Latest();
  EXPECT_EQ(latest->size, 3u);
  EXPECT_EQ(latest->root, store.GetLogHead()->root);
  EXPECT_EQ(store.LatestCheckpoint().value()->note, *latest->note);
  EXPECT_EQ(store.LatestCheckpoint().value()->signed_unix, testing::kTestNow);
  ASSERT_TRUE(publisher.PublishNow().ok());
  EXPECT_EQ(publisher.Latest(), latest) << "nothing new: nothing signed";
  EXPECT_EQ(publisher.ForClient(), latest);
  EXPECT_EQ(publisher.Health().signed_size, 3u);
  EXPECT_EQ(publisher.Health().problem, "");
}

TEST_F(LogPublisherTest, AnAlteredEntryIsNotSigned) {
  TamperingStore store;
  LogPublisher publisher = MakePublisher(&store);
  Append(store, 5);
  ASSERT_TRUE(publisher.PublishNow().ok());
  const auto good = publisher.Latest();
  Append(store, 300);
  {
    absl::MutexLock lock(&store.mu);
    store.altered_entry = 270;
  }
  absl::Status s = publisher.PublishNow();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(Message(s), HasSubstr("log entry 270 does not hash to its leaf hash in tile/0/001.p/49"));
  EXPECT_EQ(publisher.Latest(), good) << "the last good checkpoint is still served";
  EXPECT_EQ(store.LatestCheckpoint().value()->size, 5u) << "nothing stored";
  LogHealth health = publisher.Health();
  EXPECT_TRUE(health.frozen);
  EXPECT_THAT(health.problem, HasSubstr("log entry 270"));
  // Frozen: even a healed store gets nothing signed until a restart checks again.
  {
    absl::MutexLock lock(&store.mu);
    store.altered_entry.reset();
  }
  s = publisher.PublishNow();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("stopped until the node restarts"));
  EXPECT_EQ(publisher.Latest(), good);
  LogPublisher restarted = MakePublisher(&store);
  ASSERT_TRUE(restarted.PublishNow().ok());
  EXPECT_EQ(restarted.Latest()->size, 305u);
}

TEST_F(LogPublisherTest, ARootThatTheTilesDoNotGiveIsNotSigned) {
  TamperingStore store;
  Append(store, 2);
  {
    absl::MutexLock lock(&store.mu);
    store.alter_head_root = true;
  }
  LogPublisher publisher = MakePublisher(&store);
  absl::Status s = publisher.PublishNow();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), HasSubstr("recomputed from the stored tiles"));
  EXPECT_EQ(publisher.Latest(), nullptr);
  auto stored = store.LatestCheckpoint();
  ASSERT_TRUE(stored.ok());
  EXPECT_FALSE(stored->has_value());

  // The HTTP side then has nothing to serve.
  LogHttp http(&store, &publisher);
  HttpReply reply = http.Checkpoint();
  ASSERT_TRUE(reply.ready());
  EXPECT_EQ(reply.response().status, 404);
  HttpReply tile = http.Tile("/log/tile/0/000.p/2");
  ASSERT_TRUE(tile.ready());
  EXPECT_EQ(tile.response().status, 404);
  LogProofs proofs(&store, &publisher);
  auto checkpoint = proofs.GetCheckpoint();
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(checkpoint.status()), HasSubstr("recomputed from the stored tiles"));
}

TEST_F(LogPublisherTest, ALogSmallerThanTheSignedSizeIsNeverSigned) {
  TamperingStore store;
  Append(store, 6);
  LogPublisher publisher = MakePublisher(&store);
  ASSERT_TRUE(publisher.PublishNow().ok());
  {
    absl::MutexLock lock(&store.mu);
    store.head_size = 4;
  }
  absl::Status s = publisher.PublishNow();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), HasSubstr("the log holds 4 entries but a checkpoint of size 6 was signed"));
  EXPECT_EQ(publisher.Latest()->size, 6u);
  // A fresh publisher (a restart) refuses too, from the stored checkpoint.
  LogPublisher restarted = MakePublisher(&store);
  EXPECT_EQ(restarted.PublishNow().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(restarted.Latest()->size, 6u);
}

TEST_F(LogPublisherTest, AnotherRootStoredForTheSizeStopsSigning) {
  storage::MemoryAttestationStore store;
  LogPublisher publisher = MakePublisher(&store);
  ASSERT_TRUE(publisher.PublishNow().ok());
  Append(store, 3);
  // Someone else signed size 3 with another root (a second writer, a restored database).
  consensus::MerkleHash other = store.GetLogHead()->root;
  other[0] ^= 1;
  ASSERT_TRUE(store.StoreCheckpoint({.size = 3, .root = other, .note = "elsewhere\n", .signed_unix = 1}).ok());
  absl::Status s = publisher.PublishNow();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_THAT(Message(s), HasSubstr("signing this one would fork the log"));
  EXPECT_EQ(publisher.Latest()->size, 0u);
  EXPECT_TRUE(publisher.Health().frozen);
  Append(store, 1);
  EXPECT_EQ(publisher.PublishNow().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(publisher.Latest()->size, 0u);
}

TEST_F(LogPublisherTest, AStoredCheckpointThatDoesNotVerifyIsNotServed) {
  storage::MemoryAttestationStore store;
  Append(store, 2);
  {
    const consensus::SecretKey replaced_key = testing::TestKey("node-1", "another seed");
    LogPublisher other_key(&store, replaced_key, FixedNow, LogPublisherOptions{.interval = absl::Hours(1), .serve_checkpoint = nullptr});
    ASSERT_TRUE(other_key.PublishNow().ok());
  }
  LogPublisher publisher = MakePublisher(&store);
  absl::Status s = publisher.PublishNow();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(Message(s), HasSubstr("was the node key replaced?"));
  EXPECT_EQ(publisher.Latest(), nullptr);
}

TEST_F(LogPublisherTest, StorageErrorsAreRetriedAndHideTheirDetails) {
  storage::testing::FaultInjectingStore store(std::make_unique<storage::MemoryAttestationStore>());
  Append(store, 2);
  LogPublisher publisher = MakePublisher(&store);
  store.FailReads(1, absl::UnavailableError("database is locked (SQL: SELECT ...) /var/lib/attest.db"));
  absl::Status s = publisher.PublishNow();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(s), ::testing::Not(HasSubstr("SQL")));
  EXPECT_THAT(Message(s), ::testing::Not(HasSubstr("/var/lib")));
  EXPECT_FALSE(publisher.Health().frozen);
  EXPECT_THAT(publisher.Health().problem, HasSubstr("UNAVAILABLE"));
  ASSERT_TRUE(publisher.PublishNow().ok());
  EXPECT_EQ(publisher.Latest()->size, 2u);
  EXPECT_EQ(publisher.Health().problem, "");

  // Corruption reported by the store does not heal by waiting.
  Append(store, 1);
  store.FailReads(1, absl::DataLossError("page 7 corrupt"));
  EXPECT_EQ(publisher.PublishNow().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(publisher.Health().frozen);
  EXPECT_EQ(publisher.Latest()->size, 2u);
}

TEST_F(LogPublisherTest, AnInjectedForgerAlternatesAForgedCheckpointThatIsNeverStored) {
  storage::MemoryAttestationStore store;
  Append(store, 3);
  LogPublisher publisher =
      MakePublisher(&store, ::attest::testing::ForgeEveryOtherCheckpoint(&store, federation_.node_key));
  EXPECT_EQ(publisher.ForClient(), nullptr) << "nothing signed yet: nothing to serve or forge";
  ASSERT_TRUE(publisher.PublishNow().ok());
  auto first = publisher.ForClient();
  auto second = publisher.ForClient();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(first, publisher.Latest());
  EXPECT_EQ(first->size, second->size);
  EXPECT_NE(first->root, second->root);
  EXPECT_EQ(publisher.ForClient(), first);
  for (const auto& checkpoint : {first, second}) {
    auto verified = consensus::VerifyCheckpoint(*checkpoint->note, federation_.node_key.public_key());
    ASSERT_TRUE(verified.ok()) << verified.status();
    EXPECT_EQ(verified->root, checkpoint->root);
  }
  EXPECT_EQ(store.LatestCheckpoint().value()->root, first->root);
}

}  // namespace
}  // namespace attest::server
