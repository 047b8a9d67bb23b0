#include "consensus/resolution.h"

#include <string>
#include <string_view>
#include <vector>

#include <algorithm>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "consensus/dispute.h"
#include "consensus/log_entry.h"
#include "consensus/policy.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
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

std::string Message(const absl::Status& status) { return std::string(StdView(status.message())); }

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

Resolution MakeResolution(ResolutionOutcome outcome = ResolutionOutcome::kMalicious,
                          std::vector<std::string> builders = {"carol-1"}, int64_t time = 1700000000) {
  const StorePath path = TestStorePath("hello-2.12");
  std::vector<std::string> fingerprints = {TestClaim("hello-2.12", "good").Fingerprint(),
                                           TestClaim("hello-2.12", "evil").Fingerprint()};
  std::sort(fingerprints.begin(), fingerprints.end());
  return Resolution{.dispute_id = DisputeId(path),
                    .subject = path,
                    .outcome = outcome,
                    .fingerprints = fingerprints,
                    .builders = std::move(builders),
                    .time_unix = time,
                    .note = "carol-1 served a patched binary; see the diffoscope report"};
}

TEST(ResolutionTest, TextRoundTripsAndHasTheDocumentedLayout) {
  const Resolution resolution = MakeResolution();
  ASSERT_TRUE(resolution.Validate().ok()) << resolution.Validate();
  const std::string text = resolution.ToNoteText();
  EXPECT_EQ(text, Cat("attest/resolution/v1\n", "dispute ", resolution.dispute_id, "\n", "path ",
                      resolution.subject.ToString(), "\n", "outcome malicious\n", "fingerprint ", resolution.fingerprints[0],
                      "\n", "fingerprint ", resolution.fingerprints[1], "\n", "builder carol-1\n",
                      "time 1700000000\n", "note ", resolution.note, "\n"));
  absl::StatusOr<Resolution> parsed = Resolution::FromNoteText(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, resolution);
  EXPECT_EQ(parsed->ToNoteText(), text);
}

TEST(ResolutionTest, MalformedStatementsAreRefusedNamingTheProblem) {
  struct Case {
    std::string name;
    std::function<void(Resolution&)> change;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"wrong id", [](Resolution& r) { r.dispute_id = "d-00000000000000000000000000000000"; }, "is not the dispute id"},
      {"no fingerprint", [](Resolution& r) { r.fingerprints.clear(); }, "names no fingerprint"},
      {"unsorted", [](Resolution& r) { std::swap(r.fingerprints[0], r.fingerprints[1]); }, "sorted and unique"},
      {"other path", [](Resolution& r) { r.fingerprints = {TestClaim("other-1", "x").Fingerprint()}; }, "is about"},
      {"malicious without builders", [](Resolution& r) { r.builders.clear(); }, "must name the builder keys"},
      {"builders on resolved",
       [](Resolution& r) { r.outcome = ResolutionOutcome::kResolved; }, "only a malicious outcome names builders"},
      {"empty note", [](Resolution& r) { r.note.clear(); }, "the note is empty"},
      {"two-line note", [](Resolution& r) { r.note = "a\nb"; }, "one line"},
      {"control character", [](Resolution& r) { r.note = "bell\a"; }, "one line"},
      {"long note", [](Resolution& r) { r.note = std::string(kMaxResolutionNoteBytes + 1, 'x'); }, "at most"},
      {"negative time", [](Resolution& r) { r.time_unix = -1; }, "negative"},
  };
  for (const Case& c : cases) {
    Resolution resolution = MakeResolution();
    c.change(resolution);
    EXPECT_THAT(Message(resolution.Validate()), HasSubstr(c.expected)) << c.name;
    EXPECT_EQ(SignResolution(resolution, TestKey("maint-1")).status().code(), absl::StatusCode::kInvalidArgument)
        << c.name;
  }
}

TEST(ResolutionTest, ParserAcceptsOnlyCanonicalText) {
  const std::string text = MakeResolution().ToNoteText();
  for (const std::string& bad : {
           std::string("attest/dispute/v1\n") + text.substr(text.find('\n') + 1),  // another header
           text.substr(0, text.size() - 1),                                         // no final newline
           text + "extra line\n",                                                   // trailing line
           absl::StrReplaceAll(text, {{"time 1700000000", "time 01700000000"}}),    // non-canonical number
           absl::StrReplaceAll(text, {{"outcome malicious", "outcome evil"}}),      // unknown outcome
           absl::StrReplaceAll(text, {{"builder carol-1\n", ""}}),                  // malicious without builder
       }) {
    EXPECT_EQ(Resolution::FromNoteText(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(ResolutionTest, OnlyMaintainersOfThePolicyMayResolve) {
  const Policy policy = MakePolicy();
  absl::StatusOr<SignedNote> by_maintainer = SignResolution(MakeResolution(), TestKey("maint-1"));
  ASSERT_TRUE(by_maintainer.ok());
  absl::StatusOr<VerifiedResolution> verified = VerifyResolution(by_maintainer->Serialize(), policy);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->maintainer, "maint-1");
  EXPECT_EQ(verified->resolution, MakeResolution());
  EXPECT_EQ(verified->signed_note, by_maintainer->Serialize());

  // A builder key of the policy is not a maintainer key.
  absl::StatusOr<SignedNote> by_builder = SignResolution(MakeResolution(), TestKey("alice-1"));
  ASSERT_TRUE(by_builder.ok());
  absl::StatusOr<VerifiedResolution> refused = VerifyResolution(by_builder->Serialize(), policy);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(refused.status()), HasSubstr("signed by: alice-1"));

  // A key named like the maintainer but another key.
  absl::StatusOr<SignedNote> impostor = SignResolution(MakeResolution(), TestKey("maint-1", "other seed"));
  ASSERT_TRUE(impostor.ok());
  absl::StatusOr<VerifiedResolution> by_impostor = VerifyResolution(impostor->Serialize(), policy);
  EXPECT_EQ(by_impostor.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(by_impostor.status()), HasSubstr("signature by maintainer maint-1 does not verify"));

  // Altered after signing.
  std::string altered = by_maintainer->Serialize();
  altered.replace(altered.find("outcome malicious"), 17, "outcome resolved ");
  EXPECT_NE(VerifyResolution(altered, policy).status().code(), absl::StatusCode::kOk);

  // A builder outside the policy cannot be excluded.
  absl::StatusOr<SignedNote> stranger =
      SignResolution(MakeResolution(ResolutionOutcome::kMalicious, {"mallory-1"}), TestKey("maint-1"));
  ASSERT_TRUE(stranger.ok());
  absl::StatusOr<VerifiedResolution> not_in_policy = VerifyResolution(stranger->Serialize(), policy);
  EXPECT_EQ(not_in_policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(not_in_policy.status()), HasSubstr("mallory-1"));

  EXPECT_EQ(VerifyResolution("not a note", policy).status().code(), absl::StatusCode::kInvalidArgument);
}

// One rule for key names: a maintainer and a builder named with the characters Nix allows ('+' among
// them) can sign and be named, as the policy lets them be listed (issue: such a builder could never
// be excluded, and such a maintainer never sign).
TEST(ResolutionTest, KeyNamesWithTheCharactersNixAllowsSignAndAreNamed) {
  const std::string maintainer = "maint+ops.example/m_1=@é";
  for (const std::string builder : {"carol+ci.example/b_1", "carol=1@example.org", "carol-ünï-例", "+"}) {
    absl::StatusOr<Policy> policy = Policy::Create(
        1, {{"alice", {TestKey("alice-1").public_key()}}, {"carol", {TestKey(builder).public_key()}}},
        {TestKey(maintainer).public_key()});
    ASSERT_TRUE(policy.ok()) << policy.status();
    const Resolution resolution = MakeResolution(ResolutionOutcome::kMalicious, {builder});
    ASSERT_TRUE(resolution.Validate().ok()) << resolution.Validate();
    absl::StatusOr<SignedNote> note = SignResolution(resolution, TestKey(maintainer));
    ASSERT_TRUE(note.ok()) << note.status();
    absl::StatusOr<VerifiedResolution> verified = VerifyResolution(note->Serialize(), *policy);
    ASSERT_TRUE(verified.ok()) << verified.status();
    EXPECT_EQ(verified->maintainer, maintainer);
    EXPECT_THAT(verified->resolution.builders, ElementsAre(builder));
    const Resolution* in_force[] = {&verified->resolution};
    EXPECT_THAT(ExcludedBuilders(in_force), ::testing::UnorderedElementsAre(builder));
    // It travels in logs like any statement.
    absl::StatusOr<std::string> entry = EncodeResolutionEntry(note->Serialize());
    ASSERT_TRUE(entry.ok()) << entry.status();
    EXPECT_TRUE(ParseLogEntry(*entry).ok());
  }
}

TEST(ResolutionTest, NotesAndBuilderNamesThatWouldDisplayFalselyAreRefused) {
  for (const std::string& note : {std::string("fine \xE2\x80\xAE" "enif"), std::string("isolate \xE2\x81\xA6x"),
                                  std::string("mark \xE2\x80\x8F"), std::string("c1 \xC2\x9B" "2J"),
                                  std::string("line \xE2\x80\xA8 separator")}) {
    Resolution resolution = MakeResolution();
    resolution.note = note;
    EXPECT_EQ(resolution.Validate().code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(note);
    EXPECT_THAT(Message(resolution.Validate()), HasSubstr("the note")) << absl::CHexEscape(note);
  }
  Resolution resolution = MakeResolution(ResolutionOutcome::kMalicious, {"carol-\xE2\x80\xAE" "1"});
  EXPECT_THAT(Message(resolution.Validate()), HasSubstr("bidirectional"));
  // A statement text naming such a builder does not parse either.
  std::string text = MakeResolution().ToNoteText();
  text = absl::StrReplaceAll(text, {{"builder carol-1\n", "builder carol\xC2\x85" "1\n"}});
  EXPECT_EQ(Resolution::FromNoteText(text).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolutionTest, LatestStatementIsInForceAndNewFingerprintsReopen) {
  const Policy policy = MakePolicy();
  auto verified = [&](Resolution resolution) {
    absl::StatusOr<SignedNote> note = SignResolution(resolution, TestKey("maint-1"));
    EXPECT_TRUE(note.ok());
    absl::StatusOr<VerifiedResolution> v = VerifyResolution(note->Serialize(), policy);
    EXPECT_TRUE(v.ok()) << v.status();
    return *v;
  };
  const std::vector<VerifiedResolution> statements = {
      verified(MakeResolution(ResolutionOutcome::kResolved, {}, 300)),
      verified(MakeResolution(ResolutionOutcome::kMalicious, {"carol-1"}, 100)),
      verified(MakeResolution(ResolutionOutcome::kNondeterministic, {}, 200)),
  };
  const VerifiedResolution* latest = LatestResolution(statements);
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(latest->resolution.time_unix, 300);
  EXPECT_EQ(LatestResolution({}), nullptr);

  const std::vector<std::string>& reviewed = statements[0].resolution.fingerprints;
  EXPECT_EQ(StateOf(nullptr, reviewed), DisputeState::kOpen);
  EXPECT_EQ(StateOf(&latest->resolution, reviewed), DisputeState::kResolved);
  EXPECT_EQ(StateOf(&statements[2].resolution, reviewed), DisputeState::kNondeterministic);
  EXPECT_EQ(StateOf(&statements[1].resolution, reviewed), DisputeState::kMalicious);
  // A fingerprint nobody reviewed reopens it.
  std::vector<std::string> grown = reviewed;
  grown.push_back(TestClaim("hello-2.12", "third").Fingerprint());
  EXPECT_EQ(StateOf(&latest->resolution, grown), DisputeState::kOpen);

  const Resolution* in_force[] = {&statements[1].resolution, &statements[2].resolution};
  EXPECT_THAT(ExcludedBuilders(in_force), ::testing::UnorderedElementsAre("carol-1"));
  const Resolution* only_resolved[] = {&statements[0].resolution};
  EXPECT_TRUE(ExcludedBuilders(only_resolved).empty());
}

TEST(ResolutionTest, NamesParseBack) {
  for (ResolutionOutcome outcome :
       {ResolutionOutcome::kNondeterministic, ResolutionOutcome::kMalicious, ResolutionOutcome::kResolved}) {
    EXPECT_EQ(*ParseOutcome(OutcomeName(outcome)), outcome);
  }
  for (DisputeState state :
       {DisputeState::kOpen, DisputeState::kNondeterministic, DisputeState::kMalicious, DisputeState::kResolved}) {
    EXPECT_EQ(*ParseDisputeState(DisputeStateName(state)), state);
  }
  EXPECT_THAT(Message(ParseOutcome("fixed").status()), HasSubstr("nondeterministic, malicious, resolved"));
  EXPECT_EQ(ParseDisputeState("closed").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolutionTest, LogEntriesCarryStatementsVerbatim) {
  absl::StatusOr<SignedNote> note = SignResolution(MakeResolution(), TestKey("maint-1"));
  ASSERT_TRUE(note.ok());
  const std::string serialized = note->Serialize();
  absl::StatusOr<std::string> entry = EncodeResolutionEntry(serialized);
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(*entry, Cat("attest/log/resolution/v1\n", serialized));
  EXPECT_EQ(*EncodeNoteEntry(serialized), *entry);
  absl::StatusOr<LogEntry> parsed = ParseLogEntry(*entry);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->kind, LogEntryKind::kResolution);
  EXPECT_EQ(parsed->note, serialized);
  EXPECT_EQ(*EncodeLogEntry(*parsed), *entry);
  // A dispute record is not a resolution entry, and the other way round.
  EXPECT_EQ(ParseLogEntry(Cat("attest/log/dispute/v1\n", serialized)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeResolutionEntry("attest/dispute/v1\n").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace attest::consensus
