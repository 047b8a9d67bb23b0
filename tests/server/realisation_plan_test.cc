// server/ingest_plan for realisation attestations: what a group commit writes for them, without a
// store, a server or a clock.
#include <optional>
#include <string>
#include <vector>

#include "consensus/dispute.h"
#include "consensus/realisation.h"
#include "consensus/signed_note.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/ingest_plan.h"
#include "tests/server/realisation_test_util.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::DrvHashKey;
using ::attest::testing::Federation;
using ::attest::testing::kTestNow;
using ::attest::testing::OutPath;
using ::attest::testing::RealisationOf;
using ::testing::HasSubstr;

VerifiedRealisation Verified(const consensus::Realisation& claim, const consensus::SecretKey& key,
                             std::optional<int64_t> received = std::nullopt) {
  consensus::RealisationAttestation attestation = consensus::SignRealisation(claim, key);
  return VerifiedRealisation{.attestation = attestation, .observed_key = std::nullopt,
                             .fingerprint = claim.Fingerprint(), .received_unix = received};
}

class RealisationPlanTest : public ::testing::Test {
 protected:
  absl::StatusOr<IngestPlan> Plan(const std::vector<VerifiedRealisation>& items,
                                  const std::vector<storage::StoredRealisation>& stored, std::string peer = "") {
    pointers_.clear();
    for (const VerifiedRealisation& item : items) pointers_.push_back(&item);
    keys_ = AffectedKeys(pointers_);
    stored_.assign(keys_.size(), {});
    for (size_t k = 0; k < keys_.size(); ++k) {
      for (const storage::StoredRealisation& s : stored) {
        if (s.attestation.claim.key == keys_[k]) stored_[k].push_back(s);
      }
    }
    IngestPlanInput input;
    input.policy = &policy_;
    input.node_key = &federation_.node_key;
    input.now_unix = kTestNow;
    input.peer = std::move(peer);
    input.realisations = pointers_;
    input.keys = keys_;
    input.stored_realisations = stored_;
    return PlanIngest(input);
  }

  Federation federation_;
  consensus::Policy policy_ = federation_.MakePolicy();
  std::vector<const VerifiedRealisation*> pointers_;
  std::vector<consensus::RealisationKey> keys_;
  std::vector<std::vector<storage::StoredRealisation>> stored_;
};

TEST_F(RealisationPlanTest, NewOnesAreWrittenAndLoggedAndQuorumIsReported) {
  const consensus::Realisation claim = RealisationOf(DrvHashKey("top"), OutPath("top"));
  const std::vector<VerifiedRealisation> items = {Verified(claim, federation_.alice), Verified(claim, federation_.bob),
                                                  Verified(claim, federation_.alice)};
  auto plan = Plan(items, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->batch.log_append, storage::LogAppend::kAll);
  ASSERT_EQ(plan->batch.realisations.size(), 2u);  // the repeat is written once
  EXPECT_EQ(plan->realisations_written, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(plan->realisation_items,
            (std::vector<PlannedItem>{PlannedItem::kWrite, PlannedItem::kWrite, PlannedItem::kAlreadyPresent}));
  EXPECT_EQ(plan->batch.realisations[0].received_unix, kTestNow);
  EXPECT_TRUE(plan->batch.disputes.empty());
  ASSERT_EQ(plan->state_changes.size(), 1u);
  EXPECT_THAT(plan->state_changes[0], HasSubstr("quorum reached: realisation " + claim.key.ToString()));
}

TEST_F(RealisationPlanTest, AHeldOneIsWrittenAgainOnlyForAnEarlierReceiptAndAReplicatedOneKeepsItsOrigin) {
  const consensus::Realisation claim = RealisationOf(DrvHashKey("held"), OutPath("held"));
  const storage::StoredRealisation held{.attestation = consensus::SignRealisation(claim, federation_.alice),
                                        .received_unix = kTestNow - 100, .observed_key = std::nullopt, .origin = ""};
  auto later = Plan({Verified(claim, federation_.alice, kTestNow - 50)}, {held}, "node-a");
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_TRUE(later->batch.realisations.empty());
  EXPECT_EQ(later->batch.log_append, storage::LogAppend::kDisputesOnly);

  auto earlier = Plan({Verified(claim, federation_.alice, kTestNow - 500)}, {held}, "node-a");
  ASSERT_TRUE(earlier.ok()) << earlier.status();
  ASSERT_EQ(earlier->batch.realisations.size(), 1u);
  EXPECT_EQ(earlier->batch.realisations[0].received_unix, kTestNow - 500);
  EXPECT_EQ(earlier->batch.realisations[0].origin, "");  // the first copy's

  auto fresh = Plan({Verified(claim, federation_.bob, kTestNow - 7)}, {held}, "node-a");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_EQ(fresh->batch.realisations.size(), 1u);
  EXPECT_EQ(fresh->batch.realisations[0].origin, "node-a");
  EXPECT_EQ(fresh->batch.realisations[0].received_unix, kTestNow - 7);
}

TEST_F(RealisationPlanTest, ADisagreementMakesOneSignedDisputeRecordPerDerivationOutput) {
  const consensus::RealisationKey key = DrvHashKey("flaky");
  const consensus::Realisation a = RealisationOf(key, OutPath("flaky", "a"));
  const consensus::Realisation b = RealisationOf(key, OutPath("flaky", "b"));
  auto plan = Plan({Verified(a, federation_.alice), Verified(b, federation_.bob)}, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->batch.realisations.size(), 2u);
  ASSERT_EQ(plan->batch.disputes.size(), 1u);
  const storage::StoredDispute& dispute = plan->batch.disputes[0];
  EXPECT_EQ(dispute.id, consensus::DisputeId(key));
  ASSERT_TRUE(dispute.subject.is_realisation());
  EXPECT_EQ(dispute.subject.realisation(), key);
  EXPECT_EQ(dispute.fingerprint_count, 2);
  EXPECT_EQ(dispute.operators, (std::vector<std::string>{"alice-ci", "bob-labs"}));
  EXPECT_EQ(dispute.opened_unix, kTestNow);

  // The record is the node's signed evidence: both output paths, each with its builder's signature.
  absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(dispute.signed_record);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_TRUE(consensus::VerifyNote(*note, federation_.node_key.public_key()).ok());
  absl::StatusOr<consensus::DisputeRecord> record = consensus::DisputeRecord::FromNoteText(note->text);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_TRUE(consensus::VerifyDisputeEvidence(*record, policy_).ok());
  std::vector<std::string> fingerprints;
  for (const consensus::DisputeSide& side : record->sides) fingerprints.push_back(side.fingerprint);
  EXPECT_THAT(fingerprints, ::testing::UnorderedElementsAre(a.Fingerprint(), b.Fingerprint()));

  ASSERT_EQ(plan->state_changes.size(), 1u);
  EXPECT_THAT(plan->state_changes[0], HasSubstr("dispute opened: " + dispute.id + " realisation " + key.ToString() +
                                                ": 2 competing output paths"));

  // A third builder on a side already held changes the counted evidence: the record is updated, and
  // an attestation that changes nothing makes no new one.
  std::vector<storage::StoredRealisation> held;
  for (const storage::StoredRealisation& s : plan->batch.realisations) held.push_back(s);
  auto updated = Plan({Verified(a, federation_.carol)}, held);
  ASSERT_TRUE(updated.ok()) << updated.status();
  ASSERT_EQ(updated->batch.disputes.size(), 1u);
  EXPECT_EQ(updated->batch.disputes[0].id, dispute.id);
  EXPECT_THAT(updated->state_changes.back(), HasSubstr("dispute updated: " + dispute.id));
  auto again = Plan({Verified(a, federation_.alice)}, held);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->batch.disputes.empty());
}

TEST_F(RealisationPlanTest, KeysThatAreNotTheAffectedOnesAreRefused) {
  const consensus::Realisation claim = RealisationOf(DrvHashKey("one"), OutPath("one"));
  const VerifiedRealisation item = Verified(claim, federation_.alice);
  const VerifiedRealisation* pointer = &item;
  const std::vector<consensus::RealisationKey> keys = {DrvHashKey("another")};
  const std::vector<std::vector<storage::StoredRealisation>> stored(1);
  IngestPlanInput input;
  input.policy = &policy_;
  input.node_key = &federation_.node_key;
  input.realisations = std::span<const VerifiedRealisation* const>(&pointer, 1);
  input.keys = keys;
  input.stored_realisations = stored;
  auto plan = PlanIngest(input);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), HasSubstr("not among the affected keys"));
}

}  // namespace
}  // namespace attest::server
