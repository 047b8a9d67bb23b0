#include "client/status_verify.h"

#include <string>
#include <vector>

#include "client/status_json.h"
#include "consensus/attestation.h"
#include "consensus/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using nlohmann::json;
using ::testing::HasSubstr;

// alice-ci (alice-1, alice-2), bob-labs (bob-1), carol (carol-1); quorum 2.
consensus::Policy MakePolicy() {
  auto policy = consensus::Policy::Create(
      2,
      {{"alice-ci", {TestKey("alice-1").public_key(), TestKey("alice-2").public_key()}},
       {"bob-labs", {TestKey("bob-1").public_key()}},
       {"carol", {TestKey("carol-1").public_key()}}},
      {});
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

json AttestationJson(std::string_view key_name, const consensus::PathInfo& claim) {
  consensus::BuildMetadata metadata;
  metadata.build_kind = consensus::BuildKind::kFirstBuild;
  metadata.system = "x86_64-linux";
  return AttestationToJson(proto::ToProto(consensus::SignAttestation(claim, TestKey(key_name), metadata)));
}

json Tally(const consensus::PathInfo& claim, std::vector<std::string> operators,
           std::vector<std::string> builders) {
  return json{{"fingerprint", claim.Fingerprint()}, {"operators", operators}, {"builders", builders}};
}

json StatusObject(const consensus::Policy& policy, const consensus::PathInfo& claim, std::string verdict,
                  std::string fingerprint, json fingerprints, json attestations) {
  return json{{"path", claim.path.full()},         {"verdict", verdict},
              {"fingerprint", fingerprint},        {"fingerprints", fingerprints},
              {"flagged_builders", json::array()}, {"dispute_id", ""},
              {"quorum", policy.quorum()},         {"policy_hash", policy.Hash()},
              {"attestations", attestations}};
}

// alice-1 and bob-1 agree on hello: CONFIRMED.
json ConfirmedHello(const consensus::Policy& policy) {
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  return StatusObject(policy, hello, "CONFIRMED", hello.Fingerprint(),
                      json::array({Tally(hello, {"alice-ci", "bob-labs"}, {"alice-1", "bob-1"})}),
                      json::array({AttestationJson("alice-1", hello), AttestationJson("bob-1", hello)}));
}

std::string AllProblems(const StatusVerification& v) {
  std::string out;
  for (const auto& p : v.paths) {
    for (const auto& problem : p.problems) out += problem + "\n";
  }
  return out;
}

StatusVerification Verify(const consensus::Policy& policy, const json& document) {
  auto v = VerifyStatusDocument(policy, document);
  EXPECT_TRUE(v.ok()) << v.status();
  return *std::move(v);
}

TEST(StatusVerifyTest, HonestConfirmedAnswerHolds) {
  const consensus::Policy policy = MakePolicy();
  const StatusVerification v = Verify(policy, json::array({ConfirmedHello(policy)}));
  EXPECT_TRUE(v.ok()) << AllProblems(v);
  ASSERT_EQ(v.paths.size(), 1u);
  EXPECT_EQ(v.paths[0].verdict, consensus::Verdict::kConfirmed);
  EXPECT_EQ(v.paths[0].signatures_verified, 2u);
}

TEST(StatusVerifyTest, HonestDisputedAndUnknownAnswersHold) {
  const consensus::Policy policy = MakePolicy();
  const consensus::PathInfo one = TestClaim("nondet", "built at 1");
  const consensus::PathInfo two = TestClaim("nondet", "built at 2");
  json disputed =
      StatusObject(policy, one, "DISPUTED", "",
                   json::array({Tally(one, {"alice-ci"}, {"alice-1"}), Tally(two, {"bob-labs"}, {"bob-1"})}),
                   json::array({AttestationJson("alice-1", one), AttestationJson("bob-1", two)}));
  disputed["dispute_id"] = "d-0123";
  const consensus::PathInfo nothing = TestClaim("never-built");
  json unknown = StatusObject(policy, nothing, "UNKNOWN", "", json::array(), json::array());
  const StatusVerification v = Verify(policy, json::array({disputed, unknown}));
  EXPECT_TRUE(v.ok()) << AllProblems(v);
}

TEST(StatusVerifyTest, TamperedSignatureIsCaughtAndNamed) {
  const consensus::Policy policy = MakePolicy();
  json status = ConfirmedHello(policy);
  std::string sig = status["attestations"][1]["signature"];
  sig[sig.size() - 5] = sig[sig.size() - 5] == 'A' ? 'B' : 'A';
  status["attestations"][1]["signature"] = sig;
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("attestation 2 of 2: signature does not verify with key bob-1"));
}

TEST(StatusVerifyTest, AlteredClaimIsCaught) {
  const consensus::Policy policy = MakePolicy();
  json status = ConfirmedHello(policy);
  status["attestations"][0]["narSize"] = 99999;
  EXPECT_FALSE(Verify(policy, json::array({status})).ok());
}

TEST(StatusVerifyTest, WrongVerdictClaimedIsCaught) {
  const consensus::Policy policy = MakePolicy();
  json status = ConfirmedHello(policy);
  status["verdict"] = "DISPUTED";
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("the node claims DISPUTED but the attestations give CONFIRMED"));
}

TEST(StatusVerifyTest, KeyNotInPolicyIsCaught) {
  const consensus::Policy policy = MakePolicy();
  json status = ConfirmedHello(policy);
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  status["attestations"][1] = AttestationJson("mallory-1", hello);
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("key mallory-1 is not a builder key in the policy"));
}

TEST(StatusVerifyTest, QuorumNotMetButConfirmedClaimedIsCaught) {
  // Two builders of one operator count once: 1 of 2 operators is PENDING, whatever the node says.
  const consensus::Policy policy = MakePolicy();
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  json status =
      StatusObject(policy, hello, "CONFIRMED", hello.Fingerprint(),
                   json::array({Tally(hello, {"alice-ci"}, {"alice-1", "alice-2"})}),
                   json::array({AttestationJson("alice-1", hello), AttestationJson("alice-2", hello)}));
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("the node claims CONFIRMED but the attestations give PENDING"));

  status["verdict"] = "PENDING";
  EXPECT_TRUE(Verify(policy, json::array({status})).ok()) << "the honest PENDING answer holds";
}

TEST(StatusVerifyTest, InflatedOperatorListIsCaught) {
  const consensus::Policy policy = MakePolicy();
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  json status = StatusObject(policy, hello, "PENDING", hello.Fingerprint(),
                             json::array({Tally(hello, {"alice-ci", "carol"}, {"alice-1", "carol-1"})}),
                             json::array({AttestationJson("alice-1", hello)}));
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("claims operators [alice-ci, carol]"));
}

TEST(StatusVerifyTest, WrongFingerprintClaimedIsCaught) {
  const consensus::Policy policy = MakePolicy();
  json status = ConfirmedHello(policy);
  status["fingerprint"] = TestClaim("hello", "other bytes").Fingerprint();
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("the node claims fingerprint"));
}

TEST(StatusVerifyTest, AttestationAboutAnotherPathIsCaught) {
  const consensus::Policy policy = MakePolicy();
  json status = ConfirmedHello(policy);
  status["attestations"].push_back(AttestationJson("carol-1", TestClaim("other")));
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("(carol-1) is about"));
}

TEST(StatusVerifyTest, OtherPolicyIsCaught) {
  const consensus::Policy policy = MakePolicy();
  json status = ConfirmedHello(policy);
  status["policy_hash"] = "sha256:0000";
  status["quorum"] = 1;
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("answered under policy sha256:0000"));
  EXPECT_THAT(AllProblems(v), HasSubstr("reports quorum 1"));
}

TEST(StatusVerifyTest, MalformedDocuments) {
  const consensus::Policy policy = MakePolicy();
  EXPECT_FALSE(VerifyStatusDocument(policy, json("text")).ok());
  const StatusVerification v = Verify(policy, json::array({json(3), json::object()}));
  ASSERT_EQ(v.paths.size(), 2u);
  EXPECT_FALSE(v.paths[0].ok());
  EXPECT_FALSE(v.paths[1].ok());
  json missing = ConfirmedHello(policy);
  missing["attestations"][0].erase("signature");
  EXPECT_FALSE(Verify(policy, json::array({missing})).ok());
}

TEST(StatusVerifyTest, AttestationJsonRoundTrips) {
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  consensus::BuildMetadata metadata;
  metadata.build_kind = consensus::BuildKind::kRebuild;
  metadata.output_name = "out";
  metadata.system = "x86_64-linux";
  metadata.build_time_unix = 1700000000;
  const consensus::Attestation original = consensus::SignAttestation(hello, TestKey("alice-1"), metadata);
  auto parsed = AttestationFromJson(AttestationToJson(proto::ToProto(original)));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, original);
}

// ---------------------------------------------------------------------------------------------------
// A nested policy (version 2): "nixos-hydra AND two of org-b, org-c, org-d"; openssl-* needs any 3
// operators; org-b's old key retired at 2000.

constexpr int64_t kCutOff = 2000;

consensus::Policy MakeNestedPolicy() {
  consensus::PolicySpec spec;
  spec.quorum.of = consensus::Threshold{.threshold = 2, .members = {"nixos-hydra", "independent"}};
  spec.operators = {{"nixos-hydra", {TestKey("hydra-1").public_key()}},
                    {"org-b", {TestKey("org-b-1").public_key(), TestKey("org-b-old").public_key()}},
                    {"org-c", {TestKey("org-c-1").public_key()}},
                    {"org-d", {TestKey("org-d-1").public_key()}}};
  spec.groups = {{"independent", {.threshold = 2, .members = {"org-b", "org-c", "org-d"}}}};
  spec.rules = {{.names = {"openssl-*"}, .quorum = {.any = 3}}};
  spec.lifecycles = {{"org-b-old", {.state = consensus::KeyState::kRetired, .retired_unix = kCutOff}}};
  spec.parent = "sha256:" + std::string(64, 'a');
  spec.version = 2;
  auto policy = consensus::Policy::Create(std::move(spec));
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

json Received(json attestation, int64_t received_unix) {
  attestation["receivedTime"] = received_unix;
  return attestation;
}

// What a node under the nested policy answers: the verdict with the one fingerprint its builders signed.
json NestedAnswer(const consensus::Policy& policy, const consensus::PathInfo& claim, std::string verdict,
                  std::vector<std::string> operators, std::vector<std::string> builders, json attestations,
                  std::string rule) {
  json status = StatusObject(policy, claim, verdict, claim.Fingerprint(),
                             json::array({Tally(claim, operators, builders)}), attestations);
  status["policy_version"] = policy.version();
  status["rule"] = rule;
  return status;
}

TEST(StatusVerifyNestedTest, PendingAnswerHoldsAndSaysWhichGroupFallsShort) {
  const consensus::Policy policy = MakeNestedPolicy();
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  const json status = NestedAnswer(policy, hello, "PENDING", {"nixos-hydra", "org-b"}, {"hydra-1", "org-b-1"},
                                   json::array({AttestationJson("hydra-1", hello), AttestationJson("org-b-1", hello)}),
                                   "default");
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_TRUE(v.ok()) << AllProblems(v);
  ASSERT_EQ(v.paths.size(), 1u);
  EXPECT_EQ(v.paths[0].verdict, consensus::Verdict::kPending);
  EXPECT_EQ(v.paths[0].rule, "default");
  EXPECT_THAT(v.paths[0].explanation, HasSubstr("independent: 1 of 2 needed"));

  // The same answer claimed CONFIRMED: the problem says what the quorum still needs.
  json inflated = status;
  inflated["verdict"] = "CONFIRMED";
  const StatusVerification bad = Verify(policy, json::array({inflated}));
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(AllProblems(bad), HasSubstr("the node claims CONFIRMED but the attestations give PENDING"));
  EXPECT_THAT(AllProblems(bad), HasSubstr("independent: 1 of 2 needed"));
}

TEST(StatusVerifyNestedTest, ConfirmedWhenHydraAndTwoIndependentAgree) {
  const consensus::Policy policy = MakeNestedPolicy();
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  const json status = NestedAnswer(
      policy, hello, "CONFIRMED", {"nixos-hydra", "org-b", "org-d"}, {"hydra-1", "org-b-1", "org-d-1"},
      json::array({AttestationJson("hydra-1", hello), AttestationJson("org-b-1", hello), AttestationJson("org-d-1", hello)}),
      "default");
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_TRUE(v.ok()) << AllProblems(v);
  EXPECT_EQ(v.paths[0].verdict, consensus::Verdict::kConfirmed);
}

TEST(StatusVerifyNestedTest, RuleOtherThanThePolicysIsCaught) {
  const consensus::Policy policy = MakeNestedPolicy();
  const consensus::PathInfo openssl = TestClaim("openssl-3.0.8", "same bytes");
  const json attestations = json::array({AttestationJson("hydra-1", openssl), AttestationJson("org-b-1", openssl),
                                         AttestationJson("org-c-1", openssl)});
  // Three operators meet both quorums, so only the rule tells the answers apart.
  const json honest = NestedAnswer(policy, openssl, "CONFIRMED", {"nixos-hydra", "org-b", "org-c"},
                                   {"hydra-1", "org-b-1", "org-c-1"}, attestations, "openssl-*");
  const StatusVerification ok = Verify(policy, json::array({honest}));
  EXPECT_TRUE(ok.ok()) << AllProblems(ok);
  EXPECT_EQ(ok.paths[0].rule, "openssl-*");

  json wrong = honest;
  wrong["rule"] = "default";
  const StatusVerification v = Verify(policy, json::array({wrong}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("but the policy's rule for openssl-3.0.8 is openssl-*"));

  json unnamed = honest;
  unnamed.erase("rule");
  const StatusVerification silent = Verify(policy, json::array({unnamed}));
  EXPECT_FALSE(silent.ok());
  EXPECT_THAT(AllProblems(silent), HasSubstr("does not say which rule it applied"));
}

TEST(StatusVerifyNestedTest, AnswerUnderAnotherPolicyVersionNamesBoth) {
  const consensus::Policy policy = MakeNestedPolicy();
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  json status = NestedAnswer(policy, hello, "PENDING", {"nixos-hydra", "org-b"}, {"hydra-1", "org-b-1"},
                             json::array({AttestationJson("hydra-1", hello), AttestationJson("org-b-1", hello)}),
                             "default");
  const std::string older = "sha256:" + std::string(64, 'a');
  status["policy_version"] = 1;
  status["policy_hash"] = older;
  const StatusVerification v = Verify(policy, json::array({status}));
  EXPECT_FALSE(v.ok());
  EXPECT_THAT(AllProblems(v), HasSubstr("answered under policy " + older + " (version 1) but the policy given is " +
                                        policy.Hash() + " (version 2)"));
}

TEST(StatusVerifyNestedTest, RetiredKeyCountsOnlyWhenReceivedBeforeTheCutOff) {
  const consensus::Policy policy = MakeNestedPolicy();
  const consensus::PathInfo hello = TestClaim("hello", "same bytes");
  const auto answer = [&](json old_key_attestation) {
    return NestedAnswer(policy, hello, "CONFIRMED", {"nixos-hydra", "org-b", "org-c"},
                        {"hydra-1", "org-b-old", "org-c-1"},
                        json::array({Received(AttestationJson("hydra-1", hello), kCutOff + 50),
                                     std::move(old_key_attestation),
                                     Received(AttestationJson("org-c-1", hello), kCutOff + 50)}),
                        "default");
  };
  const StatusVerification before =
      Verify(policy, json::array({answer(Received(AttestationJson("org-b-old", hello), kCutOff - 1))}));
  EXPECT_TRUE(before.ok()) << AllProblems(before);
  EXPECT_EQ(before.paths[0].verdict, consensus::Verdict::kConfirmed);

  // At the cut-off is too late (strictly before counts), and so is an unknown time.
  for (const json& late : {Received(AttestationJson("org-b-old", hello), kCutOff), AttestationJson("org-b-old", hello)}) {
    const StatusVerification v = Verify(policy, json::array({answer(late)}));
    EXPECT_FALSE(v.ok());
    EXPECT_EQ(v.paths[0].verdict, consensus::Verdict::kPending);
    EXPECT_THAT(AllProblems(v), HasSubstr("key org-b-old was retired at 2000"));
    EXPECT_THAT(AllProblems(v), HasSubstr("the node claims CONFIRMED but the attestations give PENDING"));
    EXPECT_THAT(v.paths[0].explanation, HasSubstr("independent: 1 of 2 needed"));
  }
}

}  // namespace
}  // namespace attest::client
