#include "server/derivation_intake.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/attestation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/memory_attestation_store.h"
#include "tests/server/derivation_test_util.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::FixedNow;
using ::attest::testing::MakeTestDrv;
using ::attest::testing::TestDrv;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class DerivationIntakeTest : public ::testing::Test {
 protected:
  DerivationIntakeTest()
      : base_(MakeTestDrv("base")),
        middle_(MakeTestDrv("middle", {&base_})),
        top_(MakeTestDrv("top", {&middle_})),
        intake_(&store_, &store_, [] { return FixedNow(); }) {}

  // A stored attestation of `path` by `key` (with `observed` it is stored for observation).
  void Attest(const consensus::StorePath& path, const consensus::SecretKey& key, bool observed = false) {
    absl::StatusOr<consensus::PathInfo> claim =
        consensus::PathInfo::Create(path, attest::testing::TestClaim("x").nar_hash, 100, {});
    ASSERT_TRUE(claim.ok()) << claim.status();
    storage::StoredAttestation stored{.attestation = consensus::SignAttestation(*claim, key),
                                      .received_unix = testing::kTestNow,
                                      .observed_key = std::nullopt,
                                      .origin = ""};
    if (observed) stored.observed_key = key.public_key();
    storage::WriteBatch batch;
    batch.attestations.push_back(stored);
    ASSERT_TRUE(store_.Write(batch).ok());
  }

  static DerivationUpload Upload(const TestDrv& drv) {
    return DerivationUpload{.store_path = drv.path.full(), .contents = drv.contents};
  }

  std::vector<DerivationOutcome> Outcomes(const std::vector<DerivationUpload>& uploads) {
    absl::StatusOr<std::vector<DerivationVerdict>> verdicts = intake_.Submit(uploads);
    EXPECT_TRUE(verdicts.ok()) << verdicts.status();
    std::vector<DerivationOutcome> outcomes;
    if (!verdicts.ok()) return outcomes;
    last_ = *verdicts;
    for (const DerivationVerdict& verdict : *verdicts) outcomes.push_back(verdict.outcome);
    return outcomes;
  }

  Federation federation_;
  storage::MemoryAttestationStore store_;
  TestDrv base_, middle_, top_;
  DerivationIntake intake_;
  std::vector<DerivationVerdict> last_;
};

TEST_F(DerivationIntakeTest, StoresTheClosureOfAnAttestedDerivationAndServesItInputsFirst) {
  Attest(top_.out, federation_.alice);
  EXPECT_THAT(Outcomes({Upload(top_), Upload(base_), Upload(middle_)}),
              ElementsAre(DerivationOutcome::kStored, DerivationOutcome::kStored, DerivationOutcome::kStored));
  EXPECT_THAT(Outcomes({Upload(middle_)}), ElementsAre(DerivationOutcome::kAlreadyPresent));

  absl::StatusOr<DerivationClosure> closure = intake_.Get(std::vector<std::string>{top_.path.full()}, /*closure=*/true);
  ASSERT_TRUE(closure.ok()) << closure.status();
  ASSERT_EQ(closure->derivations.size(), 3u);
  EXPECT_EQ(closure->derivations[0].path, base_.path);
  EXPECT_EQ(closure->derivations[1].path, middle_.path);
  EXPECT_EQ(closure->derivations[2].path, top_.path);
  EXPECT_EQ(closure->derivations[2].contents, top_.contents);
  EXPECT_TRUE(closure->missing.empty());

  absl::StatusOr<DerivationClosure> alone = intake_.Get(std::vector<std::string>{top_.path.full()}, /*closure=*/false);
  ASSERT_TRUE(alone.ok());
  ASSERT_EQ(alone->derivations.size(), 1u);

  // The output index: the node knows which derivation builds top, also by hash part.
  absl::StatusOr<std::vector<std::vector<storage::DerivationOfOutput>>> producing =
      store_.DerivationsProducing(std::vector<consensus::StorePath>{top_.out});
  ASSERT_TRUE(producing.ok());
  ASSERT_EQ((*producing)[0].size(), 1u);
  EXPECT_EQ((*producing)[0][0].drv_path, top_.path);
  EXPECT_EQ((*producing)[0][0].output_name, "out");

  const TestDrv other = MakeTestDrv("other");
  absl::StatusOr<std::vector<std::string>> missing = intake_.Missing(std::vector<std::string>{top_.path.full(), other.path.full()});
  ASSERT_TRUE(missing.ok());
  EXPECT_THAT(*missing, ElementsAre(other.path.full()));
  EXPECT_EQ(intake_.stats().stored, 3u);
}

TEST_F(DerivationIntakeTest, RefusesDerivationsNothingAttestedNeeds) {
  EXPECT_THAT(Outcomes({Upload(base_)}), ElementsAre(DerivationOutcome::kRejected));
  EXPECT_EQ(last_[0].reason.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(last_[0].reason.message(), HasSubstr("none of its outputs is attested"));
  // An attestation by a key outside the policy, stored for observation, does not make it wanted.
  Attest(base_.out, federation_.outsider, /*observed=*/true);
  EXPECT_THAT(Outcomes({Upload(base_)}), ElementsAre(DerivationOutcome::kRejected));
  absl::StatusOr<std::vector<bool>> held = store_.HasDerivations(std::vector<consensus::StorePath>{base_.path});
  ASSERT_TRUE(held.ok());
  EXPECT_FALSE((*held)[0]);
}

TEST_F(DerivationIntakeTest, RefusesAFileWhoseContentsDoNotGiveItsPath) {
  Attest(base_.out, federation_.alice);
  DerivationUpload tampered = Upload(base_);
  tampered.contents.replace(tampered.contents.find("hello"), 5, "HELLO");
  EXPECT_THAT(Outcomes({tampered}), ElementsAre(DerivationOutcome::kRejected));
  EXPECT_EQ(last_[0].reason.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(last_[0].reason.message(), HasSubstr(base_.path.full()));

  DerivationUpload not_drv{.store_path = base_.out.full(), .contents = base_.contents};
  EXPECT_THAT(Outcomes({not_drv}), ElementsAre(DerivationOutcome::kRejected));
  EXPECT_THAT(last_[0].reason.message(), HasSubstr("not a derivation"));
  DerivationUpload garbage{.store_path = "/nix/store/short-x.drv", .contents = base_.contents};
  EXPECT_THAT(Outcomes({garbage}), ElementsAre(DerivationOutcome::kRejected));
  EXPECT_EQ(last_[0].reason.code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DerivationIntakeTest, RefusesADerivationWhoseInputIsNeitherSentNorHeld) {
  Attest(top_.out, federation_.alice);
  EXPECT_THAT(Outcomes({Upload(top_), Upload(middle_)}),
              ElementsAre(DerivationOutcome::kRejected, DerivationOutcome::kRejected));
  EXPECT_EQ(last_[1].reason.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(last_[1].reason.message(), HasSubstr(base_.path.full()));
  EXPECT_THAT(last_[0].reason.message(), HasSubstr(middle_.path.full()));
  // Once the inputs are held, the derivation alone is enough.
  Attest(middle_.out, federation_.bob);
  EXPECT_THAT(Outcomes({Upload(middle_), Upload(base_)}),
              ElementsAre(DerivationOutcome::kStored, DerivationOutcome::kStored));
  EXPECT_THAT(Outcomes({Upload(top_)}), ElementsAre(DerivationOutcome::kStored));
}

TEST_F(DerivationIntakeTest, RefusesOutputPathsTheDerivationDoesNotGiveAndEverythingBuiltOnThem) {
  // A derivation that claims another output path, with its store path recomputed so that only the
  // output check can catch it.
  consensus::Derivation lying = middle_.parsed;
  lying.outputs[0].path = top_.out;
  for (auto& [name, value] : lying.env) {
    if (name == "out") value = top_.out.full();
  }
  const std::string contents = consensus::UnparseDerivation(lying);
  absl::StatusOr<consensus::StorePath> path =
      consensus::TextStorePath("middle.drv", contents, consensus::DerivationReferences(lying));
  ASSERT_TRUE(path.ok());
  Attest(top_.out, federation_.alice);
  EXPECT_THAT(Outcomes({DerivationUpload{.store_path = path->full(), .contents = contents}, Upload(base_)}),
              ElementsAre(DerivationOutcome::kRejected, DerivationOutcome::kRejected));
  EXPECT_EQ(last_[0].reason.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(last_[0].reason.message(), HasSubstr("output out"));
  absl::StatusOr<std::vector<std::vector<storage::DerivationOfOutput>>> producing =
      store_.DerivationsProducing(std::vector<consensus::StorePath>{top_.out});
  ASSERT_TRUE(producing.ok());
  EXPECT_TRUE((*producing)[0].empty()) << "a lying derivation must not enter the output index";

  // An input that is rejected takes its dependents with it.
  DerivationUpload bad_base = Upload(base_);
  bad_base.contents += " ";
  EXPECT_THAT(Outcomes({Upload(top_), Upload(middle_), bad_base}),
              ElementsAre(DerivationOutcome::kRejected, DerivationOutcome::kRejected, DerivationOutcome::kRejected));
  EXPECT_THAT(last_[0].reason.message(), HasSubstr(middle_.path.full()));
}

TEST_F(DerivationIntakeTest, RefusesRequestsOverTheBoundsAsAWhole) {
  std::vector<DerivationUpload> many(kMaxDerivationsPerRequest + 1, Upload(base_));
  absl::StatusOr<std::vector<DerivationVerdict>> too_many = intake_.Submit(many);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  DerivationUpload huge = Upload(base_);
  huge.contents.assign(consensus::kMaxDerivationBytes + 1, 'x');
  EXPECT_THAT(Outcomes({huge}), ElementsAre(DerivationOutcome::kRejected));
  EXPECT_EQ(last_[0].reason.code(), absl::StatusCode::kInvalidArgument);
  std::vector<std::string> paths(kMaxDerivationPathsPerRequest + 1, base_.path.full());
  EXPECT_EQ(intake_.Missing(paths).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(intake_.Get(std::vector<std::string>{"/nix/store/not-a-path"}, true).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DerivationIntakeTest, ADeepChainIsCheckedWithoutRecursion) {
  std::vector<TestDrv> chain;
  chain.reserve(500);
  chain.push_back(MakeTestDrv("link-0"));
  for (int i = 1; i < 500; ++i) chain.push_back(MakeTestDrv(absl::StrCat("link-", i), {&chain.back()}));
  Attest(chain.back().out, federation_.alice);
  std::vector<DerivationUpload> uploads;
  for (const TestDrv& drv : chain) uploads.push_back(Upload(drv));
  absl::StatusOr<std::vector<DerivationVerdict>> verdicts = intake_.Submit(uploads);
  ASSERT_TRUE(verdicts.ok()) << verdicts.status();
  for (const DerivationVerdict& verdict : *verdicts) ASSERT_EQ(verdict.outcome, DerivationOutcome::kStored) << verdict.reason;
  absl::StatusOr<DerivationClosure> closure = intake_.Get(std::vector<std::string>{chain.back().path.full()}, true);
  ASSERT_TRUE(closure.ok());
  ASSERT_EQ(closure->derivations.size(), chain.size());
  EXPECT_EQ(closure->derivations.front().path, chain.front().path);
}

}  // namespace
}  // namespace attest::server
