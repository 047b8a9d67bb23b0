// Realisation attestations (consensus/realisation.h) on a real node (SQLite, gRPC over an in-process
// channel): Submit accepts, checks and stores them with the attestations, Status answers realisation
// keys, and a restarted node keeps them. Replication and restore are in realisation_replication_test.cc.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "consensus/log_entry.h"
#include "consensus/realisation.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"
#include "server/node.h"
#include "server/node_config.h"
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
using ::attest::testing::WriteFileOrDie;
using ::attest::testing::WriteNodeDir;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return context;
}

class RealisationNodeTest : public ::testing::Test {
 protected:
  void SetUp() override { config_path_ = WriteNodeDir(dir_, federation_); }

  void Start(const std::string& extra_node = "") {
    if (!extra_node.empty()) config_path_ = WriteNodeDir(dir_, federation_, extra_node);
    auto config = LoadNodeConfig(config_path_);
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    stub_ = v1::Attestations::NewStub(node_->InProcessChannel());
  }

  grpc::Status Submit(const std::vector<v1::RealisationAttestation>& realisations,
                      const std::vector<v1::Attestation>& attestations, v1::SubmitResponse* response) {
    v1::SubmitRequest request;
    for (const auto& a : attestations) *request.add_attestations() = a;
    for (const auto& r : realisations) *request.add_realisations() = r;
    return stub_->Submit(Context().get(), request, response);
  }

  v1::SubmitResponse SubmitOk(const std::vector<v1::RealisationAttestation>& realisations,
                              const std::vector<v1::Attestation>& attestations = {}) {
    v1::SubmitResponse response;
    grpc::Status status = Submit(realisations, attestations, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  v1::StatusResponse StatusOf(const std::vector<std::string>& entries, grpc::Status* status_out = nullptr) {
    v1::StatusRequest request;
    for (const std::string& entry : entries) request.add_store_paths(entry);
    v1::StatusResponse response;
    grpc::Status status = stub_->Status(Context().get(), request, &response);
    if (status_out != nullptr) {
      *status_out = status;
    } else {
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    return response;
  }

  v1::PathStatus StatusOf(const consensus::RealisationKey& key) {
    v1::StatusResponse response = StatusOf(std::vector<std::string>{key.ToString()});
    return response.statuses_size() == 1 ? response.statuses(0) : v1::PathStatus{};
  }

  size_t StoredCount(const consensus::RealisationKey& key) {
    auto stored = node_->store()->RealisationsFor(std::vector<consensus::RealisationKey>{key});
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() && stored->size() == 1 ? (*stored)[0].size() : 0;
  }

  TempDir dir_;
  Federation federation_;
  std::string config_path_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<v1::Attestations::Stub> stub_;
};

// The answer's signatures verify over its fingerprint with the signers' keys.
void ExpectSignaturesVerify(const v1::PathStatus& status, const std::vector<const consensus::SecretKey*>& keys) {
  for (const v1::CountedAttestation& counted : status.attestations()) {
    auto signature = consensus::Signature::Parse(counted.signature());
    ASSERT_TRUE(signature.ok()) << signature.status();
    const std::string& fingerprint = status.fingerprints(counted.fingerprint_index()).fingerprint();
    bool verified = false;
    for (const consensus::SecretKey* key : keys) {
      if (key->public_key().name() == signature->key_name) {
        verified = key->public_key().VerifyBytes(fingerprint, signature->bytes);
      }
    }
    EXPECT_TRUE(verified) << counted.signature();
  }
}

TEST_F(RealisationNodeTest, BothFormatsFromThreeOperatorsAreConfirmed) {
  Start();
  const consensus::Realisation old_format = RealisationOf(DrvHashKey("ca-top"), OutPath("ca-top"));
  const consensus::RealisationKey trace_key = DrvPathKey("hello");
  const consensus::Realisation new_format = RealisationOf(trace_key, OutPath("hello"));
  std::vector<v1::RealisationAttestation> items;
  for (const consensus::SecretKey* key : {&federation_.alice, &federation_.bob, &federation_.carol}) {
    items.push_back(SignedRealisation(old_format, *key));
    items.push_back(SignedRealisation(new_format, *key));
  }
  // A request of realisations only.
  v1::SubmitResponse response = SubmitOk(items);
  ASSERT_EQ(response.results_size(), 6);
  for (const v1::SubmitResult& result : response.results()) {
    EXPECT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.message();
  }
  EXPECT_EQ(StoredCount(old_format.key), 3u);
  EXPECT_EQ(StoredCount(trace_key), 3u);

  for (const consensus::Realisation* claim : {&old_format, &new_format}) {
    const v1::PathStatus status = StatusOf(claim->key);
    EXPECT_EQ(status.store_path(), claim->key.ToString());
    EXPECT_EQ(status.verdict(), v1::CONFIRMED) << status.quorum_explanation();
    ASSERT_EQ(status.fingerprints_size(), 1);
    EXPECT_EQ(status.fingerprints(0).fingerprint(), claim->Fingerprint());
    EXPECT_THAT(status.fingerprints(0).operators(), UnorderedElementsAre("alice-ci", "bob-labs", "carol-home"));
    EXPECT_EQ(status.attestations_size(), 3);
    EXPECT_EQ(status.policy_hash(), federation_.MakePolicy().Hash());
    EXPECT_EQ(status.quorum(), 2);
    EXPECT_EQ(status.rule(), "default");
    ExpectSignaturesVerify(status, {&federation_.alice, &federation_.bob, &federation_.carol});
  }

  // Sending them again changes nothing.
  response = SubmitOk(items);
  for (const v1::SubmitResult& result : response.results()) {
    EXPECT_EQ(result.outcome(), v1::SubmitResult::ALREADY_PRESENT) << result.message();
  }
  EXPECT_EQ(StoredCount(trace_key), 3u);
}

TEST_F(RealisationNodeTest, PathsAndKeysMixInOneRequestAndRepeatsAreAnsweredByReference) {
  Start();
  const consensus::PathInfo path = TestClaim("plain");
  const consensus::RealisationKey trace_key = DrvPathKey("hello");
  const consensus::Realisation claim = RealisationOf(trace_key, OutPath("hello"));
  v1::SubmitResponse response =
      SubmitOk({SignedRealisation(claim, federation_.alice), SignedRealisation(claim, federation_.bob)},
               {Signed(path, federation_.alice)});
  ASSERT_EQ(response.results_size(), 3);
  for (const v1::SubmitResult& result : response.results()) {
    EXPECT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.message();
  }

  // The base-name spelling of a build-trace key is answered under the canonical text.
  const std::string base_name_key = consensus::Cat(trace_key.drv_path().base_name(), "^out");
  v1::StatusResponse answer = StatusOf({trace_key.ToString(), path.path.full(), base_name_key, trace_key.ToString()});
  ASSERT_EQ(answer.statuses_size(), 4);
  EXPECT_EQ(answer.statuses(0).verdict(), v1::CONFIRMED);
  EXPECT_EQ(answer.statuses(0).fingerprints(0).fingerprint(), claim.Fingerprint());
  EXPECT_EQ(answer.statuses(1).store_path(), path.path.full());
  EXPECT_EQ(answer.statuses(1).verdict(), v1::PENDING);
  EXPECT_EQ(answer.statuses(1).fingerprints(0).fingerprint(), path.Fingerprint());
  EXPECT_EQ(answer.statuses(2).store_path(), trace_key.ToString());
  EXPECT_EQ(answer.statuses(2).verdict(), v1::CONFIRMED);
  EXPECT_EQ(answer.statuses(3).repeat_of(), 0);
  EXPECT_EQ(answer.statuses(3).verdict(), v1::CONFIRMED);
  EXPECT_EQ(answer.statuses(3).attestations_size(), 0);
}

TEST_F(RealisationNodeTest, TwoOutputPathsAreDisputedWithBothFingerprints) {
  Start();
  const consensus::RealisationKey key = DrvHashKey("nondeterministic");
  const consensus::Realisation one = RealisationOf(key, OutPath("nondeterministic", "one"));
  const consensus::Realisation other = RealisationOf(key, OutPath("nondeterministic", "other"));
  SubmitOk({SignedRealisation(one, federation_.alice), SignedRealisation(one, federation_.bob),
            SignedRealisation(other, federation_.carol)});
  const v1::PathStatus status = StatusOf(key);
  EXPECT_EQ(status.verdict(), v1::DISPUTED);
  ASSERT_EQ(status.fingerprints_size(), 2);
  EXPECT_EQ(status.fingerprints(0).fingerprint(), one.Fingerprint());  // two operators lead
  EXPECT_EQ(status.fingerprints(1).fingerprint(), other.Fingerprint());
  EXPECT_THAT(status.fingerprints(1).operators(), UnorderedElementsAre("carol-home"));
  EXPECT_EQ(status.attestations_size(), 3);
  ExpectSignaturesVerify(status, {&federation_.alice, &federation_.bob, &federation_.carol});
}

TEST_F(RealisationNodeTest, OneOperatorIsPendingAndAnUnseenKeyUnknown) {
  Start();
  const consensus::Realisation claim = RealisationOf(DrvHashKey("lonely"), OutPath("lonely"));
  SubmitOk({SignedRealisation(claim, federation_.alice)});
  const v1::PathStatus pending = StatusOf(claim.key);
  EXPECT_EQ(pending.verdict(), v1::PENDING);
  EXPECT_EQ(pending.fingerprints(0).fingerprint(), claim.Fingerprint());
  EXPECT_FALSE(pending.quorum_explanation().empty());
  const v1::PathStatus unknown = StatusOf(DrvPathKey("never-built"));
  EXPECT_EQ(unknown.verdict(), v1::UNKNOWN);
  EXPECT_EQ(unknown.store_path(), DrvPathKey("never-built").ToString());
  EXPECT_EQ(unknown.fingerprints_size(), 0);
}

TEST_F(RealisationNodeTest, BadRealisationsAreRejectedEachWithItsMessageAndNothingOfThemIsStored) {
  Start();
  const consensus::RealisationKey hash_key = DrvHashKey("ca-base");
  const consensus::Realisation good = RealisationOf(hash_key, OutPath("ca-base"));

  // 2: not the canonical bytes (a space after the first brace).
  v1::RealisationAttestation spaced = SignedRealisation(good, federation_.bob);
  spaced.set_fingerprint(absl::StrCat("{ ", good.Fingerprint().substr(1)));
  // 3: a key that is not one (upper-case hex).
  const std::string bad_key_fingerprint =
      consensus::Cat("{\"dependentRealisations\":{},\"id\":\"sha256:", std::string(64, 'A'), "!out\",\"outPath\":\"",
                   OutPath("ca-base").base_name(), "\"}");
  v1::RealisationAttestation bad_key = SignedRealisation(good, federation_.bob);
  bad_key.set_fingerprint(bad_key_fingerprint);
  // 4: a build-trace key whose output is not named as its derivation names it.
  const consensus::RealisationKey trace_key = DrvPathKey("hello");
  const std::string misnamed_fingerprint =
      consensus::Cat("{\"key\":{\"drvPath\":\"", trace_key.drv_path().base_name(),
                   "\",\"outputName\":\"out\"},\"value\":{\"outPath\":\"", OutPath("goodbye").base_name(), "\"}}");
  v1::RealisationAttestation misnamed = SignedRealisation(good, federation_.bob);
  misnamed.set_fingerprint(misnamed_fingerprint);
  // 5: signed over the 2.8 fingerprint, sent with the 2.35 fingerprint of the same output.
  const consensus::Realisation trace_claim = RealisationOf(trace_key, OutPath("hello"));
  const consensus::Realisation hash_twin = RealisationOf(DrvHashKey("hello"), OutPath("hello"));
  v1::RealisationAttestation other_format = SignedRealisation(hash_twin, federation_.carol);
  other_format.set_fingerprint(trace_claim.Fingerprint());
  // 6: a key outside the policy.
  const consensus::Realisation unknown_claim = RealisationOf(DrvHashKey("foreign"), OutPath("foreign"));
  // 7: metadata naming another output than the key's.
  v1::RealisationAttestation wrong_output = SignedRealisation(RealisationOf(DrvHashKey("meta"), OutPath("meta")),
                                                              federation_.alice);
  wrong_output.mutable_metadata()->set_output_name("dev");
  // 8: the first one again.

  v1::SubmitResponse response = SubmitOk(
      {SignedRealisation(good, federation_.alice), spaced, bad_key, misnamed, other_format,
       SignedRealisation(unknown_claim, federation_.outsider), wrong_output, SignedRealisation(good, federation_.alice)});
  ASSERT_EQ(response.results_size(), 8);
  EXPECT_EQ(response.results(0).outcome(), v1::SubmitResult::ACCEPTED) << response.results(0).message();
  struct Expected {
    int index;
    grpc::StatusCode code;
    std::string text;
  };
  for (const Expected& expected : std::vector<Expected>{
           {1, grpc::INVALID_ARGUMENT, "realisation 2 of 8: fingerprint: "},
           {2, grpc::INVALID_ARGUMENT, "realisation 3 of 8: fingerprint: "},
           {3, grpc::INVALID_ARGUMENT, "is not named"},
           {4, grpc::UNAUTHENTICATED, "realisation 5 of 8: signature does not verify with key 'carol-builder-1'"},
           {5, grpc::UNAUTHENTICATED, "realisation 6 of 8: key 'outsider-1' is not a builder key in the policy"},
           {6, grpc::INVALID_ARGUMENT, "realisation 7 of 8: metadata: "},
           {7, grpc::INVALID_ARGUMENT, "realisation 8 of 8: duplicate of realisation 1"}}) {
    const v1::SubmitResult& result = response.results(expected.index);
    EXPECT_EQ(result.outcome(), v1::SubmitResult::REJECTED) << expected.index;
    EXPECT_EQ(result.code(), expected.code) << result.message();
    EXPECT_THAT(result.message(), HasSubstr(expected.text));
  }
  EXPECT_THAT(response.results(4).message(), HasSubstr(trace_key.ToString()));

  // Only the good one is stored; the node goes on answering.
  EXPECT_EQ(StoredCount(hash_key), 1u);
  EXPECT_EQ(StoredCount(trace_key), 0u);
  EXPECT_EQ(StoredCount(unknown_claim.key), 0u);
  EXPECT_EQ(StoredCount(DrvHashKey("meta")), 0u);
  EXPECT_EQ(StatusOf(hash_key).verdict(), v1::PENDING);
  EXPECT_EQ(StatusOf(trace_key).verdict(), v1::UNKNOWN);
}

TEST_F(RealisationNodeTest, RequestLimitsCountRealisations) {
  Start("max_batch = 2\n");
  const consensus::Realisation claim = RealisationOf(DrvHashKey("limited"), OutPath("limited"));
  v1::SubmitResponse response;
  grpc::Status status = Submit({SignedRealisation(claim, federation_.alice), SignedRealisation(claim, federation_.bob)},
                               {Signed(TestClaim("limited"), federation_.alice)}, &response);
  EXPECT_EQ(status.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("1 attestations and 2 realisations exceeds the limit of 2"));
  EXPECT_EQ(StoredCount(claim.key), 0u);

  status = Submit({}, {}, &response);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("at least one attestation or realisation"));
}

TEST_F(RealisationNodeTest, AMalformedKeyInAStatusRequestIsNamed) {
  Start();
  grpc::Status status;
  StatusOf({TestClaim("fine").path.full(), "sha256:1234!out"}, &status);
  EXPECT_EQ(status.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("store_paths[1]: not a realisation key: "));
}

TEST_F(RealisationNodeTest, UnknownKeysAreObservedWhenTheNodeObservesAndNeverCount) {
  Start("observe_unknown_keys = true\n");
  const consensus::Realisation claim = RealisationOf(DrvHashKey("watched"), OutPath("watched"));
  v1::RealisationAttestation observed = SignedRealisation(claim, federation_.outsider);
  observed.set_public_key(federation_.outsider.public_key().ToString());
  v1::RealisationAttestation carries_none = SignedRealisation(claim, federation_.outsider);
  v1::SubmitResponse response =
      SubmitOk({observed, SignedRealisation(claim, federation_.alice)});
  ASSERT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.results(0).outcome(), v1::SubmitResult::OBSERVED) << response.results(0).message();
  EXPECT_EQ(response.results(1).outcome(), v1::SubmitResult::ACCEPTED) << response.results(1).message();
  EXPECT_EQ(StoredCount(claim.key), 2u);
  // The observed signer is no operator: one operator only.
  EXPECT_EQ(StatusOf(claim.key).verdict(), v1::PENDING);

  // Without its public key, an unknown key's realisation cannot be checked at all.
  response = SubmitOk({carries_none});
  EXPECT_EQ(response.results(0).outcome(), v1::SubmitResult::REJECTED);
  EXPECT_EQ(response.results(0).code(), grpc::UNAUTHENTICATED);
  EXPECT_THAT(response.results(0).message(), HasSubstr("such realisations for observation only when they carry public_key"));
  // Nor with another key's public half.
  v1::RealisationAttestation mismatched = SignedRealisation(claim, federation_.outsider);
  mismatched.set_public_key(::attest::testing::TestKey("someone-else").public_key().ToString());
  response = SubmitOk({mismatched});
  EXPECT_EQ(response.results(0).outcome(), v1::SubmitResult::REJECTED);
  EXPECT_THAT(response.results(0).message(), HasSubstr("public_key is key 'someone-else'"));
  EXPECT_EQ(StoredCount(claim.key), 2u);
}

TEST_F(RealisationNodeTest, ARestartedNodeKeepsThemAndItsLogHoldsThem) {
  Start();
  const consensus::Realisation claim = RealisationOf(DrvPathKey("kept"), OutPath("kept"));
  SubmitOk({SignedRealisation(claim, federation_.alice), SignedRealisation(claim, federation_.carol)},
           {Signed(TestClaim("kept-too"), federation_.bob)});
  ASSERT_EQ(StatusOf(claim.key).verdict(), v1::CONFIRMED);
  stub_.reset();
  node_.reset();

  Start();
  EXPECT_EQ(StoredCount(claim.key), 2u);
  const v1::PathStatus status = StatusOf(claim.key);
  EXPECT_EQ(status.verdict(), v1::CONFIRMED);
  EXPECT_EQ(status.fingerprints(0).fingerprint(), claim.Fingerprint());
  // The log: the attestation, then the two realisations (storage/store_writer.h, LogAppend::kAll).
  auto head = node_->store()->GetLogHead();
  ASSERT_TRUE(head.ok());
  ASSERT_EQ(head->size, 3u);
  auto entries = node_->store()->LogEntries(0, 3);
  ASSERT_TRUE(entries.ok());
  std::vector<consensus::LogEntryKind> kinds;
  for (const std::string& entry : *entries) {
    auto parsed = consensus::ParseLogEntry(entry);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    kinds.push_back(parsed->kind);
    if (parsed->kind == consensus::LogEntryKind::kRealisation) {
      EXPECT_EQ(parsed->realisation->attestation.claim, claim);
      EXPECT_EQ(parsed->realisation->received_unix, status.attestations(0).received_unix());
    }
  }
  EXPECT_EQ(kinds, (std::vector<consensus::LogEntryKind>{consensus::LogEntryKind::kAttestation,
                                                         consensus::LogEntryKind::kRealisation,
                                                         consensus::LogEntryKind::kRealisation}));
}

// A realisation Nix 2.8 signed itself (shared/reference/nix-e2e/f_ca_derivation.txt: the `nix realisation
// info --json` of ca-base, checked there with Nix's key builderA-1), accepted by a node whose policy
// names that key.
TEST_F(RealisationNodeTest, ARealisationNixSignedIsAccepted) {
  constexpr char kNixKey[] = "builderA-1:3f3VVuiNReqHgFevpiPy0QOWYjcpXcaC0wFyTy+lJ5M=";
  constexpr char kFingerprint[] =
      "{\"dependentRealisations\":{},\"id\":\"sha256:881aa2e7fc72fca6d3f39b12573752d7a82a347ee9c3d6b458482436800b3e8a"
      "!out\",\"outPath\":\"n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base\"}";
  constexpr char kSignature[] =
      "builderA-1:G9kPJ/KQy1/PP3G0HLopw+fzU29OlwrXllNYYyORklXnfv8BGImpMlNSeTofFlSK5OGn60tqaiueqjBMKW3LBQ==";
  WriteFileOrDie(dir_.File("policy.toml"),
                 absl::StrCat(federation_.PolicyToml(1), "[[operator]]\nname = \"nix-a\"\nbuilders = [\"", kNixKey,
                              "\"]\n"));
  Start();
  v1::RealisationAttestation item;
  item.set_fingerprint(kFingerprint);
  item.set_signature(kSignature);
  v1::SubmitResponse response = SubmitOk({item});
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).outcome(), v1::SubmitResult::ACCEPTED) << response.results(0).message();
  const v1::PathStatus status =
      StatusOf(*consensus::RealisationKey::Parse(
          "sha256:881aa2e7fc72fca6d3f39b12573752d7a82a347ee9c3d6b458482436800b3e8a!out"));
  EXPECT_EQ(status.verdict(), v1::CONFIRMED);
  EXPECT_THAT(status.fingerprints(0).operators(), UnorderedElementsAre("nix-a"));

  // One byte of the signed text changed: the signature no longer verifies.
  std::string altered = kFingerprint;
  altered[altered.find("ca-base")] = 'C';
  item.set_fingerprint(altered);
  response = SubmitOk({item});
  EXPECT_EQ(response.results(0).outcome(), v1::SubmitResult::REJECTED);
  EXPECT_EQ(response.results(0).code(), grpc::UNAUTHENTICATED) << response.results(0).message();
}

}  // namespace
}  // namespace attest::server
