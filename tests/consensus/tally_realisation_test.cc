// TallyRealisation: the tally of one derivation output's realisations (consensus/tally.h).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "consensus/policy.h"
#include "consensus/realisation.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::TestKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::string_view kHex = "881aa2e7fc72fca6d3f39b12573752d7a82a347ee9c3d6b458482436800b3e8a";
constexpr std::string_view kOtherHex = "c5936e5feb70b28cdf6e949e514fdc84263a1b73df6a02aa8c610ecb97e113c1";

Policy MustCreate(PolicySpec spec) {
  absl::StatusOr<Policy> policy = Policy::Create(std::move(spec));
  EXPECT_TRUE(policy.ok()) << policy.status();
  if (!policy.ok()) std::abort();
  return *std::move(policy);
}

Quorum Any(int k) { return Quorum{.any = k, .of = std::nullopt}; }

// Any 2 of alice (alice-1, alice-2), bob, carol, dave by default; lenient-* needs 1, openssl-* 3.
Policy PolicyWithRules() {
  return MustCreate(PolicySpec{
      .quorum = Any(2),
      .operators = {{"alice", {TestKey("alice-1").public_key(), TestKey("alice-2").public_key()}},
                    {"bob", {TestKey("bob-1").public_key()}},
                    {"carol", {TestKey("carol-1").public_key()}},
                    {"dave", {TestKey("dave-1").public_key()}}},
      .maintainers = {TestKey("maint-1").public_key()},
      .rules = {Rule{.names = {"lenient-*"}, .quorum = Any(1)}, Rule{.names = {"openssl-*"}, .quorum = Any(3)}},
  });
}

StorePath Base(std::string_view base) {
  absl::StatusOr<StorePath> path = StorePath::ParseBaseName(base);
  EXPECT_TRUE(path.ok()) << path.status();
  return *path;
}

Realisation Claim(std::string_view key_text, std::string_view out_base) {
  absl::StatusOr<RealisationKey> key = RealisationKey::Parse(key_text);
  EXPECT_TRUE(key.ok()) << key.status();
  absl::StatusOr<Realisation> claim = Realisation::Create(*key, Base(out_base));
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *claim;
}

std::string OldKey(std::string_view hex = kHex) { return Cat("sha256:", hex, "!out"); }

// Output `out` of a nondeterministic CA derivation, as two builders may realise it.
Realisation Good() { return Claim(OldKey(), "bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-hello"); }
Realisation Other() { return Claim(OldKey(), "2xnlz1767m56p96dy4ji1k3qqzdyfi0l-hello"); }

RealisationAttestation By(std::string_view key, const Realisation& claim) {
  return SignRealisation(claim, TestKey(key));
}

TallyResult TallyOf(const Policy& policy, const std::vector<RealisationAttestation>& attestations,
                    const TallyOptions& options = {}, const std::vector<int64_t>& received = {}) {
  std::vector<const RealisationAttestation*> borrowed;
  for (const RealisationAttestation& a : attestations) borrowed.push_back(&a);
  return TallyRealisation(policy, borrowed, options, received);
}

TEST(TallyRealisationTest, UnknownWithoutCountedAttestations) {
  EXPECT_EQ(TallyOf(PolicyWithRules(), {}).verdict, Verdict::kUnknown);
  const TallyResult result = TallyOf(PolicyWithRules(), {By("stranger", Good()), By("maint-1", Other())});
  EXPECT_EQ(result.verdict, Verdict::kUnknown);
  EXPECT_THAT(result.fingerprints, IsEmpty());
  EXPECT_THAT(result.uncounted, ElementsAre(0, 1));
}

TEST(TallyRealisationTest, ConfirmedWhenTheQuorumSignedOneFingerprint) {
  const TallyResult result = TallyOf(PolicyWithRules(), {By("alice-1", Good()), By("bob-1", Good()),
                                                         By("alice-2", Good()), By("stranger", Other())});
  EXPECT_EQ(result.verdict, Verdict::kConfirmed);
  EXPECT_EQ(result.rule, "default");
  EXPECT_EQ(result.rule_index, -1);
  ASSERT_EQ(result.fingerprints.size(), 1u);
  EXPECT_EQ(result.fingerprints[0].fingerprint, Good().Fingerprint());
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("alice", "bob"));
  EXPECT_THAT(result.fingerprints[0].builders, ElementsAre("alice-1", "alice-2", "bob-1"));
  EXPECT_THAT(result.fingerprints[0].attestations, ElementsAre(0, 1, 2));
  EXPECT_THAT(result.uncounted, ElementsAre(3));
  EXPECT_EQ(result.quorum_explanation, "2 operators (alice, bob)");
}

TEST(TallyRealisationTest, PendingWhenOneOperatorSigned) {
  // Two keys of one operator are one vote.
  const TallyResult result = TallyOf(PolicyWithRules(), {By("alice-1", Good()), By("alice-2", Good())});
  EXPECT_EQ(result.verdict, Verdict::kPending);
  EXPECT_EQ(result.quorum_explanation, "1 of 2 operators needed (alice)");
}

TEST(TallyRealisationTest, DisputedWhenBuildersMapTheOutputToDifferentPaths) {
  const TallyResult result = TallyOf(
      PolicyWithRules(), {By("alice-1", Good()), By("bob-1", Good()), By("dave-1", Good()), By("carol-1", Other()),
                          By("bob-1", Other())});
  EXPECT_EQ(result.verdict, Verdict::kDisputed);
  ASSERT_EQ(result.fingerprints.size(), 2u);
  EXPECT_EQ(result.fingerprints[0].fingerprint, Good().Fingerprint());
  EXPECT_THAT(result.fingerprints[0].operators, ElementsAre("alice", "bob", "dave"));
  EXPECT_EQ(result.fingerprints[1].fingerprint, Other().Fingerprint());
  EXPECT_THAT(result.fingerprints[1].operators, ElementsAre("bob", "carol"));
  EXPECT_THAT(result.flagged_builders, ElementsAre("bob-1"));
}

TEST(TallyRealisationTest, AttestationsOfAnotherKeyAreUncounted) {
  const Realisation stray = Claim(OldKey(kOtherHex), "2xnlz1767m56p96dy4ji1k3qqzdyfi0l-hello");
  // The subject is the smallest counted key; kOtherHex sorts after kHex.
  const TallyResult result =
      TallyOf(PolicyWithRules(), {By("carol-1", stray), By("alice-1", Good()), By("bob-1", Good())});
  EXPECT_EQ(result.verdict, Verdict::kConfirmed);
  EXPECT_THAT(result.uncounted, ElementsAre(0));
  // The other format's key for the same output is another key, too.
  const Realisation trace = Claim("/nix/store/has7z8wlinxy6gai7f9ywyi30mna5s9f-hello.drv^out",
                                  "bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-hello");
  const TallyResult mixed = TallyOf(PolicyWithRules(), {By("alice-1", trace), By("bob-1", Good())});
  EXPECT_EQ(mixed.verdict, Verdict::kPending);
  EXPECT_EQ(mixed.uncounted.size(), 1u);
}

TEST(TallyRealisationTest, OldFormatKeyTakesItsRuleFromTheClaimedNameButNeedsTheDefaultQuorumToo) {
  const Policy policy = PolicyWithRules();
  // A 2.8 key: the name "lenient-tool" is only the builder's word.
  const Realisation lenient = Claim(OldKey(), "bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-lenient-tool");
  const TallyResult one = TallyOf(policy, {By("alice-1", lenient)});
  EXPECT_EQ(one.verdict, Verdict::kPending);
  EXPECT_EQ(one.rule, "lenient-*");
  EXPECT_EQ(one.rule_index, 0);
  EXPECT_THAT(one.quorum_explanation, HasSubstr("rule lenient-*: "));
  EXPECT_THAT(one.quorum_explanation, HasSubstr("; default: 1 of 2 operators needed (alice)"));
  const TallyResult two = TallyOf(policy, {By("alice-1", lenient), By("bob-1", lenient)});
  EXPECT_EQ(two.verdict, Verdict::kConfirmed);
  EXPECT_EQ(two.rule, "lenient-*");

  // A stricter rule chosen by name applies in full.
  const Realisation openssl = Claim(OldKey(), "bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-openssl-3.0");
  const TallyResult strict = TallyOf(policy, {By("alice-1", openssl), By("bob-1", openssl)});
  EXPECT_EQ(strict.verdict, Verdict::kPending);
  EXPECT_EQ(strict.rule, "openssl-*");
  EXPECT_EQ(
      TallyOf(policy, {By("alice-1", openssl), By("bob-1", openssl), By("carol-1", openssl)}).verdict,
      Verdict::kConfirmed);
}

TEST(TallyRealisationTest, NewFormatKeyTakesItsRuleFromTheDerivationName) {
  const Policy policy = PolicyWithRules();
  // The key names the derivation, so the lenient rule applies on its own.
  const Realisation lenient = Claim("/nix/store/has7z8wlinxy6gai7f9ywyi30mna5s9f-lenient-tool.drv^out",
                                    "bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-lenient-tool");
  const TallyResult result = TallyOf(policy, {By("alice-1", lenient)});
  EXPECT_EQ(result.verdict, Verdict::kConfirmed);
  EXPECT_EQ(result.rule, "lenient-*");
  EXPECT_EQ(result.quorum_explanation, "1 operator (alice)");
  // Even without a counted attestation the rule is named from the key.
  EXPECT_EQ(TallyOf(policy, {By("stranger", lenient)}).rule, "lenient-*");
}

TEST(TallyRealisationTest, ExcludedAndRetiredBuildersDoNotCount) {
  const Policy policy = PolicyWithRules();
  TallyOptions options;
  options.excluded_builders = {"bob-1"};
  const TallyResult result = TallyOf(policy, {By("alice-1", Good()), By("bob-1", Good())}, options);
  EXPECT_EQ(result.verdict, Verdict::kPending);
  EXPECT_THAT(result.uncounted, ElementsAre(1));

  // A retired key counts for what was received before its cut-off, and never without times.
  constexpr int64_t kCutOff = 1000;
  const Policy retiring = MustCreate(PolicySpec{
      .quorum = Any(2),
      .operators = {{"alice", {TestKey("alice-1").public_key()}}, {"bob", {TestKey("bob-old").public_key()}}},
      .maintainers = {},
      .lifecycles = {{"bob-old", KeyLifecycle{.state = KeyState::kRetired, .retired_unix = kCutOff,
                                              .revoked_reason = ""}}},
  });
  const std::vector<RealisationAttestation> both = {By("alice-1", Good()), By("bob-old", Good())};
  EXPECT_EQ(TallyOf(retiring, both, {}, {5, kCutOff - 1}).verdict, Verdict::kConfirmed);
  EXPECT_EQ(TallyOf(retiring, both, {}, {5, kCutOff}).verdict, Verdict::kPending);
  EXPECT_EQ(TallyOf(retiring, both).verdict, Verdict::kPending);
  EXPECT_EQ(TallyOf(retiring, both, {}, {5}).verdict, Verdict::kPending);  // another length: unknown
}

TEST(TallyRealisationTest, InputOrderNeverChangesTheResult) {
  const Policy policy = PolicyWithRules();
  const Realisation stray = Claim(OldKey(kOtherHex), "2xnlz1767m56p96dy4ji1k3qqzdyfi0l-hello");
  const std::vector<RealisationAttestation> input = {
      By("alice-1", Good()), By("alice-2", Other()), By("bob-1", Good()),   By("carol-1", Other()),
      By("dave-1", Good()),  By("stranger", Good()), By("carol-1", stray), By("bob-1", Good()),
      By("alice-1", Other())};
  // What a result says, independent of input positions.
  using Side = std::tuple<std::string, std::vector<std::string>, std::vector<std::string>, size_t>;
  auto describe = [](const TallyResult& r, const std::vector<RealisationAttestation>& in) {
    std::vector<Side> sides;
    for (const FingerprintTally& f : r.fingerprints) {
      sides.emplace_back(f.fingerprint, f.operators, f.builders, f.attestations.size());
    }
    std::vector<std::string> uncounted;
    for (size_t i : r.uncounted) uncounted.push_back(Cat(in[i].key_name(), " ", in[i].claim.Fingerprint()));
    std::sort(uncounted.begin(), uncounted.end());
    return std::make_tuple(r.verdict, r.rule, r.quorum_explanation, sides, r.flagged_builders, uncounted);
  };
  const TallyResult first = TallyOf(policy, input);
  EXPECT_EQ(first.verdict, Verdict::kDisputed);
  EXPECT_THAT(first.flagged_builders, ElementsAre("alice-1"));
  ASSERT_EQ(first.fingerprints.size(), 2u);
  EXPECT_THAT(first.fingerprints[0].operators, ElementsAre("alice", "bob", "dave"));
  EXPECT_THAT(first.fingerprints[1].operators, ElementsAre("alice", "carol"));
  EXPECT_EQ(first.uncounted.size(), 2u);  // the stranger, and the other key's claim
  const auto expected = describe(first, input);

  std::mt19937 rng(18);  // fixed seed: failures reproduce
  std::vector<RealisationAttestation> shuffled = input;
  for (int round = 0; round < 200; ++round) {
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const TallyResult result = TallyOf(policy, shuffled);
    ASSERT_EQ(describe(result, shuffled), expected) << "round " << round;
    for (const FingerprintTally& f : result.fingerprints) {
      ASSERT_TRUE(std::is_sorted(f.attestations.begin(), f.attestations.end()));
      for (size_t i : f.attestations) ASSERT_EQ(shuffled[i].claim.Fingerprint(), f.fingerprint);
    }
  }
}

}  // namespace
}  // namespace attest::consensus
