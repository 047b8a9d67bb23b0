#include "consensus/tally.h"

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/policy.h"
#include "consensus/sha256.h"
#include "consensus/store_path.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Operators alice (builders alice-1, alice-2), bob (bob-1), carol (carol-1), dave (dave-1), with
// quorum `k`. maint-1 is a maintainer, not a builder.
Policy MakePolicy(int k) {
  std::vector<Operator> operators = {
      {"alice", {TestKey("alice-1").public_key(), TestKey("alice-2").public_key()}},
      {"bob", {TestKey("bob-1").public_key()}},
      {"carol", {TestKey("carol-1").public_key()}},
      {"dave", {TestKey("dave-1").public_key()}},
  };
  absl::StatusOr<Policy> policy =
      Policy::Create(k, std::move(operators), {TestKey("maint-1").public_key()});
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

// The "good" build of hello and a differing one.
const PathInfo& Good() {
  static const PathInfo* claim = new PathInfo(TestClaim("hello-2.12", "good bytes"));
  return *claim;
}
const PathInfo& Evil() {
  static const PathInfo* claim = new PathInfo(TestClaim("hello-2.12", "other bytes"));
  return *claim;
}

Attestation By(std::string_view key, const PathInfo& claim) {
  return SignAttestation(claim, TestKey(key));
}

TallyResult TallyOf(const Policy& policy, const std::vector<Attestation>& attestations,
                    const TallyOptions& options = {}) {
  return Tally(policy, attestations, options);
}

// ---- UNKNOWN -----------------------------------------------------------------------------------

TEST(TallyTest, UnknownWithoutAttestations) {
  TallyResult result = TallyOf(MakePolicy(2), {});
  EXPECT_EQ(result.verdict, Verdict::kUnknown);
  EXPECT_THAT(result.fingerprints, IsEmpty());
  EXPECT_THAT(result.uncounted, IsEmpty());
  EXPECT_THAT(result.flagged_builders, IsEmpty());
}

TEST(TallyTest, UnknownWhenOnlyKeysOutsideThePolicySigned) {
  // A stranger, and a maintainer key (maintainers resolve disputes; they do not build).
  TallyResult result = TallyOf(
      MakePolicy(1), {By("stranger", Good()), By("maint-1", Good()), By("stranger-2", Evil())});
  EXPECT_EQ(result.verdict, Verdict::kUnknown);
  EXPECT_THAT(result.fingerprints, IsEmpty());
  EXPECT_THAT(result.uncounted, ElementsAre(0, 1, 2));
}

TEST(TallyTest, UnknownWhenOnlyExcludedBuildersSigned) {
  TallyOptions options;
  options.excluded_builders = {"bob-1", "carol-1"};
  TallyResult result =
      TallyOf(MakePolicy(1), {By("bob-1", Good()), By("carol-1", Evil())}, options);
  EXPECT_EQ(result.verdict, Verdict::kUnknown);
  EXPECT_THAT(result.uncounted, ElementsAre(0, 1));
}

// ---- PENDING / CONFIRMED -----------------------------------------------------------------------

TEST(TallyTest, PendingWithOneOfK) {
  TallyResult result = TallyOf(MakePolicy(2), {By("bob-1", Good())});
  EXPECT_EQ(result.verdict, Verdict::kPending);
  ASSERT_EQ(result.fingerprints.size(), 1u);
  EXPECT_EQ(result.fingerprints[0].fingerprint, Good().Fingerprint());
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("bob"));
  EXPECT_THAT(result.fingerprints[0].builders, ElementsAre("bob-1"));
  EXPECT_THAT(result.fingerprints[0].attestations, ElementsAre(0));
}

TEST(TallyTest, VerdictTableForOneFingerprint) {
  struct Case {
    int k;
    std::vector<std::string> signers;
    Verdict expected;
    size_t operators;
  };
  const std::vector<Case> cases = {
      {1, {"bob-1"}, Verdict::kConfirmed, 1},
      {2, {"bob-1"}, Verdict::kPending, 1},
      {2, {"bob-1", "carol-1"}, Verdict::kConfirmed, 2},            // exactly k
      {2, {"bob-1", "carol-1", "dave-1"}, Verdict::kConfirmed, 3},  // k + 1
      {3, {"bob-1", "carol-1"}, Verdict::kPending, 2},              // k - 1
      {3, {"alice-1", "alice-2", "bob-1"}, Verdict::kPending, 2},   // alice counts once
      {3, {"alice-1", "alice-2", "bob-1", "carol-1"}, Verdict::kConfirmed, 3},
      {4, {"alice-1", "bob-1", "carol-1", "dave-1"}, Verdict::kConfirmed, 4},  // k = all
  };
  for (const Case& c : cases) {
    std::vector<Attestation> attestations;
    for (const std::string& signer : c.signers) attestations.push_back(By(signer, Good()));
    TallyResult result = TallyOf(MakePolicy(c.k), attestations);
    std::string label = ::testing::PrintToString(c.signers) + " k=" + std::to_string(c.k);
    EXPECT_EQ(result.verdict, c.expected) << label;
    ASSERT_EQ(result.fingerprints.size(), 1u) << label;
    EXPECT_EQ(result.fingerprints[0].operators.size(), c.operators) << label;
    EXPECT_THAT(result.uncounted, IsEmpty()) << label;
  }
}

TEST(TallyTest, ConfirmedAtExactlyK) {
  TallyResult result = TallyOf(MakePolicy(2), {By("carol-1", Good()), By("bob-1", Good())});
  EXPECT_EQ(result.verdict, Verdict::kConfirmed);
  ASSERT_EQ(result.fingerprints.size(), 1u);
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("bob", "carol"));
  EXPECT_THAT(result.fingerprints[0].builders, ElementsAre("bob-1", "carol-1"));
  EXPECT_THAT(result.fingerprints[0].attestations, ElementsAre(0, 1));
}

TEST(TallyTest, UncountedAttestationsDoNotBlockConfirmation) {
  // A stranger's differing claim is observation, not a dispute.
  TallyResult result =
      TallyOf(MakePolicy(2), {By("stranger", Evil()), By("bob-1", Good()), By("carol-1", Good())});
  EXPECT_EQ(result.verdict, Verdict::kConfirmed);
  EXPECT_THAT(result.uncounted, ElementsAre(0));
  EXPECT_THAT(result.fingerprints[0].attestations, ElementsAre(1, 2));
}

// ---- DISPUTED ----------------------------------------------------------------------------------

TEST(TallyTest, DisputedWhenTwoOperatorsDisagree) {
  TallyResult result = TallyOf(MakePolicy(2), {By("bob-1", Good()), By("carol-1", Evil())});
  EXPECT_EQ(result.verdict, Verdict::kDisputed);
  ASSERT_EQ(result.fingerprints.size(), 2u);
  EXPECT_THAT(result.flagged_builders, IsEmpty());
}

TEST(TallyTest, DisputedEvenWhenOneSideHasQuorum) {
  // k on one side and one lone operator on the other is still a dispute: a majority does not make
  // differing bytes trustworthy.
  TallyResult result = TallyOf(MakePolicy(2), {By("alice-1", Good()), By("bob-1", Good()),
                                               By("carol-1", Good()), By("dave-1", Evil())});
  EXPECT_EQ(result.verdict, Verdict::kDisputed);
  ASSERT_EQ(result.fingerprints.size(), 2u);
  // The larger side first.
  EXPECT_EQ(result.fingerprints[0].fingerprint, Good().Fingerprint());
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("alice", "bob", "carol"));
  EXPECT_THAT(result.fingerprints[0].attestations, ElementsAre(0, 1, 2));
  EXPECT_EQ(result.fingerprints[1].fingerprint, Evil().Fingerprint());
  EXPECT_THAT(result.fingerprints[1].operators, ElementsAre("dave"));
  EXPECT_THAT(result.fingerprints[1].attestations, ElementsAre(3));
}

TEST(TallyTest, TieIsDisputedAndOrderedByFingerprint) {
  TallyResult result = TallyOf(MakePolicy(1), {By("bob-1", Good()), By("carol-1", Evil())});
  EXPECT_EQ(result.verdict, Verdict::kDisputed);
  ASSERT_EQ(result.fingerprints.size(), 2u);
  // Equal operator counts: ascending fingerprint decides, not arrival.
  EXPECT_LT(result.fingerprints[0].fingerprint, result.fingerprints[1].fingerprint);
}

TEST(TallyTest, TwoBuildersOfOneOperatorDisagreeingIsDisputed) {
  // Nondeterminism inside one operator is still disagreement among counted builders.
  TallyResult result = TallyOf(MakePolicy(2), {By("alice-1", Good()), By("alice-2", Evil())});
  EXPECT_EQ(result.verdict, Verdict::kDisputed);
  EXPECT_THAT(result.flagged_builders, IsEmpty());
}

TEST(TallyTest, BuilderSigningTwoFingerprintsIsFlaggedAndCountsOnBothSides) {
  TallyResult result =
      TallyOf(MakePolicy(2), {By("bob-1", Good()), By("bob-1", Evil()), By("carol-1", Good())});
  EXPECT_EQ(result.verdict, Verdict::kDisputed);
  EXPECT_THAT(result.flagged_builders, ElementsAre("bob-1"));
  ASSERT_EQ(result.fingerprints.size(), 2u);
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("bob", "carol"));
  EXPECT_THAT(result.fingerprints[1].operators, ElementsAre("bob"));
  EXPECT_THAT(result.fingerprints[1].builders, ElementsAre("bob-1"));
}

TEST(TallyTest, ThreeFingerprints) {
  PathInfo third = TestClaim("hello-2.12", "third bytes");
  TallyResult result = TallyOf(MakePolicy(1), {By("bob-1", Good()), By("carol-1", Evil()),
                                               By("dave-1", third), By("alice-1", third)});
  EXPECT_EQ(result.verdict, Verdict::kDisputed);
  ASSERT_EQ(result.fingerprints.size(), 3u);
  EXPECT_EQ(result.fingerprints[0].fingerprint, third.Fingerprint());
  EXPECT_LT(result.fingerprints[1].fingerprint, result.fingerprints[2].fingerprint);
}

TEST(TallyTest, ExcludedBuilderNoLongerDisputes) {
  std::vector<Attestation> attestations = {By("bob-1", Good()), By("carol-1", Good()),
                                           By("dave-1", Evil())};
  EXPECT_EQ(TallyOf(MakePolicy(2), attestations).verdict, Verdict::kDisputed);
  TallyOptions options;
  options.excluded_builders = {"dave-1"};
  TallyResult result = TallyOf(MakePolicy(2), attestations, options);
  EXPECT_EQ(result.verdict, Verdict::kConfirmed);
  EXPECT_THAT(result.uncounted, ElementsAre(2));
  EXPECT_THAT(result.flagged_builders, IsEmpty());
}

TEST(TallyTest, ExcludedBuilderDoesNotCountTowardsQuorum) {
  TallyOptions options;
  options.excluded_builders = {"carol-1"};
  TallyResult result =
      TallyOf(MakePolicy(2), {By("bob-1", Good()), By("carol-1", Good())}, options);
  EXPECT_EQ(result.verdict, Verdict::kPending);
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("bob"));
  EXPECT_THAT(result.uncounted, ElementsAre(1));
  // Excluding one of alice's two builders leaves the other counting for alice.
  options.excluded_builders = {"alice-1"};
  result = TallyOf(MakePolicy(2),
                   {By("alice-1", Good()), By("alice-2", Good()), By("bob-1", Good())}, options);
  EXPECT_EQ(result.verdict, Verdict::kConfirmed);
  EXPECT_THAT(result.fingerprints[0].builders, ElementsAre("alice-2", "bob-1"));
}

// ---- Sybil, duplicates, stray input ------------------------------------------------------------

TEST(TallyTest, SybilOperatorWithThousandKeysIsOneVote) {
  std::vector<PublicKey> keys;
  std::vector<Attestation> attestations;
  for (int i = 0; i < 1000; ++i) {
    std::string name = "mallory-" + std::to_string(i);
    keys.push_back(TestKey(name).public_key());
    attestations.push_back(By(name, Good()));
  }
  absl::StatusOr<Policy> policy =
      Policy::Create(2, {{"mallory", keys}, {"bob", {TestKey("bob-1").public_key()}}}, {});
  ASSERT_TRUE(policy.ok()) << policy.status();
  TallyResult result = Tally(*policy, attestations);
  EXPECT_EQ(result.verdict, Verdict::kPending);
  ASSERT_EQ(result.fingerprints.size(), 1u);
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("mallory"));
  EXPECT_EQ(result.fingerprints[0].builders.size(), 1000u);
  EXPECT_EQ(result.fingerprints[0].attestations.size(), 1000u);

  // One independent operator more and it is confirmed.
  attestations.push_back(By("bob-1", Good()));
  EXPECT_EQ(Tally(*policy, attestations).verdict, Verdict::kConfirmed);
}

TEST(TallyTest, DuplicateAttestationsDoNotDoubleCount) {
  Attestation bob = By("bob-1", Good());
  TallyResult result = TallyOf(MakePolicy(2), {bob, bob, bob});
  EXPECT_EQ(result.verdict, Verdict::kPending);
  ASSERT_EQ(result.fingerprints.size(), 1u);
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("bob"));
  EXPECT_THAT(result.fingerprints[0].builders, ElementsAre("bob-1"));
  // Each copy is still listed as evidence; it just adds no weight.
  EXPECT_THAT(result.fingerprints[0].attestations, ElementsAre(0, 1, 2));
  EXPECT_THAT(result.flagged_builders, IsEmpty());

  // The same claim re-sent with other metadata (a --check rebuild) is not a second vote either.
  BuildMetadata metadata;
  metadata.build_kind = BuildKind::kCheck;
  Attestation again = SignAttestation(Good(), TestKey("bob-1"), metadata);
  EXPECT_EQ(TallyOf(MakePolicy(2), {bob, again}).verdict, Verdict::kPending);
}

TEST(TallyTest, AttestationsOfAnotherPathAreUncounted) {
  PathInfo other = TestClaim("openssl-3.0", "bytes");
  // The subject is the smallest counted path, whatever the order.
  const std::string& subject = std::min(Good().path, other.path).full();
  std::vector<Attestation> attestations = {By("bob-1", Good()), By("carol-1", other),
                                           By("dave-1", Good())};
  TallyResult result = TallyOf(MakePolicy(2), attestations);
  ASSERT_EQ(result.fingerprints.size(), 1u);
  EXPECT_NE(result.fingerprints[0].fingerprint.find(subject), std::string::npos);
  EXPECT_EQ(result.uncounted.size(), subject == Good().path.full() ? 1u : 2u);
}

TEST(TallyTest, VerdictNames) {
  EXPECT_EQ(VerdictName(Verdict::kUnknown), "UNKNOWN");
  EXPECT_EQ(VerdictName(Verdict::kPending), "PENDING");
  EXPECT_EQ(VerdictName(Verdict::kConfirmed), "CONFIRMED");
  EXPECT_EQ(VerdictName(Verdict::kDisputed), "DISPUTED");
}

// ---- Order independence ------------------------------------------------------------------------

// A result with indices replaced by the attestations they name, so results of permuted inputs can
// be compared.
struct Resolved {
  Verdict verdict;
  std::vector<std::string> fingerprints;
  std::vector<std::vector<std::string>> operators;
  std::vector<std::vector<std::string>> builders;
  std::vector<std::vector<std::string>> signatures;  // sorted per side
  std::vector<std::string> uncounted;                // sorted signatures
  std::vector<std::string> flagged;
  bool operator==(const Resolved&) const = default;
};

std::string Describe(const Attestation& a) {
  return a.claim.Fingerprint() + "|" + a.signature.ToString();
}

Resolved Resolve(const TallyResult& result, const std::vector<Attestation>& input) {
  Resolved r{result.verdict, {}, {}, {}, {}, {}, result.flagged_builders};
  for (const FingerprintTally& f : result.fingerprints) {
    r.fingerprints.push_back(f.fingerprint);
    r.operators.push_back(f.operators);
    r.builders.push_back(f.builders);
    std::vector<std::string> signatures;
    EXPECT_TRUE(std::is_sorted(f.attestations.begin(), f.attestations.end()));
    for (size_t i : f.attestations) signatures.push_back(Describe(input[i]));
    std::sort(signatures.begin(), signatures.end());
    r.signatures.push_back(signatures);
  }
  EXPECT_TRUE(std::is_sorted(result.uncounted.begin(), result.uncounted.end()));
  for (size_t i : result.uncounted) r.uncounted.push_back(Describe(input[i]));
  std::sort(r.uncounted.begin(), r.uncounted.end());
  return r;
}

TEST(TallyTest, OrderOfArrivalNeverMatters) {
  PathInfo third = TestClaim("hello-2.12", "third bytes");
  // A stray attestation of another path, which sorts after hello's (the subject is the smallest
  // counted path; see AttestationsOfAnotherPathAreUncounted).
  absl::StatusOr<StorePath> zzz =
      StorePath::Parse("/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-other");
  ASSERT_TRUE(zzz.ok());
  absl::StatusOr<PathInfo> other_path =
      PathInfo::Create(*zzz, NarHash::FromDigest(Sha256("bytes")), 1234, {});
  ASSERT_TRUE(other_path.ok());
  std::vector<Attestation> input = {
      By("alice-1", Good()),  By("alice-2", Good()),      By("bob-1", Good()),
      By("bob-1", Evil()),    By("carol-1", Evil()),      By("dave-1", third),
      By("stranger", Good()), By("maint-1", Evil()),      By("carol-1", Evil()),
      By("dave-1", Good()),   By("carol-1", *other_path),
  };
  TallyOptions options;
  options.excluded_builders = {"alice-2"};
  const Policy policy = MakePolicy(2);
  const TallyResult first = Tally(policy, input, options);
  const Resolved expected = Resolve(first, input);
  EXPECT_EQ(first.verdict, Verdict::kDisputed);
  EXPECT_THAT(first.flagged_builders, ElementsAre("bob-1", "dave-1"));

  std::mt19937 rng(20240601);  // fixed seed: failures reproduce
  for (int round = 0; round < 200; ++round) {
    std::vector<Attestation> shuffled = input;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    TallyResult result = Tally(policy, shuffled, options);
    ASSERT_EQ(Resolve(result, shuffled), expected) << "round " << round;
  }
}

TEST(TallyTest, OrderIndependentAcrossVerdicts) {
  const Policy policy = MakePolicy(2);
  std::vector<std::vector<Attestation>> inputs = {
      {By("bob-1", Good()), By("carol-1", Good()), By("stranger", Evil())},
      {By("bob-1", Good()), By("stranger", Evil()), By("alice-1", Good()), By("alice-2", Good())},
  };
  std::mt19937 rng(7);
  for (const std::vector<Attestation>& input : inputs) {
    const Resolved expected = Resolve(Tally(policy, input), input);
    for (int round = 0; round < 50; ++round) {
      std::vector<Attestation> shuffled = input;
      std::shuffle(shuffled.begin(), shuffled.end(), rng);
      ASSERT_EQ(Resolve(Tally(policy, shuffled), shuffled), expected);
    }
  }
}

}  // namespace
}  // namespace attest::consensus
