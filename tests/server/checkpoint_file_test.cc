// server/checkpoint_file: the newest signed checkpoint kept beside the database, and a node that
// refuses to start a second history under its key (an emptied, replaced or rolled-back database) or
// to acknowledge writes its log can no longer sign. Real nodes on SQLite files in a temp dir.
#include "consensus/text.h"
#include "server/checkpoint_file.h"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "consensus/checkpoint.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/node.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::ReadFileOrDie;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::WriteFileOrDie;
using ::attest::testing::WriteNodeDir;
using ::testing::HasSubstr;

// Checkpoints are signed only when a test asks, so sizes are exact.
constexpr std::string_view kManualPublishing = "\n[log]\ncheckpoint_interval = \"1h\"\n";

std::string Message(const absl::Status& status) { return std::string(consensus::StdView(status.message())); }

TEST(SignedCheckpointFileTest, RecordsAndReadsBack) {
  TempDir dir;
  const SignedCheckpointFile file(SignedCheckpointFile::PathFor(dir.File("attest.db")));
  EXPECT_EQ(file.path(), dir.File("attest.db.signed-checkpoint"));
  auto missing = file.Read();
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(file.Record("first\n").ok());
  ASSERT_TRUE(file.Record("second note\n").ok());
  EXPECT_EQ(file.Read().value().value_or(""), "second note\n");
  EXPECT_FALSE(std::filesystem::exists(file.path() + ".tmp"));

  WriteFileOrDie(file.path(), "");
  EXPECT_EQ(file.Read().status().code(), absl::StatusCode::kDataLoss);
  const SignedCheckpointFile nowhere(dir.File("no-such-dir/attest.db.signed-checkpoint"));
  EXPECT_EQ(nowhere.Record("x").code(), absl::StatusCode::kNotFound);
}

class RecordedCheckpointNodeTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteNodeDir(dir_, federation_, std::string(kManualPublishing)); }
  void TearDown() override { Stop(); }

  absl::Status Start() {
    auto config = LoadNodeConfig(dir_.File("node.toml"));
    if (!config.ok()) return config.status();
    auto node = Node::Open(*config);
    if (!node.ok()) return node.status();
    node_ = *std::move(node);
    if (absl::Status s = node_->Start(); !s.ok()) return s;
    stub_ = v1::Attestations::NewStub(node_->InProcessChannel());
    return absl::OkStatus();
  }
  void Stop() {
    if (!node_) return;
    node_->Shutdown(absl::Now() + absl::Seconds(5));
    node_.reset();
  }
  grpc::Status Submit(std::string_view prefix, int count, v1::SubmitResponse* response) {
    v1::SubmitRequest request;
    for (int i = 0; i < count; ++i) {
      *request.add_attestations() = Signed(TestClaim(consensus::Cat(prefix, "-", i)), federation_.alice);
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->Submit(&context, request, response);
  }
  // Submits `count` attestations and signs a checkpoint of the log.
  void SubmitAndPublish(std::string_view prefix, int count) {
    v1::SubmitResponse response;
    grpc::Status status = Submit(prefix, count, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    absl::Status published = node_->log_publisher()->PublishNow();
    ASSERT_TRUE(published.ok()) << published;
  }
  uint64_t RecordedSize() {
    auto note = SignedCheckpointFile(SignedCheckpointFile::PathFor(dir_.File("attest.db"))).Read();
    if (!note.ok() || !note->has_value()) return 0;
    auto checkpoint = consensus::VerifyCheckpoint(**note, federation_.node_key.public_key());
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
    return checkpoint.ok() ? checkpoint->size : 0;
  }
  void RemoveDatabase() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(dir_.File(consensus::Cat("attest.db", suffix)));
  }

  Federation federation_;
  TempDir dir_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<v1::Attestations::Stub> stub_;
};

TEST_F(RecordedCheckpointNodeTest, EachSignedCheckpointIsRecordedBesideTheDatabase) {
  ASSERT_TRUE(Start().ok());
  EXPECT_EQ(RecordedSize(), 0u) << "the empty log's checkpoint is recorded at start";
  ASSERT_TRUE(std::filesystem::exists(dir_.File("attest.db.signed-checkpoint")));
  SubmitAndPublish("a", 5);
  EXPECT_EQ(RecordedSize(), 5u);
  EXPECT_EQ(ReadFileOrDie(dir_.File("attest.db.signed-checkpoint")), *node_->log_publisher()->Latest()->note);
  Stop();
  ASSERT_TRUE(Start().ok()) << "a restart on the same database goes on";
  SubmitAndPublish("b", 2);
  EXPECT_EQ(RecordedSize(), 7u);
}

// Issue: a node whose database file was emptied started a fresh log under the same key.
TEST_F(RecordedCheckpointNodeTest, AnEmptiedDatabaseDoesNotStartAFreshLogUnderTheSameKey) {
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("a", 5);
  Stop();
  RemoveDatabase();
  absl::Status refused = Start();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(Message(refused), HasSubstr("holds a log of 0 entries and no signed checkpoint"));
  EXPECT_THAT(Message(refused), HasSubstr("signed a checkpoint of size 5"));
  EXPECT_THAT(Message(refused), HasSubstr("backup"));
  EXPECT_THAT(Message(refused), HasSubstr("attest.db.signed-checkpoint"));
}

TEST_F(RecordedCheckpointNodeTest, ADatabaseRestoredFromAnOlderBackupIsRefused) {
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("a", 3);
  Stop();
  std::filesystem::copy_file(dir_.File("attest.db"), dir_.File("backup.db"));
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("b", 4);
  Stop();
  RemoveDatabase();
  std::filesystem::copy_file(dir_.File("backup.db"), dir_.File("attest.db"));
  absl::Status refused = Start();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(Message(refused), HasSubstr("signed up to size 3, but this node signed a checkpoint of size 7"));
}

TEST_F(RecordedCheckpointNodeTest, AnotherNodesDatabaseUnderThisKeyIsRefused) {
  // Another log of the same size signed by the same key (e.g. a second node set up with a copy of the
  // key): the roots differ.
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("mine", 3);
  Stop();
  const std::string recorded = ReadFileOrDie(dir_.File("attest.db.signed-checkpoint"));
  RemoveDatabase();
  std::filesystem::remove(dir_.File("attest.db.signed-checkpoint"));
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("theirs", 3);
  Stop();
  WriteFileOrDie(dir_.File("attest.db.signed-checkpoint"), recorded);
  absl::Status refused = Start();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(Message(refused), HasSubstr("holds another log"));

  // A longer other log does not extend it either.
  std::filesystem::remove(dir_.File("attest.db.signed-checkpoint"));
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("more", 2);
  Stop();
  WriteFileOrDie(dir_.File("attest.db.signed-checkpoint"), recorded);
  refused = Start();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(Message(refused), HasSubstr("does not extend the one of size 3"));
}

TEST_F(RecordedCheckpointNodeTest, ADatabaseFromBeforeTheFileStartsAndGetsRecorded) {
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("a", 4);
  Stop();
  std::filesystem::remove(dir_.File("attest.db.signed-checkpoint"));
  ASSERT_TRUE(Start().ok());
  EXPECT_EQ(RecordedSize(), 4u);
}

TEST_F(RecordedCheckpointNodeTest, ACheckpointFileOfAnotherKeyIsRefused) {
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("a", 2);
  Stop();
  auto foreign = consensus::SignCheckpoint(
      consensus::Checkpoint{.origin = "node-1", .size = 2, .root = consensus::MerkleHash{}},
      ::attest::testing::TestKey("node-1", "another seed"));
  ASSERT_TRUE(foreign.ok());
  WriteFileOrDie(dir_.File("attest.db.signed-checkpoint"), foreign->Serialize());
  absl::Status refused = Start();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(Message(refused), HasSubstr("does not verify with the node key node-1"));
}

// Issue: when the log could no longer publish, the node still acknowledged submissions that would
// never reach a signed checkpoint.
TEST_F(RecordedCheckpointNodeTest, WritesAreRefusedWhileTheLogCannotExtendItsSignedCheckpoint) {
  ASSERT_TRUE(Start().ok());
  SubmitAndPublish("a", 3);
  v1::SubmitResponse response;
  ASSERT_TRUE(Submit("b", 1, &response).ok());
  // Another root for the new size, stored behind the publisher's back: signing would fork the log,
  // so publishing stops for good.
  auto other = consensus::SignCheckpoint(
      consensus::Checkpoint{.origin = "node-1", .size = 4, .root = consensus::MerkleHash{}}, federation_.node_key);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(node_->store()
                  ->StoreCheckpoint(storage::StoredCheckpoint{
                      .size = 4, .root = consensus::MerkleHash{}, .note = other->Serialize(), .signed_unix = 1})
                  .ok());
  EXPECT_FALSE(node_->log_publisher()->PublishNow().ok());
  ASSERT_TRUE(node_->log_publisher()->Health().frozen);

  const int64_t stored = node_->store()->Stats()->attestations;
  grpc::Status refused = Submit("c", 2, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("cannot extend its signed checkpoint"));
  EXPECT_EQ(node_->store()->Stats()->attestations, stored) << "nothing of the refused batch is stored";
}

}  // namespace
}  // namespace attest::server
