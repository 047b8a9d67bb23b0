// server/ingest_plan: the ingest writer's decisions without a store, a server or a clock: what a group
// commit writes (attestations, dispute records, statements, what goes into the log), per-item
// decisions and the state-change lines, from what is stored and what was verified.
#include "server/ingest_plan.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "consensus/dispute.h"
#include "consensus/resolution.h"
#include "consensus/signed_note.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/resolution_book.h"
#include "server/policy_book.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::kTestNow;
using ::attest::testing::TestClaim;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

VerifiedAttestation Verified(const consensus::PathInfo& claim, const consensus::SecretKey& key) {
  consensus::Attestation attestation = consensus::SignAttestation(claim, key);
  std::string fingerprint = attestation.claim.Fingerprint();
  return VerifiedAttestation{.attestation = std::move(attestation), .observed_key = std::nullopt,
                             .fingerprint = std::move(fingerprint)};
}

storage::StoredAttestation Stored(const consensus::PathInfo& claim, const consensus::SecretKey& key) {
  return storage::StoredAttestation{.attestation = consensus::SignAttestation(claim, key),
                                    .received_unix = kTestNow - 100,
                                    .observed_key = std::nullopt,
                                    .origin = ""};
}

class IngestPlanTest : public ::testing::Test {
 protected:
  IngestPlanTest() : policy_(federation_.MakePolicy()) {}

  // Plans `items` against `stored` (the stored attestations of any of their paths; missing paths hold
  // nothing), as the writer does: AffectedPaths, then PlanIngest.
  absl::StatusOr<IngestPlan> Plan(const std::vector<VerifiedAttestation>& items,
                                  const std::vector<storage::StoredAttestation>& stored, std::string peer = "",
                                  const ResolutionBook* book = nullptr,
                                  std::span<const PlannedStatement> statements = {}) {
    pointers_.clear();
    for (const VerifiedAttestation& item : items) pointers_.push_back(&item);
    paths_ = AffectedPaths(pointers_);
    stored_.assign(paths_.size(), {});
    for (size_t p = 0; p < paths_.size(); ++p) {
      for (const storage::StoredAttestation& s : stored) {
        if (s.attestation.claim.path == paths_[p]) stored_[p].push_back(s);
      }
    }
    IngestPlanInput input;
    input.policy = &policy_;
    input.node_key = &federation_.node_key;
    input.resolutions = book;
    input.now_unix = kTestNow;
    input.peer = std::move(peer);
    input.items = pointers_;
    input.paths = paths_;
    input.stored = stored_;
    input.statements = statements;
    return PlanIngest(input);
  }

  // The maintainer's statement about the dispute between claims `a` and `b` of one path.
  absl::StatusOr<consensus::VerifiedResolution> Statement(const consensus::PathInfo& a, const consensus::PathInfo& b,
                                          consensus::ResolutionOutcome outcome, std::vector<std::string> builders,
                                          int64_t time_unix) {
    std::vector<std::string> fingerprints = {a.Fingerprint(), b.Fingerprint()};
    std::sort(fingerprints.begin(), fingerprints.end());
    const consensus::Resolution resolution{.dispute_id = consensus::DisputeId(a.path),
                                           .subject = a.path,
                                           .outcome = outcome,
                                           .fingerprints = fingerprints,
                                           .builders = std::move(builders),
                                           .time_unix = time_unix,
                                           .note = "decided by the maintainer"};
    auto note = consensus::SignResolution(resolution, federation_.maintainer);
    if (!note.ok()) return note.status();
    return consensus::VerifyResolution(note->Serialize(), policy_);
  }

  Federation federation_;
  consensus::Policy policy_;
  PolicyBook book_{policy_};  // what the components ask for the current policy
  std::vector<const VerifiedAttestation*> pointers_;
  std::vector<consensus::StorePath> paths_;
  std::vector<std::vector<storage::StoredAttestation>> stored_;
};

TEST_F(IngestPlanTest, SecondOperatorReachesQuorum) {
  const consensus::PathInfo claim = TestClaim("hello");
  auto plan = Plan({Verified(claim, federation_.bob)}, {Stored(claim, federation_.alice)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->items, ElementsAre(PlannedItem::kWrite));
  EXPECT_THAT(plan->written, ElementsAre(0u));
  ASSERT_EQ(plan->batch.attestations.size(), 1u);
  const storage::StoredAttestation& written = plan->batch.attestations[0];
  EXPECT_EQ(written.attestation.key_name(), "bob-builder-1");
  EXPECT_EQ(written.received_unix, kTestNow);
  EXPECT_EQ(written.origin, "");
  EXPECT_FALSE(written.observed_key.has_value());
  EXPECT_EQ(plan->batch.log_append, storage::LogAppend::kAll);
  EXPECT_TRUE(plan->batch.disputes.empty());
  EXPECT_TRUE(plan->batch.resolutions.empty());
  EXPECT_FALSE(plan->batch.peer_progress.has_value());
  ASSERT_EQ(plan->state_changes.size(), 1u);
  EXPECT_THAT(plan->state_changes[0], StartsWith("quorum reached: " + claim.path.full() + " CONFIRMED by 2 operators"));
  EXPECT_THAT(plan->state_changes[0], HasSubstr("alice-ci, bob-labs"));
}

TEST_F(IngestPlanTest, PendingPathChangesNoState) {
  const consensus::PathInfo claim = TestClaim("hello");
  auto plan = Plan({Verified(claim, federation_.alice)}, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->batch.attestations.size(), 1u);
  EXPECT_TRUE(plan->state_changes.empty());
  EXPECT_TRUE(plan->batch.disputes.empty());
}

TEST_F(IngestPlanTest, DisagreementOpensADisputeWithASignedRecord) {
  const consensus::PathInfo agreed = TestClaim("hello", "a");
  const consensus::PathInfo other = TestClaim("hello", "b");
  const std::vector<storage::StoredAttestation> stored = {Stored(agreed, federation_.alice),
                                                          Stored(agreed, federation_.bob)};
  auto plan = Plan({Verified(other, federation_.carol)}, stored);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->batch.disputes.size(), 1u);
  const storage::StoredDispute& dispute = plan->batch.disputes[0];
  EXPECT_EQ(dispute.id, consensus::DisputeId(agreed.path));
  EXPECT_EQ(dispute.subject, consensus::DisputeSubject(agreed.path));
  EXPECT_EQ(dispute.opened_unix, kTestNow);
  EXPECT_EQ(dispute.updated_unix, kTestNow);
  EXPECT_EQ(dispute.fingerprint_count, 2);
  EXPECT_THAT(dispute.operators, ElementsAre("alice-ci", "bob-labs", "carol-home"));
  EXPECT_EQ(dispute.state, consensus::DisputeState::kOpen);

  // The record is signed by the node key and names both sides.
  auto note = consensus::SignedNote::Parse(dispute.signed_record);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_TRUE(consensus::VerifyNote(*note, federation_.node_key.public_key()).ok());
  auto record = consensus::DisputeRecord::FromSignedNote(dispute.signed_record);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->id, dispute.id);
  EXPECT_EQ(record->time_unix, kTestNow);
  EXPECT_EQ(record->policy_hash, policy_.Hash());
  ASSERT_EQ(record->sides.size(), 2u);
  std::vector<std::string> fingerprints = {record->sides[0].fingerprint, record->sides[1].fingerprint};
  std::vector<std::string> expected = {agreed.Fingerprint(), other.Fingerprint()};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(fingerprints, expected);

  ASSERT_EQ(plan->state_changes.size(), 1u);
  EXPECT_THAT(plan->state_changes[0], StartsWith("dispute opened: " + dispute.id + " " + agreed.path.full() + ": 2 "));

  // Pure: the same input plans the same batch, signature included.
  auto again = Plan({Verified(other, federation_.carol)}, stored);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->batch.disputes, plan->batch.disputes);
  EXPECT_EQ(again->batch.attestations, plan->batch.attestations);
}

TEST_F(IngestPlanTest, NewEvidenceUpdatesADispute) {
  const consensus::PathInfo a = TestClaim("hello", "a");
  const consensus::PathInfo b = TestClaim("hello", "b");
  auto plan = Plan({Verified(b, federation_.bob)}, {Stored(a, federation_.alice), Stored(b, federation_.carol)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->batch.disputes.size(), 1u);
  EXPECT_THAT(plan->batch.disputes[0].operators, ElementsAre("alice-ci", "bob-labs", "carol-home"));
  ASSERT_EQ(plan->state_changes.size(), 1u);
  EXPECT_THAT(plan->state_changes[0], StartsWith("dispute updated: "));
}

TEST_F(IngestPlanTest, AnAttestationAlreadyStoredIsNotWritten) {
  const consensus::PathInfo claim = TestClaim("hello");
  auto plan = Plan({Verified(claim, federation_.alice)}, {Stored(claim, federation_.alice)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->items, ElementsAre(PlannedItem::kAlreadyPresent));
  EXPECT_TRUE(plan->written.empty());
  EXPECT_TRUE(plan->batch.attestations.empty());
  EXPECT_TRUE(plan->batch.disputes.empty());
  EXPECT_TRUE(plan->state_changes.empty());
}

TEST_F(IngestPlanTest, AnEarlierReceiptFromAPeerLowersTheTimeAndCanBringARetiredKeyBack) {
  // alice's key is retired at kTestNow - 150. This node received her attestation at kTestNow - 100
  // (after the cut-off: it does not count); the peer's log received it at kTestNow - 200 (before).
  auto retired = consensus::Policy::ParseToml(
      absl::StrReplaceAll(federation_.PolicyToml(2),
                          {{absl::StrCat("\"", federation_.alice.public_key().ToString(), "\""),
                            absl::StrCat("{key = \"", federation_.alice.public_key().ToString(),
                                         "\", retired = \"2023-11-14T22:10:50Z\"}")}}),
      "policy.toml");
  ASSERT_TRUE(retired.ok()) << retired.status();
  policy_ = *retired;
  const consensus::PathInfo claim = TestClaim("hello");
  VerifiedAttestation from_peer = Verified(claim, federation_.alice);
  from_peer.received_unix = kTestNow - 200;
  auto plan = Plan({from_peer}, {Stored(claim, federation_.alice), Stored(claim, federation_.bob)}, "peer-1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->items, ElementsAre(PlannedItem::kWrite));
  ASSERT_EQ(plan->batch.attestations.size(), 1u);
  EXPECT_EQ(plan->batch.attestations[0].received_unix, kTestNow - 200);
  EXPECT_EQ(plan->batch.attestations[0].origin, "");  // the first copy's, kept by the store
  ASSERT_EQ(plan->state_changes.size(), 1u);
  EXPECT_THAT(plan->state_changes[0], StartsWith("quorum reached: " + claim.path.full()));

  // A later receipt changes nothing.
  from_peer.received_unix = kTestNow - 50;
  auto later = Plan({from_peer}, {Stored(claim, federation_.alice), Stored(claim, federation_.bob)}, "peer-1");
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_THAT(later->items, ElementsAre(PlannedItem::kAlreadyPresent));
  EXPECT_TRUE(later->batch.attestations.empty());
  EXPECT_TRUE(later->state_changes.empty());
}

TEST_F(IngestPlanTest, TwoItemsForOnePathAreTalliedTogether) {
  const consensus::PathInfo claim = TestClaim("hello");
  const consensus::PathInfo elsewhere = TestClaim("world");
  // alice and bob on one path (quorum in one group), bob elsewhere, and alice's again (two batches of
  // one group carrying the same attestation).
  auto plan = Plan({Verified(claim, federation_.alice), Verified(elsewhere, federation_.bob),
                    Verified(claim, federation_.bob), Verified(claim, federation_.alice)},
                   {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->items, ElementsAre(PlannedItem::kWrite, PlannedItem::kWrite, PlannedItem::kWrite,
                                       PlannedItem::kAlreadyPresent));
  // Grouped by path, paths in first-seen order.
  EXPECT_THAT(plan->written, ElementsAre(0u, 2u, 1u));
  ASSERT_EQ(plan->batch.attestations.size(), 3u);
  EXPECT_EQ(plan->batch.attestations[0].attestation.claim.path, claim.path);
  EXPECT_EQ(plan->batch.attestations[1].attestation.claim.path, claim.path);
  EXPECT_EQ(plan->batch.attestations[2].attestation.claim.path, elsewhere.path);
  ASSERT_EQ(plan->state_changes.size(), 1u);
  EXPECT_THAT(plan->state_changes[0], StartsWith("quorum reached: " + claim.path.full()));
}

TEST_F(IngestPlanTest, AReplicatedBatchLogsOnlyDisputeRecords) {
  const consensus::PathInfo a = TestClaim("hello", "a");
  const consensus::PathInfo b = TestClaim("hello", "b");
  auto plan = Plan({Verified(b, federation_.carol)}, {Stored(a, federation_.alice), Stored(a, federation_.bob)},
                   "peer-1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->batch.log_append, storage::LogAppend::kDisputesOnly);
  ASSERT_EQ(plan->batch.attestations.size(), 1u);
  EXPECT_EQ(plan->batch.attestations[0].origin, "peer-1");
  // The dispute record is this node's own, made for what it replicated.
  EXPECT_EQ(plan->batch.disputes.size(), 1u);
  // The follower's progress is the writer's to add, not the plan's.
  EXPECT_FALSE(plan->batch.peer_progress.has_value());
}

TEST_F(IngestPlanTest, AnExcludedBuilderDoesNotCount) {
  const consensus::PathInfo a = TestClaim("hello", "a");
  const consensus::PathInfo b = TestClaim("hello", "b");
  const std::vector<storage::StoredAttestation> stored = {Stored(a, federation_.alice)};
  // Without statements carol's other claim disputes the path.
  auto counted = Plan({Verified(b, federation_.carol)}, stored);
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_EQ(counted->batch.disputes.size(), 1u);

  // A maintainer found carol's builder malicious (in an earlier dispute): she no longer counts.
  const absl::StatusOr<consensus::VerifiedResolution> statement =
      Statement(TestClaim("earlier", "x"), TestClaim("earlier", "y"), consensus::ResolutionOutcome::kMalicious,
                {"carol-builder-1"}, kTestNow - 50);
  ASSERT_TRUE(statement.ok()) << statement.status();
  ResolutionBook book(book_);
  book.Add(*statement);

  auto excluded = Plan({Verified(b, federation_.carol)}, stored, "", &book);
  ASSERT_TRUE(excluded.ok()) << excluded.status();
  EXPECT_THAT(excluded->items, ElementsAre(PlannedItem::kWrite));  // stored, shown, not counted
  EXPECT_EQ(excluded->batch.attestations.size(), 1u);
  EXPECT_TRUE(excluded->batch.disputes.empty());
  EXPECT_TRUE(excluded->state_changes.empty());
}

TEST_F(IngestPlanTest, AStatementGivesItsStoredDisputeAState) {
  const consensus::PathInfo a = TestClaim("hello", "a");
  const consensus::PathInfo b = TestClaim("hello", "b");
  auto opened = Plan({Verified(b, federation_.carol)}, {Stored(a, federation_.alice), Stored(a, federation_.bob)});
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->batch.disputes.size(), 1u);
  const storage::StoredDispute dispute = opened->batch.disputes[0];

  const absl::StatusOr<consensus::VerifiedResolution> statement =
      Statement(a, b, consensus::ResolutionOutcome::kNondeterministic, {}, kTestNow - 10);
  ASSERT_TRUE(statement.ok()) << statement.status();
  EXPECT_EQ(statement->resolution.dispute_id, dispute.id);
  const std::vector<PlannedStatement> statements = {
      PlannedStatement{.statement = &*statement, .origin = "peer-1", .stored_dispute = dispute}};
  auto plan = Plan({}, {}, "peer-1", nullptr, statements);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->batch.resolutions.size(), 1u);
  EXPECT_EQ(plan->batch.resolutions[0].origin, "peer-1");
  EXPECT_EQ(plan->batch.resolutions[0].received_unix, kTestNow);
  ASSERT_EQ(plan->batch.dispute_states.size(), 1u);
  EXPECT_EQ(plan->batch.dispute_states[0].id, dispute.id);
  EXPECT_EQ(plan->batch.dispute_states[0].state, consensus::DisputeState::kNondeterministic);
  ASSERT_EQ(plan->state_changes.size(), 1u);
  EXPECT_THAT(plan->state_changes[0], HasSubstr("[from peer-1]; state nondeterministic"));
}

TEST_F(IngestPlanTest, InconsistentInputIsRefused) {
  const consensus::PathInfo claim = TestClaim("hello");
  const VerifiedAttestation item = Verified(claim, federation_.alice);
  const VerifiedAttestation* items[] = {&item};
  IngestPlanInput input;
  input.policy = &policy_;
  input.node_key = &federation_.node_key;
  input.items = items;  // its path is not among input.paths
  EXPECT_EQ(PlanIngest(input).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace attest::server
