#include "consensus/dispute.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_replace.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/path_info.h"
#include "consensus/policy.h"
#include "consensus/signed_note.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Message(const absl::Status& status) {
  return std::string(status.message().data(), status.message().size());
}

// Golden inputs, written out literally so the expected values below can be recomputed by anyone
// (e.g. in Python: sha256, nix32) without this code.
constexpr char kPath[] = "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-hello-2.12";
constexpr char kGoodFingerprint[] =
    "1;/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-hello-2.12;"
    "sha256:0v1pnw4dxs9bqw3c2wy44d6hb6vxh3888j64lrf2d2fn4iv603kp;1234;";  // nix32(sha256("good"))
constexpr char kEvilFingerprint[] =
    "1;/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-hello-2.12;"
    "sha256:0wwc1zp9j06yalrhqg3n0dy3nfml0774ik7xq9s4csvdzhpgphdm;1234;";  // nix32(sha256("evil"))
constexpr char kPolicyHash[] =
    "sha256:823412d1eacb67956220e532959f0104603057c88704863ca38e7cd188fda812";  // sha256("policy")
constexpr char kSig11[] =
    "EREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREREQ==";
constexpr char kSig22[] =
    "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIg==";
constexpr char kSig33[] =
    "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMw==";

// d- + hex(sha256("attest/dispute-id/v1\n" + kPath)[:16]).
constexpr char kDisputeIdGolden[] = "d-a0f140355d47974d6a80b5da8e2063f6";

const std::string kGoldenNote = std::string() +
                                "attest/dispute/v1\n"
                                "id d-a0f140355d47974d6a80b5da8e2063f6\n"
                                "path " +
                                kPath +
                                "\n"
                                "policy " +
                                kPolicyHash +
                                "\n"
                                "time 1700000000\n"
                                "fingerprint " +
                                kGoodFingerprint +
                                "\n"
                                "attestation alice alice-1:" +
                                kSig11 +
                                "\n"
                                "attestation bob bob-1:" +
                                kSig22 +
                                "\n"
                                "fingerprint " +
                                kEvilFingerprint +
                                "\n"
                                "attestation bob bob-1:" +
                                kSig33 +
                                "\n"
                                "attestation carol carol-1:" +
                                kSig11 +
                                "\n"
                                "flagged bob-1\n";

StorePath ParsePath(std::string_view text) {
  absl::StatusOr<StorePath> path = StorePath::Parse(text);
  EXPECT_TRUE(path.ok()) << path.status();
  return *path;
}

Signature ParseSignature(std::string_view text) {
  absl::StatusOr<Signature> signature = Signature::Parse(text);
  EXPECT_TRUE(signature.ok()) << signature.status();
  return *signature;
}

DisputeSide::Entry Entry(std::string op, std::string signature) {
  return {std::move(op), ParseSignature(signature)};
}

DisputeRecord GoldenRecord() {
  return DisputeRecord{
      .id = kDisputeIdGolden,
      .subject = ParsePath(kPath),
      .policy_hash = kPolicyHash,
      .time_unix = 1700000000,
      .sides = {{kGoodFingerprint,
                 {Entry("alice", std::string("alice-1:") + kSig11),
                  Entry("bob", std::string("bob-1:") + kSig22)}},
                {kEvilFingerprint,
                 {Entry("bob", std::string("bob-1:") + kSig33),
                  Entry("carol", std::string("carol-1:") + kSig11)}}},
      .flagged_builders = {"bob-1"},
  };
}

Policy MakePolicy() {
  absl::StatusOr<Policy> policy =
      Policy::Create(2,
                     {{"alice", {TestKey("alice-1").public_key(), TestKey("alice-2").public_key()}},
                      {"bob", {TestKey("bob-1").public_key()}},
                      {"carol", {TestKey("carol-1").public_key()}}},
                     {TestKey("maint-1").public_key()});
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

void ExpectSameRecord(const DisputeRecord& a, const DisputeRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.subject, b.subject);
  EXPECT_EQ(a.policy_hash, b.policy_hash);
  EXPECT_EQ(a.time_unix, b.time_unix);
  ASSERT_EQ(a.sides.size(), b.sides.size());
  for (size_t i = 0; i < a.sides.size(); ++i) {
    EXPECT_EQ(a.sides[i].fingerprint, b.sides[i].fingerprint);
    ASSERT_EQ(a.sides[i].entries.size(), b.sides[i].entries.size());
    for (size_t j = 0; j < a.sides[i].entries.size(); ++j) {
      EXPECT_EQ(a.sides[i].entries[j].operator_name, b.sides[i].entries[j].operator_name);
      EXPECT_EQ(a.sides[i].entries[j].signature, b.sides[i].entries[j].signature);
    }
  }
  EXPECT_EQ(a.flagged_builders, b.flagged_builders);
}

// ---- Id ----------------------------------------------------------------------------------------

TEST(DisputeTest, IdGolden) { EXPECT_EQ(DisputeId(ParsePath(kPath)), kDisputeIdGolden); }

TEST(DisputeTest, IdDependsOnThePathAlone) {
  StorePath path = TestStorePath("hello-2.12");
  EXPECT_EQ(DisputeId(path), DisputeId(TestStorePath("hello-2.12")));
  EXPECT_NE(DisputeId(path), DisputeId(TestStorePath("hello-2.13")));
  // Same name, other hash part: another path, another dispute.
  EXPECT_NE(DisputeId(ParsePath(kPath)),
            DisputeId(ParsePath("/nix/store/00000000000000000000000000000000-hello-2.12")));

  // Two nodes with different evidence, times (and arrival order) name the dispute the same way.
  Policy policy = MakePolicy();
  PathInfo good = TestClaim("hello-2.12", "good");
  PathInfo evil = TestClaim("hello-2.12", "evil");
  std::vector<Attestation> first = {SignAttestation(good, TestKey("bob-1")),
                                    SignAttestation(evil, TestKey("carol-1"))};
  std::vector<Attestation> second = {SignAttestation(evil, TestKey("alice-1")),
                                     SignAttestation(good, TestKey("carol-1"))};
  absl::StatusOr<DisputeRecord> a =
      MakeDisputeRecord(policy, path, first, Tally(policy, first), 100);
  absl::StatusOr<DisputeRecord> b =
      MakeDisputeRecord(policy, path, second, Tally(policy, second), 200);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(a->id, DisputeId(path));
}

// ---- Note text ---------------------------------------------------------------------------------

TEST(DisputeTest, NoteTextGolden) { EXPECT_EQ(GoldenRecord().ToNoteText(), kGoldenNote); }

TEST(DisputeTest, FromNoteTextRoundTrips) {
  absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(kGoldenNote);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameRecord(*parsed, GoldenRecord());
  EXPECT_EQ(parsed->ToNoteText(), kGoldenNote);

  // Without flagged builders, too (dave, not bob, on the second side).
  DisputeRecord record = GoldenRecord();
  record.sides[1].entries = {Entry("carol", std::string("carol-1:") + kSig11),
                             Entry("dave", std::string("dave-1:") + kSig33)};
  record.flagged_builders.clear();
  absl::StatusOr<DisputeRecord> again = DisputeRecord::FromNoteText(record.ToNoteText());
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSameRecord(*again, record);
}

TEST(DisputeTest, FromNoteTextRejectsGarbage) {
  std::vector<std::string> bad = {
      "",
      "\n",
      "hello\n",
      "attest/dispute/v1",                                                        // no newline
      "attest/dispute/v1\n",                                                      // nothing else
      "attest/checkpoint/v1\n" + kGoldenNote.substr(kGoldenNote.find('\n') + 1),  // other kind
      kGoldenNote.substr(0, kGoldenNote.size() - 1),                              // no final \n
      kGoldenNote + "\n",                                                         // blank line
      kGoldenNote + "flagged zed\nextra line\n",
      absl::StrReplaceAll(kGoldenNote, {{"\n", "\r\n"}}),
      absl::StrReplaceAll(kGoldenNote, {{"time 1700000000", "time  1700000000"}}),
      absl::StrReplaceAll(kGoldenNote, {{"time 1700000000", "time 01700000000"}}),
      absl::StrReplaceAll(kGoldenNote, {{"time 1700000000", "time -1"}}),
      absl::StrReplaceAll(kGoldenNote, {{"time 1700000000", "time 17e8"}}),
      absl::StrReplaceAll(kGoldenNote, {{"time 1700000000", "time 99999999999999999999"}}),
      absl::StrReplaceAll(kGoldenNote, {{"policy sha256:8234", "policy sha256:X234"}}),
      absl::StrReplaceAll(kGoldenNote, {{"policy sha256:", "policy sha512:"}}),
      absl::StrReplaceAll(kGoldenNote, {{"id d-a0f1", "id d-b0f1"}}),  // not this path's id
      absl::StrReplaceAll(kGoldenNote,
                          {{"attestation alice alice-1:", "attestation alice  alice-1:"}}),
      absl::StrReplaceAll(kGoldenNote, {{"attestation alice alice-1:", "attestation alice-1:"}}),
      absl::StrReplaceAll(kGoldenNote, {{"alice-1:"
                                         "ERERERERERERERERERERERERERERERERERERERERERERERERERERERERE"
                                         "REREREREREREREREREREREREREREQ==",
                                         "alice-1:"
                                         "ERERERERERERERERERERERERERERERERERERERERERERERERERERERERE"
                                         "REREREREREREREREREREREREREREQ="}}),
      absl::StrReplaceAll(kGoldenNote,
                          {{"attestation alice alice-1:ERER", "attestation alice alice-1:ER*R"}}),
      absl::StrReplaceAll(kGoldenNote, {{"flagged bob-1", "flagged "}}),
      absl::StrReplaceAll(kGoldenNote, {{"flagged bob-1", "flagged bob 1"}}),
      absl::StrReplaceAll(kGoldenNote, {{"flagged bob-1", "flaggd bob-1"}}),
      // Flagged must be exactly the builders on two or more sides.
      absl::StrReplaceAll(kGoldenNote, {{"flagged bob-1", "flagged carol-1"}}),
      kGoldenNote + "flagged carol-1\n",
      // The fingerprint of another path.
      absl::StrReplaceAll(kGoldenNote,
                          {{"3q-hello-2.12;sha256:0wwc", "3q-hello-2.13;sha256:0wwc"}}),
  };
  for (const std::string& text : bad) {
    absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(text);
    EXPECT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    lines.push_back(text.substr(start, end - start + 1));
    start = end + 1;
  }
  return lines;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line;
  return out;
}

TEST(DisputeTest, FromNoteTextRejectsReorderedLines) {
  const std::vector<std::string> lines = Lines(kGoldenNote);
  ASSERT_EQ(lines.size(), 12u);
  // Any swap of two different lines breaks the fixed order, the sorting or the flagged list, except
  // one: bob's two signatures trading sides (lines 8 and 10) is well-formed text. Only checking the
  // signatures catches that (VerifyDisputeEvidenceCatchesSwappedSignatures).
  for (size_t i = 0; i < lines.size(); ++i) {
    for (size_t j = i + 1; j < lines.size(); ++j) {
      if (lines[i] == lines[j] || (i == 7 && j == 9)) continue;
      std::vector<std::string> swapped = lines;
      std::swap(swapped[i], swapped[j]);
      absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(Join(swapped));
      EXPECT_FALSE(parsed.ok()) << "swapped lines " << i + 1 << " and " << j + 1;
    }
  }
  // Dropping a line is no better, except an attestation that leaves its side non-empty and the
  // flagged list right (alice's, line 7; carol's, line 11), or the optional flagged line itself if
  // nobody is flagged (here bob-1 is, so dropping line 12 fails).
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == 6 || i == 10) continue;
    std::vector<std::string> dropped = lines;
    dropped.erase(dropped.begin() + i);
    EXPECT_FALSE(DisputeRecord::FromNoteText(Join(dropped)).ok()) << "dropped line " << i + 1;
  }
  // Nor is a duplicated one.
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<std::string> doubled = lines;
    doubled.insert(doubled.begin() + i, lines[i]);
    EXPECT_FALSE(DisputeRecord::FromNoteText(Join(doubled)).ok()) << "doubled line " << i + 1;
  }
}

TEST(DisputeTest, FromNoteTextNamesTheLine) {
  absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(
      absl::StrReplaceAll(kGoldenNote, {{"time 1700000000", "time soon"}}));
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(Message(parsed.status()), HasSubstr("line 5"));
  EXPECT_THAT(Message(parsed.status()), HasSubstr("time"));
}

// ---- MakeDisputeRecord -------------------------------------------------------------------------

TEST(DisputeTest, RecordListsBothSidesWithOperators) {
  Policy policy = MakePolicy();
  StorePath path = TestStorePath("hello-2.12");
  PathInfo good = TestClaim("hello-2.12", "good");
  PathInfo evil = TestClaim("hello-2.12", "evil");
  std::vector<Attestation> attestations = {
      SignAttestation(good, TestKey("alice-1")), SignAttestation(good, TestKey("alice-2")),
      SignAttestation(good, TestKey("bob-1")),   SignAttestation(evil, TestKey("bob-1")),
      SignAttestation(evil, TestKey("carol-1")), SignAttestation(good, TestKey("stranger")),
      SignAttestation(good, TestKey("bob-1")),  // a duplicate: listed once in the record
  };
  TallyResult tally = Tally(policy, attestations);
  ASSERT_EQ(tally.verdict, Verdict::kDisputed);
  absl::StatusOr<DisputeRecord> record =
      MakeDisputeRecord(policy, path, attestations, tally, 1700000000);
  ASSERT_TRUE(record.ok()) << record.status();

  EXPECT_EQ(record->id, DisputeId(path));
  EXPECT_EQ(record->subject, DisputeSubject(path));
  EXPECT_EQ(record->policy_hash, policy.Hash());
  EXPECT_EQ(record->time_unix, 1700000000);
  ASSERT_EQ(record->sides.size(), 2u);
  EXPECT_LT(record->sides[0].fingerprint, record->sides[1].fingerprint);
  EXPECT_THAT(record->flagged_builders, ElementsAre("bob-1"));

  for (const DisputeSide& side : record->sides) {
    std::vector<std::string> entries;
    for (const DisputeSide::Entry& entry : side.entries) {
      entries.push_back(entry.operator_name + " " + entry.signature.key_name);
    }
    if (side.fingerprint == good.Fingerprint()) {
      EXPECT_THAT(entries, ElementsAre("alice alice-1", "alice alice-2", "bob bob-1"));
    } else {
      EXPECT_EQ(side.fingerprint, evil.Fingerprint());
      EXPECT_THAT(entries, ElementsAre("bob bob-1", "carol carol-1"));
    }
    // Each entry's signature verifies over its side's fingerprint: the record is evidence.
    for (const DisputeSide::Entry& entry : side.entries) {
      EXPECT_TRUE(TestKey(entry.signature.key_name)
                      .public_key()
                      .Verify(side.fingerprint, entry.signature)
                      .ok());
    }
  }

  std::string text = record->ToNoteText();
  EXPECT_THAT(text, HasSubstr("attestation carol carol-1:"));
  EXPECT_THAT(text, HasSubstr("flagged bob-1\n"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("stranger")));
  absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameRecord(*parsed, *record);
}

TEST(DisputeTest, RecordIsIndependentOfInputOrder) {
  Policy policy = MakePolicy();
  StorePath path = TestStorePath("hello-2.12");
  std::vector<Attestation> attestations = {
      SignAttestation(TestClaim("hello-2.12", "good"), TestKey("alice-1")),
      SignAttestation(TestClaim("hello-2.12", "evil"), TestKey("carol-1")),
      SignAttestation(TestClaim("hello-2.12", "good"), TestKey("bob-1")),
  };
  std::vector<Attestation> reversed(attestations.rbegin(), attestations.rend());
  absl::StatusOr<DisputeRecord> a =
      MakeDisputeRecord(policy, path, attestations, Tally(policy, attestations), 5);
  absl::StatusOr<DisputeRecord> b =
      MakeDisputeRecord(policy, path, reversed, Tally(policy, reversed), 5);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->ToNoteText(), b->ToNoteText());
}

TEST(DisputeTest, MakeRecordNeedsADisputedTally) {
  Policy policy = MakePolicy();
  StorePath path = TestStorePath("hello-2.12");
  PathInfo good = TestClaim("hello-2.12", "good");
  std::vector<std::vector<Attestation>> inputs = {
      {},                                         // UNKNOWN
      {SignAttestation(good, TestKey("bob-1"))},  // PENDING
      {SignAttestation(good, TestKey("bob-1")), SignAttestation(good, TestKey("carol-1"))},
  };
  for (const std::vector<Attestation>& attestations : inputs) {
    TallyResult tally = Tally(policy, attestations);
    absl::StatusOr<DisputeRecord> record = MakeDisputeRecord(policy, path, attestations, tally, 1);
    ASSERT_FALSE(record.ok());
    EXPECT_EQ(record.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(Message(record.status()), HasSubstr(std::string(VerdictName(tally.verdict))));
  }
}

TEST(DisputeTest, MakeRecordRejectsATallyOfOtherAttestations) {
  Policy policy = MakePolicy();
  StorePath path = TestStorePath("hello-2.12");
  std::vector<Attestation> attestations = {
      SignAttestation(TestClaim("hello-2.12", "good"), TestKey("bob-1")),
      SignAttestation(TestClaim("hello-2.12", "evil"), TestKey("carol-1")),
  };
  TallyResult tally = Tally(policy, attestations);
  std::vector<Attestation> fewer = {attestations[0]};
  EXPECT_EQ(MakeDisputeRecord(policy, path, fewer, tally, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<Attestation> swapped = {attestations[1], attestations[0]};
  EXPECT_EQ(MakeDisputeRecord(policy, path, swapped, tally, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      MakeDisputeRecord(policy, TestStorePath("other"), attestations, tally, 1).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeDisputeRecord(policy, path, attestations, tally, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Evidence ----------------------------------------------------------------------------------

struct Disputed {
  Policy policy = MakePolicy();
  StorePath path = TestStorePath("hello-2.12");
  std::vector<Attestation> attestations = {
      SignAttestation(TestClaim("hello-2.12", "good"), TestKey("alice-1")),
      SignAttestation(TestClaim("hello-2.12", "good"), TestKey("bob-1")),
      SignAttestation(TestClaim("hello-2.12", "evil"), TestKey("bob-1")),
      SignAttestation(TestClaim("hello-2.12", "evil"), TestKey("carol-1")),
  };
  DisputeRecord Record() const {
    absl::StatusOr<DisputeRecord> record =
        MakeDisputeRecord(policy, path, attestations, Tally(policy, attestations), 42);
    EXPECT_TRUE(record.ok()) << record.status();
    return *std::move(record);
  }
};

TEST(DisputeTest, VerifyDisputeEvidenceAcceptsARecordItMade) {
  Disputed d;
  DisputeRecord record = d.Record();
  EXPECT_TRUE(VerifyDisputeEvidence(record, d.policy).ok());
  absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(record.ToNoteText());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(VerifyDisputeEvidence(*parsed, d.policy).ok());
}

TEST(DisputeTest, VerifyDisputeEvidenceCatchesSwappedSignatures) {
  Disputed d;
  DisputeRecord record = d.Record();
  // bob's signatures trade sides: still well-formed, no longer evidence.
  auto bob = [](DisputeSide& side) -> DisputeSide::Entry& {
    return *std::find_if(side.entries.begin(), side.entries.end(),
                         [](const DisputeSide::Entry& e) { return e.operator_name == "bob"; });
  };
  std::swap(bob(record.sides[0]).signature, bob(record.sides[1]).signature);
  ASSERT_TRUE(DisputeRecord::FromNoteText(record.ToNoteText()).ok());
  EXPECT_EQ(VerifyDisputeEvidence(record, d.policy).code(), absl::StatusCode::kUnauthenticated);
}

TEST(DisputeTest, VerifyDisputeEvidenceRejectsInconsistentRecords) {
  Disputed d;
  {
    DisputeRecord record = d.Record();
    record.sides[0].entries[0].operator_name = "carol";  // right signature, wrong operator
    EXPECT_EQ(VerifyDisputeEvidence(record, d.policy).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    DisputeRecord record = d.Record();
    record.sides[0].entries.push_back(
        {"mallory",
         SignAttestation(TestClaim("hello-2.12", "good"), TestKey("mallory-1")).signature});
    EXPECT_EQ(VerifyDisputeEvidence(record, d.policy).code(), absl::StatusCode::kUnauthenticated);
  }
  {
    DisputeRecord record = d.Record();
    record.flagged_builders.clear();
    EXPECT_EQ(VerifyDisputeEvidence(record, d.policy).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    DisputeRecord record = d.Record();
    record.sides.pop_back();
    EXPECT_EQ(VerifyDisputeEvidence(record, d.policy).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    absl::StatusOr<Policy> other = Policy::Create(1, d.policy.operators(), {});
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(VerifyDisputeEvidence(d.Record(), *other).code(),
              absl::StatusCode::kFailedPrecondition);
  }
}

// ---- Signing -----------------------------------------------------------------------------------

TEST(DisputeTest, SignatureVerifiesWithNodeKeyOnly) {
  SecretKey node = TestKey("node-1");
  DisputeRecord record = GoldenRecord();
  SignedNote note = SignDisputeRecord(record, node);
  EXPECT_EQ(note.text, kGoldenNote);
  ASSERT_FALSE(note.text.empty());
  EXPECT_EQ(note.text.back(), '\n');
  ASSERT_EQ(note.signatures.size(), 1u);
  EXPECT_EQ(note.signatures[0].key_name, "node-1");

  EXPECT_TRUE(VerifyNote(note, node.public_key()).ok());
  absl::Status other = VerifyNote(note, TestKey("node-2").public_key());
  EXPECT_EQ(other.code(), absl::StatusCode::kUnauthenticated);
  // A key with the node's name but other bytes does not verify either.
  absl::Status impostor = VerifyNote(note, TestKey("node-1", "impostor").public_key());
  EXPECT_EQ(impostor.code(), absl::StatusCode::kUnauthenticated);

  // What goes over the wire parses back into the same record, still verifiable.
  absl::StatusOr<SignedNote> wire = SignedNote::Parse(note.Serialize());
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_TRUE(VerifyNote(*wire, node.public_key()).ok());
  absl::StatusOr<DisputeRecord> parsed = DisputeRecord::FromNoteText(wire->text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameRecord(*parsed, record);

  // A changed record no longer matches the signature.
  SignedNote tampered = note;
  tampered.text = absl::StrReplaceAll(tampered.text, {{"time 1700000000", "time 1700000001"}});
  EXPECT_EQ(VerifyNote(tampered, node.public_key()).code(), absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace attest::consensus
