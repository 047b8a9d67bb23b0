// server/node and server/grpc_services: the real node (SQLite, gRPC) over an in-process channel and over
// loopback. Bad input of every class gets its specific code and message, stores nothing, and leaves the
// node answering.
#include "consensus/text.h"
#include "server/node.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/signed_note.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "storage/memory_attestation_store.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::attest::testing::WriteFileOrDie;
using ::attest::testing::WriteNodeDir;
using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(consensus::StdView(status.message())); }

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

// ---- Node::Open ------------------------------------------------------------------------------------

class NodeOpenTest : public ::testing::Test {
 protected:
  absl::Status OpenWith(const std::string& extra_node = "") {
    const std::string path = WriteNodeDir(dir_, federation_, extra_node);
    auto config = LoadNodeConfig(path);
    if (!config.ok()) return config.status();
    auto node = Node::Open(*config);
    return node.status();
  }
  TempDir dir_;
  Federation federation_;
};

TEST_F(NodeOpenTest, OpensAndCreatesTheDatabase) {
  ASSERT_TRUE(OpenWith().ok());
  EXPECT_TRUE(std::filesystem::exists(dir_.File("attest.db")));
}

TEST_F(NodeOpenTest, DatabaseInMissingDirectoryIsNotFound) {
  const std::string path = WriteNodeDir(dir_, federation_);
  auto config = LoadNodeConfig(path);
  ASSERT_TRUE(config.ok());
  config->database_path = dir_.File("no/such/dir/attest.db");
  auto node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(node.status()), HasSubstr("no/such/dir"));
}

TEST_F(NodeOpenTest, UnwritableDatabaseIsRefusedClearly) {
  // A directory where the database file should be: no user (root included) can open it as a database.
  std::filesystem::create_directory(dir_.File("attest.db"));
  absl::Status s = OpenWith();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(Message(s), HasSubstr("attest.db"));
}

TEST_F(NodeOpenTest, CorruptDatabaseIsDataLoss) {
  WriteFileOrDie(dir_.File("attest.db"), std::string(8192, '\x5a'));
  absl::Status s = OpenWith();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(Message(s), HasSubstr("attest.db"));
}

TEST_F(NodeOpenTest, PublicKeyAsNodeKeyIsRefused) {
  WriteNodeDir(dir_, federation_);
  WriteFileOrDie(dir_.File("node.sec"), federation_.node_key.public_key().ToString());
  auto config = LoadNodeConfig(dir_.File("node.toml"));
  ASSERT_TRUE(config.ok());
  auto node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(node.status()), HasSubstr("node.sec"));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("attest.db"))) << "nothing is created when the key is bad";
}

TEST_F(NodeOpenTest, GarbageKeyFileAndMissingKeyFileAreRefused) {
  WriteNodeDir(dir_, federation_);
  WriteFileOrDie(dir_.File("node.sec"), "this is not a key\n");
  auto config = LoadNodeConfig(dir_.File("node.toml"));
  ASSERT_TRUE(config.ok());
  auto node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(node.status()), HasSubstr("node.sec: "));
  EXPECT_THAT(Message(node.status()), ::testing::Not(HasSubstr(federation_.node_key.ExportText())));

  std::filesystem::remove(dir_.File("node.sec"));
  node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(node.status()), HasSubstr("node.sec: no such file"));
}

TEST_F(NodeOpenTest, BadPolicyFileNamesFileAndLine) {
  WriteNodeDir(dir_, federation_);
  WriteFileOrDie(dir_.File("policy.toml"), "quorum = 2\n[[operator]]\nname = \"a\nbuilders = []\n");
  auto config = LoadNodeConfig(dir_.File("node.toml"));
  ASSERT_TRUE(config.ok());
  auto node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(node.status()), HasSubstr(dir_.File("policy.toml") + ":3:"));

  WriteFileOrDie(dir_.File("policy.toml"), federation_.PolicyToml(4));
  node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_THAT(Message(node.status()), HasSubstr("policy.toml"));
  EXPECT_THAT(Message(node.status()), HasSubstr("quorum"));

  std::filesystem::remove(dir_.File("policy.toml"));
  node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(NodeOpenTest, PortInUseIsAClearStartError) {
  WriteNodeDir(dir_, federation_);
  auto config = LoadNodeConfig(dir_.File("node.toml"));
  ASSERT_TRUE(config.ok());
  auto first = Node::Open(*config);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE((*first)->Start().ok());
  config->grpc_address = (*first)->grpc_address();
  config->database_path = dir_.File("second.db");
  auto second = Node::Open(*config);
  ASSERT_TRUE(second.ok());
  absl::Status s = (*second)->Start();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(Message(s), HasSubstr((*first)->grpc_address()));
}

// A whole node on MemoryAttestationStore (NodeOptions::open_store): it takes attestations, answers
// their status and signs a checkpoint of its log, and leaves no database file behind.
TEST(NodeOnMemoryStoreTest, SubmitsReadsStatusAndSignsACheckpoint) {
  TempDir dir;
  Federation federation;
  auto config = LoadNodeConfig(WriteNodeDir(dir, federation));
  ASSERT_TRUE(config.ok()) << config.status();
  storage::MemoryAttestationStore* memory = nullptr;
  auto node = Node::Open(*config, NodeOptions{.clock = [] { return absl::Now(); },
                                              .open_store = [&memory](const NodeConfig&) -> absl::StatusOr<NodeStore> {
                                                auto store = std::make_unique<storage::MemoryAttestationStore>();
                                                memory = store.get();
                                                return NodeStore{.store = std::move(store), .sqlite = nullptr};
                                              },
                                              .serve_checkpoint = nullptr});
  ASSERT_TRUE(node.ok()) << node.status();
  ASSERT_TRUE((*node)->Start().ok());
  EXPECT_EQ((*node)->store(), memory);

  const auto claim = TestClaim("on-memory");
  v1::SubmitRequest submit;
  *submit.add_attestations() = Signed(claim, federation.alice);
  *submit.add_attestations() = Signed(claim, federation.bob);
  v1::SubmitResponse submitted;
  auto stub = v1::Attestations::NewStub((*node)->InProcessChannel());
  ASSERT_TRUE(stub->Submit(Context().get(), submit, &submitted).ok());
  ASSERT_EQ(submitted.results_size(), 2);
  EXPECT_EQ(submitted.results(0).outcome(), v1::SubmitResult::ACCEPTED);
  EXPECT_EQ(submitted.results(1).outcome(), v1::SubmitResult::ACCEPTED);

  v1::StatusRequest request;
  request.add_store_paths(claim.path.full());
  v1::StatusResponse status;
  ASSERT_TRUE(stub->Status(Context().get(), request, &status).ok());
  ASSERT_EQ(status.statuses_size(), 1);
  EXPECT_EQ(status.statuses(0).verdict(), v1::CONFIRMED);
  EXPECT_EQ(status.statuses(0).attestations_size(), 2);

  ASSERT_TRUE((*node)->log_publisher()->PublishNow().ok());
  std::shared_ptr<const PublishedCheckpoint> checkpoint = (*node)->log_publisher()->Latest();
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_EQ(checkpoint->size, 2u);
  auto note = consensus::SignedNote::Parse(*checkpoint->note);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_TRUE(consensus::VerifyNote(*note, federation.node_key.public_key()).ok());
  auto stored = memory->LatestCheckpoint();
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->size, 2u);

  (*node)->Shutdown(absl::Now() + absl::Seconds(5));
  EXPECT_FALSE(std::filesystem::exists(config->database_path));
}

// ---- the services --------------------------------------------------------------------------------

enum class Transport { kInProcess, kLoopback };

class NodeServiceTest : public ::testing::TestWithParam<Transport> {
 protected:
  void SetUp() override { StartNode(""); }

  void StartNode(const std::string& extra_node) {
    node_.reset();
    dir_ = std::make_unique<TempDir>();
    auto config = LoadNodeConfig(WriteNodeDir(*dir_, federation_, extra_node));
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    if (GetParam() == Transport::kInProcess) {
      channel_ = node_->InProcessChannel();
    } else {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(-1);
      channel_ = grpc::CreateCustomChannel(node_->grpc_address(), grpc::InsecureChannelCredentials(), args);
    }
    attestations_ = v1::Attestations::NewStub(channel_);
    disputes_ = v1::Disputes::NewStub(channel_);
    policy_ = v1::Policy::NewStub(channel_);
  }

  void TearDown() override {
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
  }

  grpc::Status Submit(const std::vector<v1::Attestation>& items, v1::SubmitResponse* response) {
    v1::SubmitRequest request;
    for (const auto& item : items) *request.add_attestations() = item;
    return attestations_->Submit(Context().get(), request, response);
  }

  v1::SubmitResult SubmitOne(const v1::Attestation& item) {
    v1::SubmitResponse response;
    grpc::Status status = Submit({item}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), 1);
    return response.results_size() == 1 ? response.results(0) : v1::SubmitResult{};
  }

  v1::PathStatus StatusOf(const consensus::StorePath& path) {
    v1::StatusRequest request;
    request.add_store_paths(path.full());
    v1::StatusResponse response;
    grpc::Status status = attestations_->Status(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.statuses_size(), 1);
    return response.statuses_size() == 1 ? response.statuses(0) : v1::PathStatus{};
  }

  // The node still serves: a fresh attestation is accepted and shows up.
  void ExpectStillServing() {
    static int counter = 0;
    auto claim = TestClaim(absl::StrCat("alive-", ++counter));
    EXPECT_EQ(SubmitOne(Signed(claim, federation_.carol)).outcome(), v1::SubmitResult::ACCEPTED);
    EXPECT_EQ(StatusOf(claim.path).verdict(), v1::PENDING);
  }

  int64_t StoredAttestations() {
    auto stats = node_->store()->Stats();
    EXPECT_TRUE(stats.ok());
    return stats.ok() ? stats->attestations : -1;
  }

  Federation federation_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Node> node_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::Disputes::Stub> disputes_;
  std::unique_ptr<v1::Policy::Stub> policy_;
};

INSTANTIATE_TEST_SUITE_P(Transports, NodeServiceTest, ::testing::Values(Transport::kInProcess, Transport::kLoopback),
                         [](const auto& info) {
                           return info.param == Transport::kInProcess ? std::string("InProcess")
                                                                      : std::string("Loopback");
                         });

TEST_P(NodeServiceTest, PendingConfirmedThenDisputedWithASignedRecord) {
  const auto claim = TestClaim("hello", "same bytes");
  const auto competing = TestClaim("hello", "other bytes");

  EXPECT_EQ(SubmitOne(Signed(claim, federation_.alice)).outcome(), v1::SubmitResult::ACCEPTED);
  EXPECT_EQ(StatusOf(claim.path).verdict(), v1::PENDING);

  EXPECT_EQ(SubmitOne(Signed(claim, federation_.bob)).outcome(), v1::SubmitResult::ACCEPTED);
  v1::PathStatus confirmed = StatusOf(claim.path);
  EXPECT_EQ(confirmed.verdict(), v1::CONFIRMED);
  ASSERT_EQ(confirmed.fingerprints_size(), 1);
  EXPECT_EQ(confirmed.fingerprints(0).fingerprint(), claim.Fingerprint());
  EXPECT_EQ(confirmed.attestations_size(), 2);
  EXPECT_EQ(confirmed.dispute_id(), "");

  EXPECT_EQ(SubmitOne(Signed(competing, federation_.carol)).outcome(), v1::SubmitResult::ACCEPTED);
  v1::PathStatus disputed = StatusOf(claim.path);
  EXPECT_EQ(disputed.verdict(), v1::DISPUTED);
  EXPECT_EQ(disputed.fingerprints_size(), 2);
  ASSERT_EQ(disputed.dispute_id(), consensus::DisputeId(claim.path));

  v1::PolicyInfo policy;
  ASSERT_TRUE(policy_->GetPolicy(Context().get(), v1::GetPolicyRequest{}, &policy).ok());
  auto node_key = consensus::PublicKey::Parse(policy.node_public_key());
  ASSERT_TRUE(node_key.ok()) << node_key.status();
  EXPECT_EQ(*node_key, federation_.node_key.public_key());

  v1::GetDisputeRequest get;
  get.set_id(disputed.dispute_id());
  v1::Dispute dispute;
  ASSERT_TRUE(disputes_->GetDispute(Context().get(), get, &dispute).ok());
  EXPECT_EQ(dispute.store_path(), claim.path.full());
  EXPECT_EQ(dispute.state(), "open");
  EXPECT_EQ(dispute.fingerprints_size(), 2);
  EXPECT_EQ(dispute.attestations_size(), 3);
  auto note = consensus::SignedNote::Parse(dispute.signed_record());
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_TRUE(consensus::VerifyNote(*note, *node_key).ok());
  EXPECT_THAT(note->text, HasSubstr("alice-ci"));
  EXPECT_THAT(note->text, HasSubstr("carol-home"));

  v1::ListDisputesResponse list;
  ASSERT_TRUE(disputes_->ListDisputes(Context().get(), v1::ListDisputesRequest{}, &list).ok());
  ASSERT_EQ(list.disputes_size(), 1);
  EXPECT_EQ(list.disputes(0).id(), dispute.id());
  EXPECT_EQ(list.next_page_token(), "");
}

TEST_P(NodeServiceTest, PolicyIsServedWithItsHash) {
  v1::PolicyInfo policy;
  ASSERT_TRUE(policy_->GetPolicy(Context().get(), v1::GetPolicyRequest{}, &policy).ok());
  EXPECT_EQ(policy.hash(), node_->policy().current()->Hash());
  EXPECT_EQ(policy.quorum(), 2);
  ASSERT_EQ(policy.operators_size(), 3);
  EXPECT_EQ(policy.operators(0).name(), "alice-ci");
  EXPECT_EQ(policy.operators(0).builders(0), federation_.alice.public_key().ToString());
  EXPECT_THAT(policy.canonical_text(), HasSubstr("attest-policy/v1\n"));
}

struct BadInput {
  std::string name;
  std::function<v1::Attestation(const Federation&)> make;
  grpc::StatusCode code;
  std::string expected;
};

std::vector<BadInput> BadInputs() {
  auto base = [](const Federation& f) { return Signed(TestClaim("bad-input"), f.alice); };
  auto with = [base](std::function<void(v1::Attestation&, const Federation&)> mutate) {
    return [base, mutate](const Federation& f) {
      v1::Attestation a = base(f);
      mutate(a, f);
      return a;
    };
  };
  return {
      {"malformed store path",
       with([](v1::Attestation& a, const Federation&) { a.mutable_path_info()->set_store_path("/nix/store/x-y"); }),
       grpc::StatusCode::INVALID_ARGUMENT, "store_path: "},
      {"bad hash encoding",
       with([](v1::Attestation& a, const Federation&) {
         a.mutable_path_info()->set_nar_hash("sha256:" + std::string(52, 'e'));
       }),
       grpc::StatusCode::INVALID_ARGUMENT, "nix32"},
      {"wrong hash length",
       with([](v1::Attestation& a, const Federation&) { a.mutable_path_info()->set_nar_hash("sha256:abcd"); }),
       grpc::StatusCode::INVALID_ARGUMENT, "nar_hash: "},
      {"NAR size 0", with([](v1::Attestation& a, const Federation&) { a.mutable_path_info()->set_nar_size(0); }),
       grpc::StatusCode::INVALID_ARGUMENT, "nar_size: "},
      {"absurd NAR size",
       with([](v1::Attestation& a, const Federation&) { a.mutable_path_info()->set_nar_size(~uint64_t{0}); }),
       grpc::StatusCode::INVALID_ARGUMENT, "nar_size: "},
      {"reference not a store path",
       with([](v1::Attestation& a, const Federation&) { a.mutable_path_info()->add_references("../etc"); }),
       grpc::StatusCode::INVALID_ARGUMENT, "references[0] is not a store path"},
      {"signature wrong length",
       with([](v1::Attestation& a, const Federation&) {
         a.set_signature("alice-builder-1:" + consensus::Base64Encode(std::vector<uint8_t>(65, 3)));
       }),
       grpc::StatusCode::INVALID_ARGUMENT, "65 bytes"},
      {"signature bad base64",
       with([](v1::Attestation& a, const Federation&) { a.set_signature("alice-builder-1:@@@@"); }),
       grpc::StatusCode::INVALID_ARGUMENT, "base64"},
      {"signature does not verify",
       with([](v1::Attestation& a, const Federation& f) {
         a.set_signature(Signed(TestClaim("bad-input", "other"), f.alice).signature());
       }),
       grpc::StatusCode::UNAUTHENTICATED, "does not verify"},
      {"key not in policy", [](const Federation& f) { return Signed(TestClaim("bad-input"), f.outsider); },
       grpc::StatusCode::UNAUTHENTICATED, "is not a builder key in the policy"},
  };
}

TEST_P(NodeServiceTest, EveryBadInputClassIsRejectedAloneAndStoresNothing) {
  const auto bad_path = TestStorePath("bad-input");
  int index = 0;
  for (const BadInput& bad : BadInputs()) {
    SCOPED_TRACE(bad.name);
    const int64_t before = StoredAttestations();
    auto good = Signed(TestClaim(absl::StrCat("good-", ++index)), federation_.bob);
    v1::SubmitResponse response;
    grpc::Status status = Submit({bad.make(federation_), good}, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results_size(), 2);
    EXPECT_EQ(response.results(0).outcome(), v1::SubmitResult::REJECTED);
    EXPECT_EQ(response.results(0).code(), static_cast<int>(bad.code));
    EXPECT_THAT(response.results(0).message(), HasSubstr("attestation 1 of 2: "));
    EXPECT_THAT(response.results(0).message(), HasSubstr(bad.expected));
    EXPECT_EQ(response.results(1).outcome(), v1::SubmitResult::ACCEPTED) << response.results(1).message();
    EXPECT_EQ(StoredAttestations(), before + 1);
    EXPECT_EQ(StatusOf(bad_path).verdict(), v1::UNKNOWN);
  }
  ExpectStillServing();
}

TEST_P(NodeServiceTest, DuplicatesWithinABatchAreRejected) {
  auto item = Signed(TestClaim("twice"), federation_.alice);
  v1::SubmitResponse response;
  ASSERT_TRUE(Submit({item, item}, &response).ok());
  EXPECT_EQ(response.results(0).outcome(), v1::SubmitResult::ACCEPTED);
  EXPECT_EQ(response.results(1).outcome(), v1::SubmitResult::REJECTED);
  EXPECT_EQ(response.results(1).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(response.results(1).message(), HasSubstr("duplicate of attestation 1"));
  EXPECT_EQ(StatusOf(TestStorePath("twice")).attestations_size(), 1);
  // Submitting again is idempotent.
  EXPECT_EQ(SubmitOne(item).outcome(), v1::SubmitResult::ALREADY_PRESENT);
}

TEST_P(NodeServiceTest, EmptyBatchIsInvalidArgument) {
  v1::SubmitResponse response;
  grpc::Status status = Submit({}, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("empty"));
  ExpectStillServing();
}

TEST_P(NodeServiceTest, BatchOverTheLimitIsResourceExhausted) {
  StartNode("max_batch = 5\n");
  std::vector<v1::Attestation> items;
  for (int i = 0; i < 6; ++i) items.push_back(Signed(TestClaim(absl::StrCat("over-", i)), federation_.alice));
  v1::SubmitResponse response;
  grpc::Status status = Submit(items, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(), "batch of 6 attestations exceeds the limit of 5: split it");
  EXPECT_EQ(StoredAttestations(), 0);
  items.pop_back();
  ASSERT_TRUE(Submit(items, &response).ok());
  EXPECT_EQ(StoredAttestations(), 5);
}

TEST_P(NodeServiceTest, OversizedMessageIsRefusedByGrpc) {
  StartNode("max_message_bytes = 65536\n");
  std::vector<v1::Attestation> items;
  for (int i = 0; i < 400; ++i) items.push_back(Signed(TestClaim(absl::StrCat("big-", i)), federation_.alice));
  v1::SubmitResponse response;
  grpc::Status status = Submit(items, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(StoredAttestations(), 0);
  ExpectStillServing();
}

TEST_P(NodeServiceTest, UnknownKeysAreStoredAsObservedWhenOptedIn) {
  StartNode("observe_unknown_keys = true\n");
  auto claim = TestClaim("observed");
  v1::Attestation item = Signed(claim, federation_.outsider);
  v1::SubmitResult result = SubmitOne(item);
  EXPECT_EQ(result.outcome(), v1::SubmitResult::REJECTED);
  EXPECT_EQ(result.code(), grpc::StatusCode::UNAUTHENTICATED);
  item.set_public_key(federation_.outsider.public_key().ToString());
  EXPECT_EQ(SubmitOne(item).outcome(), v1::SubmitResult::OBSERVED);
  EXPECT_EQ(StoredAttestations(), 1);
  v1::PathStatus status = StatusOf(claim.path);
  EXPECT_EQ(status.verdict(), v1::UNKNOWN) << "observed attestations never count";
  EXPECT_EQ(status.attestations_size(), 0);
}

TEST_P(NodeServiceTest, StatusOfMalformedPathIsInvalidArgument) {
  v1::StatusRequest request;
  request.add_store_paths(TestStorePath("ok").full());
  request.add_store_paths("/nix/store/nope");
  v1::StatusResponse response;
  grpc::Status status = attestations_->Status(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("store_paths[1]"));
  EXPECT_THAT(status.error_message(), HasSubstr("/nix/store/nope"));
  ExpectStillServing();
}

TEST_P(NodeServiceTest, StatusOfTooManyPathsIsResourceExhausted) {
  StartNode("max_status_paths = 3\n");
  v1::StatusRequest request;
  for (int i = 0; i < 4; ++i) request.add_store_paths(TestStorePath(absl::StrCat("s", i)).full());
  v1::StatusResponse response;
  EXPECT_EQ(attestations_->Status(Context().get(), request, &response).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_P(NodeServiceTest, StatusAnswerOverTheConfiguredSizeIsResourceExhaustedWithAHint) {
  StartNode("max_status_answer_bytes = 2048\n");
  v1::StatusRequest request;
  for (int i = 0; i < 40; ++i) request.add_store_paths(TestStorePath(absl::StrCat("s", i)).full());
  v1::StatusResponse response;
  grpc::Status status = attestations_->Status(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("more than the node's limit of 2048 bytes"));
  EXPECT_THAT(status.error_message(), HasSubstr("ask for fewer paths at a time"));
  request.mutable_store_paths()->DeleteSubrange(5, request.store_paths_size() - 5);
  EXPECT_TRUE(attestations_->Status(Context().get(), request, &response).ok());
  EXPECT_EQ(response.statuses_size(), 5);
  ExpectStillServing();
}

TEST_P(NodeServiceTest, UnknownDisputeIsNotFound) {
  v1::GetDisputeRequest get;
  get.set_id("d-0123456789abcdef0123456789abcdef");
  v1::Dispute dispute;
  grpc::Status status = disputes_->GetDispute(Context().get(), get, &dispute);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("d-0123456789abcdef0123456789abcdef"));
  get.set_id("'; DROP TABLE disputes; --");
  EXPECT_EQ(disputes_->GetDispute(Context().get(), get, &dispute).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ExpectStillServing();
}

TEST_P(NodeServiceTest, HealthCheckSaysServing) {
  grpc::GenericStub stub(channel_);
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  auto context = Context();
  stub.UnaryCall(context.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2)) << "HealthCheckResponse{status: SERVING}";
}

// Calls `method` with `bytes` as the request through a generic stub; `response` gets the answer's bytes.
grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method, const std::string& bytes,
                     std::string* response = nullptr) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer answer;
  std::promise<grpc::Status> done;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &answer,
                 [&done](grpc::Status status) { done.set_value(status); });
  grpc::Status status = done.get_future().get();
  if (response != nullptr && status.ok()) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(answer.Dump(&slices).ok());
    response->clear();
    for (const auto& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return status;
}

// gRPC C++ answers a request that does not parse with UNIMPLEMENTED and no message (callback API);
// the node maps it to INVALID_ARGUMENT saying what is wrong (server/request_parse_interceptor.h). This
// pins what server/README.md documents.
TEST_P(NodeServiceTest, MalformedRequestIsInvalidArgument) {
  // A truncated varint, and a field with a length running past the end: neither parses.
  for (const std::string& garbage : {std::string("\xff\xff\xff"), std::string("\x0a\x7f" "abc")}) {
    for (const std::string method : {"/attest.v1.Attestations/Submit", "/attest.v1.Attestations/Status",
                                     "/attest.v1.Disputes/ListDisputes", "/attest.v1.Disputes/ResolveDispute",
                                     "/attest.v1.Policy/GetPolicy", "/attest.v1.LogService/GetConsistencyProof",
                                     "/attest.v1.Federation/GetFederationStatus",
                                     "/attest.v1.Federation/ListSources"}) {
      grpc::Status status = RawCall(channel_, method, garbage);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method << ": " << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr(method)) << method;
      EXPECT_THAT(status.error_message(), HasSubstr("not a valid protobuf encoding")) << method;
    }
    // gRPC's own health service parses its requests itself and says so.
    grpc::Status health = RawCall(channel_, "/grpc.health.v1.Health/Check", garbage);
    EXPECT_EQ(health.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << health.error_message();
  }
  // A method the node does not have is still UNIMPLEMENTED; a well-formed request still works.
  EXPECT_EQ(RawCall(channel_, "/attest.v1.Attestations/NoSuchMethod", "").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  std::string answer;
  ASSERT_TRUE(RawCall(channel_, "/attest.v1.Policy/GetPolicy", "", &answer).ok());
  v1::PolicyInfo info;
  ASSERT_TRUE(info.ParseFromString(answer));
  EXPECT_EQ(info.operators_size(), 3);
  ExpectStillServing();
}

// A node without [gateway] relays no NARs: it has no sources, which is an answer, not an error.
TEST_P(NodeServiceTest, ListSourcesWithoutAGatewayIsEmpty) {
  auto stub = v1::Federation::NewStub(channel_);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::ListSourcesResponse response;
  grpc::Status status = stub->ListSources(&context, v1::ListSourcesRequest(), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.sources_size(), 0);
}

// ---- loopback only -------------------------------------------------------------------------------

class NodeSocketTest : public NodeServiceTest {};
INSTANTIATE_TEST_SUITE_P(Loopback, NodeSocketTest, ::testing::Values(Transport::kLoopback));

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Reads until the peer closes or 5 s pass.
std::string ReadAll(int fd) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char buffer[4096];
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

TEST_P(NodeSocketTest, GarbageBytesOnTheGrpcPortDoNotStopTheNode) {
  for (const std::string& garbage :
       {std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), std::string(100000, '\xff'),
        std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string(64, '\x00') + std::string(5000, '\x7f')}) {
    int fd = ConnectLoopback(node_->grpc_port());
    ASSERT_GE(fd, 0);
    ::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    ReadAll(fd);
    ::close(fd);
  }
  // A connection that says nothing and goes away.
  int idle = ConnectLoopback(node_->grpc_port());
  ASSERT_GE(idle, 0);
  ::close(idle);
  ExpectStillServing();
}

TEST_P(NodeSocketTest, HttpHealthzAnswersOk) {
  ASSERT_NE(node_->http_port(), 0);
  int fd = ConnectLoopback(node_->http_port());
  ASSERT_GE(fd, 0);
  // HTTP/1.1 keeps connections open; ask for the close so that reading to the end returns at once.
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer = ReadAll(fd);
  ::close(fd);
  EXPECT_THAT(answer, ::testing::StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(answer, ::testing::EndsWith("\r\n\r\nok\n"));
  EXPECT_THAT(answer, ::testing::HasSubstr("\r\nX-Content-Type-Options: nosniff\r\n"));

  fd = ConnectLoopback(node_->http_port());
  ::send(fd, "\x16\x03\x01garbage", 10, MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  ReadAll(fd);
  ::close(fd);
  fd = ConnectLoopback(node_->http_port());
  const std::string missing = "GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  ::send(fd, missing.data(), missing.size(), MSG_NOSIGNAL);
  EXPECT_THAT(ReadAll(fd), ::testing::StartsWith("HTTP/1.1 404"));
  ::close(fd);
}

TEST_P(NodeSocketTest, ShutdownDrainsCallsInFlight) {
  std::atomic<bool> stop{false};
  std::atomic<int> acknowledged{0};
  std::vector<std::string> acked_paths;
  std::mutex mu;
  std::thread loader([&] {
    for (int batch = 0; !stop.load(); ++batch) {
      std::vector<v1::Attestation> items;
      std::vector<std::string> paths;
      for (int i = 0; i < 100; ++i) {
        auto claim = TestClaim(absl::StrCat("drain-", batch, "-", i));
        items.push_back(Signed(claim, federation_.alice));
        paths.push_back(claim.path.full());
      }
      v1::SubmitResponse response;
      if (!Submit(items, &response).ok()) return;
      std::lock_guard lock(mu);
      acked_paths.insert(acked_paths.end(), paths.begin(), paths.end());
      ++acknowledged;
    }
  });
  ASSERT_TRUE([&] {
    for (int i = 0; i < 600 && acknowledged.load() < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return acknowledged.load() >= 3;
  }());
  const auto start = std::chrono::steady_clock::now();
  node_->Shutdown(absl::Now() + absl::Seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  stop = true;
  loader.join();
  std::lock_guard lock(mu);
  auto stats = node_->store()->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->attestations, static_cast<int64_t>(acked_paths.size()));
  node_.reset();
}

}  // namespace
}  // namespace attest::server
