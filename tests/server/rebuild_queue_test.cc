#include "server/rebuild_queue.h"

#include <string>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/dispute.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/derivation_intake.h"
#include "server/policy_book.h"
#include "storage/memory_attestation_store.h"
#include "tests/server/derivation_test_util.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::FixedNow;
using ::attest::testing::MakeTestDrv;
using ::attest::testing::TestClaim;
using ::attest::testing::TestDrv;
using ::attest::testing::TestStorePath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RebuildQueueTest : public ::testing::Test {
 protected:
  RebuildQueueTest()
      : policy_(federation_.MakePolicy(2)),
        queue_(policy_book_, &store_, &store_, &demand_, &book_, nullptr, [this] { return now_; }) {}

  // Stores an attestation of `path` (claim made from `content`) by `key`, naming `deriver` as its
  // derivation when given.
  void Attest(const consensus::StorePath& path, const consensus::SecretKey& key, const std::string& content = "x",
              const std::string& deriver = "") {
    absl::StatusOr<consensus::PathInfo> claim =
        consensus::PathInfo::Create(path, TestClaim("x", content).nar_hash, 100, {});
    ASSERT_TRUE(claim.ok());
    consensus::BuildMetadata metadata;
    metadata.deriver = deriver;
    metadata.output_name = deriver.empty() ? "" : "out";
    metadata.build_kind = consensus::BuildKind::kFirstBuild;
    storage::WriteBatch batch;
    batch.attestations.push_back(storage::StoredAttestation{
        .attestation = consensus::SignAttestation(*claim, key, metadata), .received_unix = testing::kTestNow,
                                      .observed_key = std::nullopt,
                                      .origin = ""});
    ASSERT_TRUE(store_.Write(batch).ok());
  }

  void Ask(const consensus::StorePath& path, int times) {
    for (int i = 0; i < times; ++i) demand_.Record(path, absl::StrCat("10.0.0.", i), now_);
  }

  static std::vector<std::string> Paths(const std::vector<WantedItem>& items) {
    std::vector<std::string> paths;
    for (const WantedItem& item : items) paths.push_back(item.path.full());
    return paths;
  }

  Federation federation_;
  consensus::Policy policy_;
  PolicyBook policy_book_{policy_};  // what the components ask for the current policy
  storage::MemoryAttestationStore store_;
  DemandBook demand_;
  RebuildBook book_;
  absl::Time now_ = FixedNow();
  RebuildQueue queue_;
};

TEST_F(RebuildQueueTest, OrdersByDemandThenByOperatorsNeededAndLeavesOutConfirmedPaths) {
  const consensus::StorePath unknown = TestStorePath("unknown");
  const consensus::StorePath pending = TestStorePath("pending");
  const consensus::StorePath pending_too = TestStorePath("pending-too");
  const consensus::StorePath confirmed = TestStorePath("confirmed");
  Attest(pending, federation_.alice);
  Attest(pending_too, federation_.bob);
  Attest(confirmed, federation_.alice);
  Attest(confirmed, federation_.bob);
  Ask(unknown, 2);
  Ask(pending, 2);
  Ask(pending_too, 5);
  Ask(confirmed, 9);

  absl::StatusOr<WantedList> list = queue_.Wanted({});
  ASSERT_TRUE(list.ok()) << list.status();
  // pending-too has most demand; pending and unknown tie on demand, and pending needs one operator less.
  EXPECT_THAT(Paths(list->wanted), ElementsAre(pending_too.full(), pending.full(), unknown.full()));
  EXPECT_EQ(list->wanted[0].operators_needed, 1);
  EXPECT_THAT(list->wanted[0].operators, ElementsAre("bob-labs"));
  EXPECT_EQ(list->wanted[2].operators_needed, 2);
  EXPECT_EQ(list->wanted[2].verdict, consensus::Verdict::kUnknown);
  EXPECT_NEAR(list->wanted[0].demand, 5.0, 1e-9);
  EXPECT_EQ(list->quorum, 2);
  EXPECT_TRUE(list->disputed.empty());
  // The confirmed path left the demand book while the queue was walked.
  EXPECT_EQ(demand_.DemandOf(confirmed, now_), 0);
  EXPECT_EQ(demand_.stats().paths, 3u);
}

TEST_F(RebuildQueueTest, ListsDisputedPathsApartAndFiltersByOperator) {
  const consensus::StorePath disputed = TestStorePath("disputed");
  const consensus::StorePath mine = TestStorePath("mine");
  const consensus::StorePath theirs = TestStorePath("theirs");
  Attest(disputed, federation_.alice, "one");
  Attest(disputed, federation_.bob, "two");
  Attest(mine, federation_.carol);
  Attest(theirs, federation_.alice);
  Ask(disputed, 3);
  Ask(mine, 2);
  Ask(theirs, 1);

  absl::StatusOr<WantedList> all = queue_.Wanted({});
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(Paths(all->wanted), ElementsAre(mine.full(), theirs.full()));
  ASSERT_EQ(all->disputed.size(), 1u);
  EXPECT_EQ(all->disputed[0].path, disputed);
  EXPECT_EQ(all->disputed[0].dispute_id, consensus::DisputeId(disputed));
  EXPECT_EQ(all->disputed[0].operators_needed, 0);
  EXPECT_THAT(all->disputed[0].operators, ElementsAre("alice-ci", "bob-labs"));

  absl::StatusOr<WantedList> for_carol = queue_.Wanted({.operator_name = "carol-home"});
  ASSERT_TRUE(for_carol.ok());
  EXPECT_THAT(Paths(for_carol->wanted), ElementsAre(theirs.full()));
  EXPECT_EQ(for_carol->disputed.size(), 1u) << "a further operator's rebuild of a dispute is evidence too";
  absl::StatusOr<WantedList> for_alice = queue_.Wanted({.operator_name = "alice-ci"});
  ASSERT_TRUE(for_alice.ok());
  EXPECT_THAT(Paths(for_alice->wanted), ElementsAre(mine.full()));
  EXPECT_TRUE(for_alice->disputed.empty());

  absl::StatusOr<WantedList> limited = queue_.Wanted({.limit = 1});
  ASSERT_TRUE(limited.ok());
  EXPECT_THAT(Paths(limited->wanted), ElementsAre(mine.full()));
}

TEST_F(RebuildQueueTest, NamesTheDerivationsThatBuildEachPathAndWhetherTheNodeHoldsThem) {
  const TestDrv base = MakeTestDrv("base");
  const TestDrv top = MakeTestDrv("top", {&base});
  const TestDrv reported_only = MakeTestDrv("reported");
  Attest(top.out, federation_.alice, "x", top.path.full());
  Attest(reported_only.out, federation_.bob, "x", reported_only.path.full());
  DerivationIntake intake(&store_, &store_, [this] { return now_; });
  absl::StatusOr<std::vector<DerivationVerdict>> stored = intake.Submit(std::vector<DerivationUpload>{
      {.store_path = top.path.full(), .contents = top.contents},
      {.store_path = base.path.full(), .contents = base.contents}});
  ASSERT_TRUE(stored.ok());
  Ask(top.out, 2);
  Ask(reported_only.out, 1);
  Ask(base.out, 1);  // nobody attested it: known from the stored derivation alone

  absl::StatusOr<WantedList> list = queue_.Wanted({});
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->wanted.size(), 3u);
  ASSERT_EQ(list->wanted[0].path, top.out);
  ASSERT_EQ(list->wanted[0].derivers.size(), 1u);
  EXPECT_EQ(list->wanted[0].derivers[0].drv_path, top.path);
  EXPECT_EQ(list->wanted[0].derivers[0].output_name, "out");
  EXPECT_TRUE(list->wanted[0].derivers[0].available);
  for (const WantedItem& item : list->wanted) {
    if (item.path == reported_only.out) {
      ASSERT_EQ(item.derivers.size(), 1u);
      EXPECT_FALSE(item.derivers[0].available) << "reported by a builder, never sent";
    }
    if (item.path == base.out) {
      ASSERT_EQ(item.derivers.size(), 1u);
      EXPECT_TRUE(item.derivers[0].available);
    }
  }
  absl::StatusOr<bool> buildable = queue_.HasDerivationFor(top.out);
  ASSERT_TRUE(buildable.ok());
  EXPECT_TRUE(*buildable);
  buildable = queue_.HasDerivationFor(reported_only.out);
  ASSERT_TRUE(buildable.ok());
  EXPECT_FALSE(*buildable);
}

TEST_F(RebuildQueueTest, ShowsLeasesAndRefusesBadQueries) {
  const consensus::StorePath path = TestStorePath("leased");
  Ask(path, 1);
  ASSERT_TRUE(book_.Acquire(path, "carol-home", "carol-builder-1", now_).ok());
  absl::StatusOr<WantedList> list = queue_.Wanted({});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->wanted.size(), 1u);
  ASSERT_EQ(list->wanted[0].leases.size(), 1u);
  EXPECT_EQ(list->wanted[0].leases[0].builder, "carol-builder-1");

  EXPECT_EQ(queue_.Wanted({.limit = -1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(queue_.Wanted({.limit = kMaxWantedLimit + 1}).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<WantedList> stranger = queue_.Wanted({.operator_name = "nobody"});
  EXPECT_EQ(stranger.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stranger.status().message(), HasSubstr("nobody"));
}

}  // namespace
}  // namespace attest::server
