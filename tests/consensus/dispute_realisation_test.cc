// Disputes about derivation outputs: DisputeSubject, the records and statements of a realisation
// dispute (consensus/dispute_subject.h, consensus/dispute.h, consensus/resolution.h).
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_replace.h"
#include "consensus/attestation.h"
#include "consensus/dispute.h"
#include "consensus/dispute_subject.h"
#include "consensus/policy.h"
#include "consensus/realisation.h"
#include "consensus/resolution.h"
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

constexpr std::string_view kHex = "881aa2e7fc72fca6d3f39b12573752d7a82a347ee9c3d6b458482436800b3e8a";
constexpr std::string_view kDrv = "/nix/store/ygx3mwq4k7yqbd4bzd2vd4g7gspn3m0r-hello.drv";
constexpr std::string_view kGoodOut = "bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-hello";
constexpr std::string_view kOtherOut = "2xnlz1767m56p96dy4ji1k3qqzdyfi0l-hello";
constexpr std::string_view kPathFingerprint =
    "1;/nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-hello;"
    "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s;1000;";

Policy MakePolicy() {
  absl::StatusOr<Policy> policy =
      Policy::Create(2,
                     {{"alice", {TestKey("alice-1").public_key()}},
                      {"bob", {TestKey("bob-1").public_key()}},
                      {"carol", {TestKey("carol-1").public_key()}}},
                     {TestKey("maint-1").public_key()});
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

RealisationKey Key(std::string_view text) {
  absl::StatusOr<RealisationKey> key = RealisationKey::Parse(text);
  EXPECT_TRUE(key.ok()) << key.status();
  return *std::move(key);
}

RealisationKey OldKey() { return Key(Cat("sha256:", kHex, "!out")); }
RealisationKey TraceKey() { return Key(Cat(kDrv, "^out")); }

Realisation Claim(const RealisationKey& key, std::string_view out_base) {
  absl::StatusOr<StorePath> out = StorePath::ParseBaseName(out_base);
  EXPECT_TRUE(out.ok()) << out.status();
  absl::StatusOr<Realisation> claim = Realisation::Create(key, *out);
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *std::move(claim);
}

// alice and bob map the output to one path, carol to another: DISPUTED under any 2.
std::vector<RealisationAttestation> Split(const RealisationKey& key) {
  return {SignRealisation(Claim(key, kGoodOut), TestKey("alice-1")),
          SignRealisation(Claim(key, kGoodOut), TestKey("bob-1")),
          SignRealisation(Claim(key, kOtherOut), TestKey("carol-1"))};
}

DisputeRecord MakeRecord(const Policy& policy, const RealisationKey& key,
                         const std::vector<RealisationAttestation>& attestations) {
  std::vector<const RealisationAttestation*> borrowed;
  for (const RealisationAttestation& a : attestations) borrowed.push_back(&a);
  const TallyResult tally = TallyRealisation(policy, borrowed, TallyOptions{});
  EXPECT_EQ(tally.verdict, Verdict::kDisputed);
  absl::StatusOr<DisputeRecord> record = MakeDisputeRecord(policy, key, borrowed, tally, 1700000000);
  EXPECT_TRUE(record.ok()) << record.status();
  return *std::move(record);
}

TEST(DisputeSubjectTest, KeysAndPathsHaveDistinctStableIds) {
  absl::StatusOr<StorePath> drv = StorePath::Parse(kDrv);
  ASSERT_TRUE(drv.ok());
  const std::string drv_id = DisputeId(*drv);
  const std::string old_id = DisputeId(OldKey());
  const std::string trace_id = DisputeId(TraceKey());
  EXPECT_NE(drv_id, trace_id);  // the derivation's own dispute is another subject
  EXPECT_NE(old_id, trace_id);
  // The id hashes the subject's text alone: a key parsed from its base-name spelling is the same subject.
  EXPECT_EQ(DisputeId(Key("ygx3mwq4k7yqbd4bzd2vd4g7gspn3m0r-hello.drv^out")), trace_id);
  EXPECT_EQ(old_id.size(), 34u);
  EXPECT_TRUE(old_id.starts_with("d-"));
}

TEST(DisputeSubjectTest, NoteLineRoundTripsAndIsStrict) {
  for (const DisputeSubject& subject : {DisputeSubject(OldKey()), DisputeSubject(TraceKey())}) {
    absl::StatusOr<DisputeSubject> parsed = DisputeSubject::ParseNoteLine(subject.NoteLine());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_TRUE(*parsed == subject);
    EXPECT_TRUE(parsed->is_realisation());
  }
  EXPECT_EQ(DisputeSubject(TraceKey()).NoteLine(), Cat("realisation ", kDrv, "^out"));
  // The base-name spelling of a key is valid input elsewhere but not the canonical text a note holds.
  absl::StatusOr<DisputeSubject> base = DisputeSubject::ParseNoteLine("realisation ygx3mwq4k7yqbd4bzd2vd4g7gspn3m0r-hello.drv^out");
  ASSERT_FALSE(base.ok());
  EXPECT_THAT(base.status().message(), HasSubstr("canonical"));
  absl::StatusOr<DisputeSubject> neither = DisputeSubject::ParseNoteLine(Cat("output sha256:", kHex, "!out"));
  ASSERT_FALSE(neither.ok());
  EXPECT_THAT(neither.status().message(), HasSubstr("\"realisation <key>\""));
  absl::StatusOr<DisputeSubject> mixed = DisputeSubject::ParseNoteLine(Cat("realisation sha256:", kHex, "!out^out"));
  EXPECT_FALSE(mixed.ok());
}

TEST(DisputeSubjectTest, CheckFingerprintWantsAClaimAboutTheSubject) {
  const DisputeSubject old_subject(OldKey());
  EXPECT_TRUE(old_subject.CheckFingerprint(Claim(OldKey(), kGoodOut).Fingerprint()).ok());
  // The same output in the other format is another key, so another subject.
  absl::Status other_format = old_subject.CheckFingerprint(Claim(TraceKey(), kGoodOut).Fingerprint());
  ASSERT_FALSE(other_format.ok());
  EXPECT_THAT(other_format.message(), HasSubstr("fingerprint is about"));
  // A narinfo fingerprint is no realisation.
  EXPECT_FALSE(old_subject.CheckFingerprint(kPathFingerprint).ok());
  // And a realisation fingerprint is no claim about a store path.
  absl::StatusOr<StorePath> out = StorePath::ParseBaseName(kGoodOut);
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(DisputeSubject(*out).CheckFingerprint(kPathFingerprint).ok());
  EXPECT_FALSE(DisputeSubject(*out).CheckFingerprint(Claim(OldKey(), kGoodOut).Fingerprint()).ok());
}

TEST(RealisationDisputeTest, RecordHoldsBothOutputPathsAndVerifies) {
  const Policy policy = MakePolicy();
  for (const RealisationKey& key : {OldKey(), TraceKey()}) {
    const std::vector<RealisationAttestation> attestations = Split(key);
    const DisputeRecord record = MakeRecord(policy, key, attestations);
    EXPECT_EQ(record.id, DisputeId(key));
    ASSERT_TRUE(record.subject.is_realisation());
    EXPECT_EQ(record.subject.realisation(), key);
    ASSERT_EQ(record.sides.size(), 2u);
    std::vector<std::string> fingerprints = {record.sides[0].fingerprint, record.sides[1].fingerprint};
    EXPECT_THAT(fingerprints, ::testing::UnorderedElementsAre(Claim(key, kGoodOut).Fingerprint(),
                                                               Claim(key, kOtherOut).Fingerprint()));
    const std::string text = record.ToNoteText();
    EXPECT_THAT(text, HasSubstr(Cat("\nrealisation ", key.ToString(), "\n")));
    absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->ToNoteText(), text);
    EXPECT_TRUE(parsed->subject == record.subject);
    EXPECT_TRUE(VerifyDisputeEvidence(*parsed, policy).ok());
    // Signed by the node, the record travels and validates as a log statement.
    const SignedNote note = SignDisputeRecord(record, TestKey("node-1"));
    absl::StatusOr<DisputeRecord> from_note = DisputeRecord::FromSignedNote(note.Serialize());
    ASSERT_TRUE(from_note.ok()) << from_note.status();
  }
}

TEST(RealisationDisputeTest, AlteredRecordsAreRefused) {
  const Policy policy = MakePolicy();
  const DisputeRecord record = MakeRecord(policy, OldKey(), Split(OldKey()));
  const std::string text = record.ToNoteText();

  // The subject line claims the derivation's path instead: the id no longer matches.
  const std::string as_path = absl::StrReplaceAll(text, {{Cat("realisation ", OldKey().ToString()), Cat("path ", kDrv)}});
  absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(as_path);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("is not the dispute id of"));

  // Another key under the same id.
  const std::string other_key = absl::StrReplaceAll(text, {{Cat(kHex, "!out\n"), Cat(kHex, "!dev\n")}});
  EXPECT_FALSE(DisputeRecord::FromNoteText(other_key).ok());

  // A side's output path swapped: the builders' signatures no longer verify over it.
  DisputeRecord swapped = record;
  swapped.sides[0].fingerprint = Claim(OldKey(), "0000000000000000000000000000000a-hello").Fingerprint();
  absl::Status evidence = VerifyDisputeEvidence(swapped, policy);
  ASSERT_FALSE(evidence.ok());
  EXPECT_EQ(evidence.code(), absl::StatusCode::kUnauthenticated);

  // A side about another derivation output.
  DisputeRecord other = record;
  other.sides[0].fingerprint = Claim(TraceKey(), kGoodOut).Fingerprint();
  evidence = VerifyDisputeEvidence(other, policy);
  ASSERT_FALSE(evidence.ok());
  EXPECT_THAT(evidence.message(), HasSubstr("fingerprint is about"));
}

TEST(RealisationDisputeTest, MakeRecordRefusesAttestationsAboutAnotherSubject) {
  const Policy policy = MakePolicy();
  const std::vector<RealisationAttestation> attestations = Split(OldKey());
  std::vector<const RealisationAttestation*> borrowed;
  for (const RealisationAttestation& a : attestations) borrowed.push_back(&a);
  const TallyResult tally = TallyRealisation(policy, borrowed, TallyOptions{});
  ASSERT_EQ(tally.verdict, Verdict::kDisputed);
  absl::StatusOr<DisputeRecord> record = MakeDisputeRecord(policy, TraceKey(), borrowed, tally, 1700000000);
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RealisationDisputeTest, MaintainerStatementAboutADerivationOutput) {
  const Policy policy = MakePolicy();
  const DisputeRecord record = MakeRecord(policy, TraceKey(), Split(TraceKey()));
  Resolution resolution{.dispute_id = record.id,
                        .subject = record.subject,
                        .outcome = ResolutionOutcome::kMalicious,
                        .fingerprints = {record.sides[0].fingerprint, record.sides[1].fingerprint},
                        .builders = {"carol-1"},
                        .time_unix = 1700000100,
                        .note = "carol's builder was tampered with"};
  ASSERT_TRUE(resolution.Validate().ok()) << resolution.Validate();
  const std::string text = resolution.ToNoteText();
  EXPECT_THAT(text, HasSubstr(Cat("\nrealisation ", kDrv, "^out\n")));
  absl::StatusOr<Resolution> parsed = Resolution::FromNoteText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, resolution);

  absl::StatusOr<SignedNote> signed_note = SignResolution(resolution, TestKey("maint-1"));
  ASSERT_TRUE(signed_note.ok()) << signed_note.status();
  absl::StatusOr<VerifiedResolution> verified = VerifyResolution(signed_note->Serialize(), policy);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_TRUE(verified->resolution.subject == record.subject);

  // A narinfo fingerprint has no place in a statement about a derivation output.
  Resolution wrong = resolution;
  wrong.fingerprints = {std::string(kPathFingerprint)};
  EXPECT_FALSE(wrong.Validate().ok());
  // Nor does the id of the derivation's own path.
  Resolution wrong_id = resolution;
  wrong_id.dispute_id = DisputeId(*StorePath::Parse(kDrv));
  EXPECT_FALSE(wrong_id.Validate().ok());
}

}  // namespace
}  // namespace attest::consensus
