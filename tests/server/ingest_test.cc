// server/ingest: the write path without a server, on MemoryAttestationStore (and a fault-injecting
// wrapper). Every rejected class asserts code, message and that nothing was stored.
#include "consensus/text.h"
#include "server/ingest.h"
#include "server/policy_book.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/log_entry.h"
#include "consensus/merkle.h"
#include "consensus/signed_note.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/forwarding_attestation_store.h"
#include "storage/memory_attestation_store.h"
#include "tests/server/server_test_util.h"
#include "tests/storage/fault_injecting_store.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::FixedNow;
using ::attest::testing::kTestNow;
using ::attest::testing::Signed;
using ::attest::testing::TestClaim;
using ::attest::testing::TestClaimWithReferences;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(consensus::StdView(status.message())); }

google::protobuf::RepeatedPtrField<v1::Attestation> Batch(std::vector<v1::Attestation> items) {
  google::protobuf::RepeatedPtrField<v1::Attestation> batch;
  for (auto& item : items) *batch.Add() = std::move(item);
  return batch;
}

class IngestTest : public ::testing::Test {
 protected:
  explicit IngestTest(IngestOptions options = {}) : policy_(federation_.MakePolicy()) { Reset(options); }

  void Reset(IngestOptions options) {
    ingestor_.reset();
    ingestor_ = std::make_unique<Ingestor>(book_, &store_, &store_, federation_.node_key, FixedNow, options);
  }

  std::vector<IngestResult> SubmitOk(std::vector<v1::Attestation> items) {
    auto results = ingestor_->Submit(Batch(std::move(items)));
    EXPECT_TRUE(results.ok()) << results.status();
    return results.ok() ? *results : std::vector<IngestResult>{};
  }

  size_t StoredFor(const consensus::PathInfo& claim) {
    auto stored = store_.AttestationsFor(std::span<const consensus::StorePath>(&claim.path, 1));
    EXPECT_TRUE(stored.ok());
    return stored.ok() ? stored->front().size() : 0;
  }

  int64_t StoredTotal() {
    auto stats = store_.Stats();
    EXPECT_TRUE(stats.ok());
    return stats.ok() ? stats->attestations : -1;
  }

  Federation federation_;
  consensus::Policy policy_;
  PolicyBook book_{policy_};  // what the components ask for the current policy
  storage::MemoryAttestationStore store_;
  std::unique_ptr<Ingestor> ingestor_;
};

TEST_F(IngestTest, AcceptsAndStoresAValidBatch) {
  std::vector<v1::Attestation> items;
  for (int i = 0; i < 100; ++i) items.push_back(Signed(TestClaim(absl::StrCat("p", i)), federation_.alice));
  auto results = SubmitOk(items);
  ASSERT_EQ(results.size(), 100u);
  for (const auto& r : results) {
    EXPECT_EQ(r.outcome, IngestOutcome::kAccepted) << r.status;
    EXPECT_TRUE(r.status.ok());
  }
  EXPECT_EQ(StoredTotal(), 100);
  auto stored = store_.AttestationsFor(std::vector<consensus::StorePath>{TestStorePath("p7")});
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->front().size(), 1u);
  EXPECT_EQ(stored->front()[0].received_unix, kTestNow);
  EXPECT_FALSE(stored->front()[0].observed_key.has_value());
}

TEST_F(IngestTest, ResubmissionIsAlreadyPresentAndStoresNothingNew) {
  auto item = Signed(TestClaim("idem"), federation_.alice);
  EXPECT_EQ(SubmitOk({item})[0].outcome, IngestOutcome::kAccepted);
  EXPECT_EQ(SubmitOk({item})[0].outcome, IngestOutcome::kAlreadyPresent);
  EXPECT_EQ(StoredTotal(), 1);
}

TEST_F(IngestTest, EmptyBatchIsInvalidArgument) {
  auto results = ingestor_->Submit(Batch({}));
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(results.status()), HasSubstr("empty"));
}

TEST_F(IngestTest, BatchOverTheLimitIsResourceExhaustedAndStoresNothing) {
  Reset(IngestOptions{.max_batch = 3});
  std::vector<v1::Attestation> items;
  for (int i = 0; i < 4; ++i) items.push_back(Signed(TestClaim(absl::StrCat("p", i)), federation_.alice));
  auto results = ingestor_->Submit(Batch(items));
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Message(results.status()), "batch of 4 attestations exceeds the limit of 3: split it");
  EXPECT_EQ(StoredTotal(), 0);
}

// One bad item among good ones: rejected with its own code and message; the others are stored.
struct BadItemCase {
  std::string name;
  std::function<void(v1::Attestation&, const Federation&)> mutate;
  absl::StatusCode code;
  std::string expected;
};

class BadItemTest : public IngestTest, public ::testing::WithParamInterface<BadItemCase> {};

TEST_P(BadItemTest, IsRejectedAloneWithReason) {
  const consensus::PathInfo bad_claim = TestClaim("bad-item");
  v1::Attestation bad = Signed(bad_claim, federation_.alice);
  GetParam().mutate(bad, federation_);
  std::vector<v1::Attestation> items{Signed(TestClaim("good-1"), federation_.alice), Signed(TestClaim("good-2"), federation_.bob),
                                     bad, Signed(TestClaim("good-4"), federation_.carol)};
  auto results = SubmitOk(items);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[2].outcome, IngestOutcome::kRejected);
  EXPECT_EQ(results[2].status.code(), GetParam().code) << results[2].status;
  EXPECT_THAT(Message(results[2].status), HasSubstr("attestation 3 of 4: "));
  EXPECT_THAT(Message(results[2].status), HasSubstr(GetParam().expected));
  for (int i : {0, 1, 3}) EXPECT_EQ(results[i].outcome, IngestOutcome::kAccepted) << results[i].status;
  EXPECT_EQ(StoredTotal(), 3);
  EXPECT_EQ(StoredFor(bad_claim), 0u);
}

std::string Base64OfBytes(size_t n, uint8_t value) {
  return consensus::Base64Encode(std::vector<uint8_t>(n, value));
}

INSTANTIATE_TEST_SUITE_P(
    Classes, BadItemTest,
    ::testing::Values(
        BadItemCase{"MalformedStorePath",
                    [](v1::Attestation& a, const Federation&) {
                      a.mutable_path_info()->set_store_path("/nix/store/tooshort-bad-item");
                    },
                    absl::StatusCode::kInvalidArgument, "store_path: "},
        BadItemCase{"BadHashEncoding",
                    [](v1::Attestation& a, const Federation&) {
                      a.mutable_path_info()->set_nar_hash("sha256:" + std::string(52, 'u'));
                    },
                    absl::StatusCode::kInvalidArgument, "nar_hash: "},
        BadItemCase{"WrongHashLength",
                    [](v1::Attestation& a, const Federation&) {
                      a.mutable_path_info()->set_nar_hash("sha256:" + std::string(50, '0'));
                    },
                    absl::StatusCode::kInvalidArgument, "nar_hash: "},
        BadItemCase{"NarSizeZero",
                    [](v1::Attestation& a, const Federation&) { a.mutable_path_info()->set_nar_size(0); },
                    absl::StatusCode::kInvalidArgument, "nar_size: "},
        BadItemCase{"AbsurdNarSize",
                    [](v1::Attestation& a, const Federation&) {
                      a.mutable_path_info()->set_nar_size(uint64_t{1} << 62);
                    },
                    absl::StatusCode::kInvalidArgument, "nar_size: "},
        BadItemCase{"ReferenceNotAStorePath",
                    [](v1::Attestation& a, const Federation&) {
                      a.mutable_path_info()->add_references(TestStorePath("dep").full());
                      a.mutable_path_info()->add_references("bash");
                    },
                    absl::StatusCode::kInvalidArgument, "references[1] is not a store path: "},
        BadItemCase{"SignatureWrongLength",
                    [](v1::Attestation& a, const Federation&) {
                      a.set_signature("alice-builder-1:" + Base64OfBytes(63, 7));
                    },
                    absl::StatusCode::kInvalidArgument, "signature: "},
        BadItemCase{"SignatureBadBase64",
                    [](v1::Attestation& a, const Federation&) { a.set_signature("alice-builder-1:%%%%"); },
                    absl::StatusCode::kInvalidArgument, "is not valid base64"},
        BadItemCase{"SignatureWithoutKeyName",
                    [](v1::Attestation& a, const Federation&) { a.set_signature(Base64OfBytes(64, 1)); },
                    absl::StatusCode::kInvalidArgument, "signature: "},
        BadItemCase{"SignatureDoesNotVerify",
                    [](v1::Attestation& a, const Federation& f) {
                      // A real signature by the right key, over another claim.
                      a.set_signature(Signed(TestClaim("other"), f.alice).signature());
                    },
                    absl::StatusCode::kUnauthenticated, "signature does not verify with key 'alice-builder-1'"},
        BadItemCase{"SignedByAnotherKeyUnderAPolicyName",
                    [](v1::Attestation& a, const Federation&) {
                      auto forged = TestKey("alice-builder-1", "forger");
                      a.set_signature(Signed(TestClaim("bad-item"), forged).signature());
                    },
                    absl::StatusCode::kUnauthenticated, "is the key in the policy the one the builder signs with?"},
        BadItemCase{"KeyNotInPolicy",
                    [](v1::Attestation& a, const Federation& f) {
                      a = Signed(TestClaim("bad-item"), f.outsider);
                      a.set_public_key(f.outsider.public_key().ToString());  // ignored: node does not observe
                    },
                    absl::StatusCode::kUnauthenticated,
                    "key 'outsider-1' is not a builder key in the policy (policy sha256:"},
        BadItemCase{"BadMetadata",
                    [](v1::Attestation& a, const Federation&) {
                      a.mutable_metadata()->set_system("x86_64 linux");
                    },
                    absl::StatusCode::kInvalidArgument, "metadata: "},
        BadItemCase{"MissingPathInfo", [](v1::Attestation& a, const Federation&) { a.clear_path_info(); },
                    absl::StatusCode::kInvalidArgument, "path_info is missing"}),
    [](const auto& info) { return info.param.name; });

TEST_F(IngestTest, KeyNotInPolicyMessageSaysWhatToDo) {
  auto results = SubmitOk({Signed(TestClaim("x"), federation_.outsider)});
  EXPECT_EQ(Message(results[0].status),
            absl::StrCat("attestation 1 of 1: key 'outsider-1' is not a builder key in the policy (policy ",
                         policy_.Hash(),
                         "); ask the federation to add it, or enable observe_unknown_keys on this node"));
}

TEST_F(IngestTest, DuplicatesWithinABatchAreRejectedAfterTheFirst) {
  auto item = Signed(TestClaim("dup"), federation_.alice);
  auto results = SubmitOk({item, Signed(TestClaim("other"), federation_.alice), item, item});
  EXPECT_EQ(results[0].outcome, IngestOutcome::kAccepted);
  EXPECT_EQ(results[1].outcome, IngestOutcome::kAccepted);
  for (int i : {2, 3}) {
    EXPECT_EQ(results[i].outcome, IngestOutcome::kRejected);
    EXPECT_EQ(results[i].status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(results[i].status),
                HasSubstr(absl::StrCat("attestation ", i + 1, " of 4: duplicate of attestation 1")));
  }
  EXPECT_EQ(StoredTotal(), 2);
}

TEST_F(IngestTest, UnknownKeysAreObservedWhenTheNodeOptsIn) {
  Reset(IngestOptions{.observe_unknown_keys = true});
  const consensus::PathInfo claim = TestClaim("watched");
  v1::Attestation observed = Signed(claim, federation_.outsider);

  // Without its public key the node cannot verify it.
  auto results = SubmitOk({observed});
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(results[0].status), HasSubstr("carry public_key"));

  // With a public key of another name.
  v1::Attestation mismatched = observed;
  mismatched.set_public_key(federation_.bob.public_key().ToString());
  results = SubmitOk({mismatched});
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(results[0].status), HasSubstr("public_key is key 'bob-builder-1'"));

  // With a malformed public key.
  v1::Attestation malformed = observed;
  malformed.set_public_key("outsider-1:abc");
  results = SubmitOk({malformed});
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(results[0].status), HasSubstr("public_key: "));

  // With the right public key but a key of the same name that did not sign it.
  v1::Attestation wrong_key = observed;
  wrong_key.set_public_key(TestKey("outsider-1", "other").public_key().ToString());
  results = SubmitOk({wrong_key});
  EXPECT_EQ(results[0].status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(StoredFor(claim), 0u);

  observed.set_public_key(federation_.outsider.public_key().ToString());
  results = SubmitOk({observed});
  EXPECT_EQ(results[0].outcome, IngestOutcome::kObserved) << results[0].status;
  EXPECT_EQ(SubmitOk({observed})[0].outcome, IngestOutcome::kAlreadyPresent);

  auto stored = store_.AttestationsFor(std::span<const consensus::StorePath>(&claim.path, 1));
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->front().size(), 1u);
  ASSERT_TRUE(stored->front()[0].observed_key.has_value());
  EXPECT_EQ(*stored->front()[0].observed_key, federation_.outsider.public_key());
}

TEST_F(IngestTest, VerdictFlowEndsInASignedDispute) {
  const consensus::PathInfo good = TestClaim("contested", "bytes A");
  const consensus::PathInfo other = TestClaim("contested", "bytes B");
  ASSERT_EQ(good.path, other.path);
  ASSERT_NE(good.Fingerprint(), other.Fingerprint());

  EXPECT_EQ(SubmitOk({Signed(good, federation_.alice)})[0].outcome, IngestOutcome::kAccepted);
  EXPECT_EQ(SubmitOk({Signed(good, federation_.bob)})[0].outcome, IngestOutcome::kAccepted);
  auto disputes = store_.ListDisputes({});
  ASSERT_TRUE(disputes.ok());
  EXPECT_TRUE(disputes->empty()) << "CONFIRMED is not a dispute";

  EXPECT_EQ(SubmitOk({Signed(other, federation_.carol)})[0].outcome, IngestOutcome::kAccepted);
  auto dispute = store_.GetDispute(consensus::DisputeId(good.path));
  ASSERT_TRUE(dispute.ok());
  ASSERT_TRUE(dispute->has_value());
  EXPECT_EQ((*dispute)->subject, consensus::DisputeSubject(good.path));
  EXPECT_EQ((*dispute)->fingerprint_count, 2);
  EXPECT_EQ((*dispute)->opened_unix, kTestNow);

  auto note = consensus::SignedNote::Parse((*dispute)->signed_record);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_TRUE(consensus::VerifyNote(*note, federation_.node_key.public_key()).ok());
  EXPECT_FALSE(consensus::VerifyNote(*note, TestKey("node-1", "impostor").public_key()).ok());
  auto record = consensus::DisputeRecord::FromNoteText(note->text);
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_EQ(record->sides.size(), 2u);
  EXPECT_EQ(record->policy_hash, policy_.Hash());
  EXPECT_EQ(record->time_unix, kTestNow);

  // The same evidence again changes nothing; a new builder on one side refreshes the record.
  const std::string first_record = (*dispute)->signed_record;
  EXPECT_EQ(SubmitOk({Signed(other, federation_.carol)})[0].outcome, IngestOutcome::kAlreadyPresent);
  EXPECT_EQ((*store_.GetDispute((*dispute)->id))->signed_record, first_record);
  EXPECT_EQ(SubmitOk({Signed(other, federation_.bob)})[0].outcome, IngestOutcome::kAccepted);
  auto refreshed = store_.GetDispute((*dispute)->id);
  ASSERT_TRUE(refreshed.ok() && refreshed->has_value());
  EXPECT_NE((*refreshed)->signed_record, first_record);
  EXPECT_THAT((*refreshed)->signed_record, HasSubstr("flagged bob-builder-1"));
}

// Issue: a dispute over a path with many references was lost because its record did not fit in one
// log entry; the third builder's submission failed and the path stayed CONFIRMED.
TEST_F(IngestTest, ADisagreementOverAPathWithManyReferencesIsADisputeLoggedInParts) {
  const consensus::PathInfo agreed = TestClaimWithReferences("many-refs", "bytes A", 700);
  const consensus::PathInfo other = TestClaimWithReferences("many-refs", "bytes B", 700);
  ASSERT_GT(agreed.Fingerprint().size(), 40000u);
  EXPECT_EQ(SubmitOk({Signed(agreed, federation_.alice), Signed(agreed, federation_.bob)})[0].outcome,
            IngestOutcome::kAccepted);
  const uint64_t log_before = store_.GetLogHead()->size;

  const std::vector<IngestResult> dissent = SubmitOk({Signed(other, federation_.carol)});
  ASSERT_EQ(dissent.size(), 1u);
  EXPECT_EQ(dissent[0].outcome, IngestOutcome::kAccepted) << dissent[0].status;
  EXPECT_EQ(StoredFor(agreed), 3u);
  auto dispute = store_.GetDispute(consensus::DisputeId(agreed.path));
  ASSERT_TRUE(dispute.ok() && dispute->has_value());
  EXPECT_EQ((*dispute)->fingerprint_count, 2);
  ASSERT_GT((*dispute)->signed_record.size(), consensus::kMaxLogEntryBytes);

  // The log holds carol's attestation, then the record in parts that join back into it.
  const uint64_t log_after = store_.GetLogHead()->size;
  auto entries = store_.LogEntries(log_before, log_after - log_before);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_GE(entries->size(), 3u);
  EXPECT_EQ(consensus::ParseLogEntry((*entries)[0])->kind, consensus::LogEntryKind::kAttestation);
  std::vector<consensus::DisputePart> parts;
  for (size_t i = 1; i < entries->size(); ++i) {
    auto parsed = consensus::ParseLogEntry((*entries)[i]);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->kind, consensus::LogEntryKind::kDisputePart);
    parts.push_back(*parsed->part);
  }
  auto assembled = consensus::AssembleDisputeParts(parts);
  ASSERT_TRUE(assembled.ok()) << assembled.status();
  EXPECT_EQ(*assembled, (*dispute)->signed_record);
}

// Issue: [valid, one with 2,000 references] failed the whole call with "internal error in the node's
// storage" and lost the valid one.
TEST_F(IngestTest, AnAttestationTooLargeToLogIsRejectedAloneWithItsReason) {
  const consensus::PathInfo fine = TestClaim("fine");
  const consensus::PathInfo huge = TestClaimWithReferences("huge", "bytes", 2000);
  const std::vector<IngestResult> results = SubmitOk({Signed(fine, federation_.alice), Signed(huge, federation_.alice)});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].outcome, IngestOutcome::kAccepted);
  EXPECT_EQ(results[1].outcome, IngestOutcome::kRejected);
  EXPECT_EQ(results[1].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(results[1].status), HasSubstr("attestation 2 of 2: "));
  EXPECT_THAT(Message(results[1].status), HasSubstr("2000 references"));
  EXPECT_THAT(Message(results[1].status), ::testing::Not(HasSubstr("internal error")));
  EXPECT_EQ(StoredFor(fine), 1u);
  EXPECT_EQ(StoredFor(huge), 0u);
  EXPECT_EQ(store_.GetLogHead()->size, 1u);
}

// Records every WriteBatch, to check that a dispute is written together with its evidence.
class RecordingStore final : public storage::ForwardingAttestationStore {
 public:
  RecordingStore() : ForwardingAttestationStore(&inner) {}
  absl::StatusOr<std::vector<storage::WriteOutcome>> Write(const storage::WriteBatch& batch) override {
    batches.push_back(batch);
    return inner.Write(batch);
  }

  storage::MemoryAttestationStore inner;
  std::vector<storage::WriteBatch> batches;
};

TEST(IngestAtomicityTest, DisputeIsWrittenInTheSameBatchAsItsEvidence) {
  Federation federation;
  consensus::Policy policy = federation.MakePolicy();
  RecordingStore store;
  PolicyBook book(policy);
  Ingestor ingestor(book, &store, &store, federation.node_key, FixedNow, {});
  ASSERT_TRUE(ingestor.Submit(Batch({Signed(TestClaim("p", "A"), federation.alice)})).ok());
  ASSERT_TRUE(ingestor.Submit(Batch({Signed(TestClaim("p", "B"), federation.bob),
                                     Signed(TestClaim("q", "A"), federation.bob)}))
                  .ok());
  ASSERT_EQ(store.batches.size(), 2u);
  // Submitted attestations and the records made for them go into the node's own log.
  EXPECT_EQ(store.batches[0].log_append, storage::LogAppend::kAll);
  EXPECT_EQ(store.batches[1].log_append, storage::LogAppend::kAll);
  EXPECT_EQ(store.inner.GetLogHead()->size, 4u);
  EXPECT_TRUE(store.batches[0].disputes.empty());
  EXPECT_EQ(store.batches[1].attestations.size(), 2u);
  ASSERT_EQ(store.batches[1].disputes.size(), 1u);
  EXPECT_EQ(store.batches[1].disputes[0].subject, consensus::DisputeSubject(TestStorePath("p")));
}

TEST(IngestFailureTest, StorageFailureFailsTheCallStoresNothingAndHidesInternals) {
  Federation federation;
  consensus::Policy policy = federation.MakePolicy();
  storage::testing::FaultInjectingStore store(std::make_unique<storage::MemoryAttestationStore>());
  PolicyBook book(policy);
  Ingestor ingestor(book, &store, &store, federation.node_key, FixedNow, {});

  store.FailWrites(1, absl::UnavailableError("database is locked (SQL: INSERT INTO attestation ...) /var/lib/x.db"));
  auto results = ingestor.Submit(Batch({Signed(TestClaim("p"), federation.alice)}));
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Message(results.status()), HasSubstr("retry"));
  EXPECT_THAT(Message(results.status()), ::testing::Not(HasSubstr("SQL")));
  EXPECT_THAT(Message(results.status()), ::testing::Not(HasSubstr("/var/lib")));
  EXPECT_EQ(store.inner().Stats()->attestations, 0);

  store.FailReads(1, absl::DataLossError("page 7 corrupt"));
  results = ingestor.Submit(Batch({Signed(TestClaim("p"), federation.alice)}));
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.status().code(), absl::StatusCode::kDataLoss);

  // The next submission (a retry) goes through.
  results = ingestor.Submit(Batch({Signed(TestClaim("p"), federation.alice)}));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[0].outcome, IngestOutcome::kAccepted);
}

TEST(IngestFailureTest, AnItemTheStoreRefusesIsRejectedAloneAndTheRestIsStored) {
  Federation federation;
  consensus::Policy policy = federation.MakePolicy();
  storage::testing::FaultInjectingStore store(std::make_unique<storage::MemoryAttestationStore>());
  PolicyBook book(policy);
  Ingestor ingestor(book, &store, &store, federation.node_key, FixedNow, {});
  store.RefuseWritesOf(TestClaim("q").path, absl::InvalidArgumentError("a record this store cannot hold"));
  auto results = ingestor.Submit(Batch({Signed(TestClaim("p"), federation.alice), Signed(TestClaim("q"), federation.alice),
                                        Signed(TestClaim("r"), federation.alice)}));
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[0].outcome, IngestOutcome::kAccepted);
  EXPECT_EQ((*results)[1].outcome, IngestOutcome::kRejected);
  EXPECT_EQ((*results)[1].status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message((*results)[1].status), HasSubstr("attestation 2 of 3: the node could not store it"));
  EXPECT_EQ((*results)[2].outcome, IngestOutcome::kAccepted);
  EXPECT_EQ(store.inner().Stats()->attestations, 2);

  // A failure of the node's state (not of an item) still fails the call: retrying can succeed.
  store.Heal();
  store.FailWrites(1, absl::UnavailableError("busy"));
  auto busy = ingestor.Submit(Batch({Signed(TestClaim("s"), federation.alice), Signed(TestClaim("t"), federation.alice)}));
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable);
}

// Issue: a follower whose write of a peer's batch failed for one entry failed every round, its cursor
// never moved and later entries were never applied.
TEST(IngestReplicationTest, AnEntryTheFollowerCannotStoreIsRefusedWithItsReasonAndTheCursorMovesOn) {
  Federation federation;
  consensus::Policy policy = federation.MakePolicy();
  storage::testing::FaultInjectingStore store(std::make_unique<storage::MemoryAttestationStore>());
  PolicyBook book(policy);
  Ingestor ingestor(book, &store, &store, federation.node_key, FixedNow, {});
  store.RefuseWritesOf(TestClaim("q").path, absl::InvalidArgumentError("a record this store cannot hold"));

  ReplicationBatch batch;
  batch.peer = "node-a";
  uint64_t index = 0;
  for (const char* name : {"p", "q", "r"}) {
    consensus::AttestationEntry entry{.attestation = consensus::SignAttestation(TestClaim(name), federation.alice),
                                      .observed_key = std::nullopt,
                                      .received_unix = kTestNow};
    batch.attestations.push_back(ReplicatedAttestation{
        .index = index++, .entry = *consensus::EncodeAttestationEntry(entry), .parsed = entry});
  }
  batch.progress = storage::PeerProgress{.peer = "node-a",
                                         .cursor = 3,
                                         .frontier = {consensus::MerkleHash{}, consensus::MerkleHash{}},
                                         .checkpoint = "a checkpoint note",
                                         .checkpoint_size = 3,
                                         .cosigned_checkpoint = ""};
  auto counts = ingestor.Replicate(batch);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->stored, 2);
  EXPECT_EQ(counts->rejected, 1);

  auto progress = store.inner().GetPeerProgress("node-a");
  ASSERT_TRUE(progress.ok() && progress->has_value());
  EXPECT_EQ((*progress)->cursor, 3u);
  auto refused = store.inner().RecentRejectedEntries("node-a", 10);
  ASSERT_TRUE(refused.ok());
  ASSERT_EQ(refused->size(), 1u);
  EXPECT_EQ((*refused)[0].index, 1u);
  EXPECT_THAT((*refused)[0].reason, HasSubstr("could not store it"));
  EXPECT_THAT((*refused)[0].entry, HasSubstr("-q;"));
  EXPECT_EQ(store.inner().Stats()->attestations, 2);
}

TEST(IngestFailureTest, AcknowledgementLostAfterCommitIsAlreadyPresentOnRetry) {
  Federation federation;
  consensus::Policy policy = federation.MakePolicy();
  storage::testing::FaultInjectingStore store(std::make_unique<storage::MemoryAttestationStore>());
  PolicyBook book(policy);
  Ingestor ingestor(book, &store, &store, federation.node_key, FixedNow, {});
  store.FailWritesAfterCommit(1, absl::UnavailableError("lost"));
  EXPECT_FALSE(ingestor.Submit(Batch({Signed(TestClaim("p"), federation.alice)})).ok());
  auto results = ingestor.Submit(Batch({Signed(TestClaim("p"), federation.alice)}));
  ASSERT_TRUE(results.ok());
  EXPECT_EQ((*results)[0].outcome, IngestOutcome::kAlreadyPresent);
}

TEST_F(IngestTest, ConcurrentBatchesAreAllStoredOnce) {
  constexpr int kThreads = 6;
  constexpr int kBatches = 5;
  constexpr int kPerBatch = 60;
  std::atomic<int> accepted{0};
  std::atomic<int> already{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const consensus::SecretKey& key = t % 2 == 0 ? federation_.alice : federation_.bob;
      for (int b = 0; b < kBatches; ++b) {
        std::vector<v1::Attestation> items;
        // Threads 0/1, 2/3, 4/5 share paths; threads of the same key race on identical items.
        for (int i = 0; i < kPerBatch; ++i) items.push_back(Signed(TestClaim(absl::StrCat("c", b, "-", i)), key));
        auto results = ingestor_->Submit(Batch(items));
        ASSERT_TRUE(results.ok()) << results.status();
        for (const auto& r : *results) {
          if (r.outcome == IngestOutcome::kAccepted) ++accepted;
          if (r.outcome == IngestOutcome::kAlreadyPresent) ++already;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(accepted.load(), 2 * kBatches * kPerBatch);
  EXPECT_EQ(already.load(), (kThreads - 2) * kBatches * kPerBatch);
  EXPECT_EQ(StoredTotal(), 2 * kBatches * kPerBatch);
}

}  // namespace
}  // namespace attest::server
