#include "consensus/dispute.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "consensus/encoding.h"
#include "consensus/path_info.h"
#include "consensus/sha256.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

bool EntryLess(const DisputeSide::Entry& a, const DisputeSide::Entry& b) {
  return std::forward_as_tuple(a.operator_name, a.signature.ToString()) <
         std::forward_as_tuple(b.operator_name, b.signature.ToString());
}

bool EntryEqual(const DisputeSide::Entry& a, const DisputeSide::Entry& b) {
  return a.operator_name == b.operator_name && a.signature == b.signature;
}

// Reads the note one line at a time; every line must end in '\n'.
class LineReader final {
 public:
  explicit LineReader(std::string_view text) : rest_(text) {}

  bool AtEnd() const { return rest_.empty(); }
  int line_number() const { return line_number_; }

  // The next line without its '\n'. Fails when the text ends without one.
  absl::StatusOr<std::string_view> Next() {
    size_t newline = rest_.find('\n');
    if (newline == std::string_view::npos) {
      return absl::InvalidArgumentError(
          Cat("dispute record line ", line_number_ + 1, " does not end in a newline"));
    }
    std::string_view line = rest_.substr(0, newline);
    rest_.remove_prefix(newline + 1);
    ++line_number_;
    return line;
  }

  // The line after the next one's keyword, without consuming it: "" when the note has ended.
  std::string_view PeekKeyword() const {
    std::string_view line = rest_.substr(0, rest_.find('\n'));
    return line.substr(0, line.find(' '));
  }

 private:
  std::string_view rest_;
  int line_number_ = 0;
};

template <typename Text>  // std::string_view or absl::string_view (Status::message())
absl::Status LineError(int line, const Text& problem) {
  return absl::InvalidArgumentError(
      Cat("dispute record line ", line, ": ", problem, " (is this a record made by attest?)"));
}

// "<keyword> <value>" with exactly one space and a non-empty value.
absl::StatusOr<std::string_view> ValueOf(std::string_view line, std::string_view keyword,
                                         int line_number) {
  if (line.size() <= keyword.size() + 1 || line.substr(0, keyword.size()) != keyword ||
      line[keyword.size()] != ' ') {
    return LineError(line_number,
                     Cat("expected \"", keyword, " <value>\", got ", QuoteForError(line)));
  }
  return line.substr(keyword.size() + 1);
}

absl::StatusOr<int64_t> ParseTime(std::string_view text, int line_number) {
  // Canonical decimal only, so the parse round-trips byte for byte.
  bool digits = !text.empty() &&
                std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  int64_t value = 0;
  if (!digits || (text.size() > 1 && text[0] == '0') || !absl::SimpleAtoi(AbslView(text), &value)) {
    return LineError(line_number, Cat("time ", QuoteForError(text),
                                      " is not a non-negative decimal number of seconds"));
  }
  return value;
}

bool IsPolicyHash(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (text.size() != kPrefix.size() + 64 || text.substr(0, kPrefix.size()) != kPrefix) return false;
  return std::all_of(text.begin() + kPrefix.size(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The flagged builders are exactly those with attestations on two or more sides: the list is
// derived data, so a record where it disagrees with the sides is inconsistent.
absl::Status CheckFlagged(const DisputeRecord& record) {
  std::map<std::string, int> sides_per_builder;
  for (const DisputeSide& side : record.sides) {
    std::set<std::string> builders;
    for (const DisputeSide::Entry& entry : side.entries) builders.insert(entry.signature.key_name);
    for (const std::string& builder : builders) ++sides_per_builder[builder];
  }
  std::vector<std::string> expected;
  for (const auto& [builder, count] : sides_per_builder) {
    if (count > 1) expected.push_back(builder);
  }
  if (expected != record.flagged_builders) {
    return absl::InvalidArgumentError(
        "dispute record's flagged builders are not exactly the builders with attestations on two "
        "or more sides (is this a record made by attest?)");
  }
  return absl::OkStatus();
}

bool IsAbout(const Attestation& a, const DisputeSubject& subject) {
  return !subject.is_realisation() && a.claim.path == subject.path();
}
bool IsAbout(const RealisationAttestation& a, const DisputeSubject& subject) {
  return subject.is_realisation() && a.claim.key == subject.realisation();
}

// The record of a DISPUTED tally of store path or realisation attestations (Claim: Attestation or
// RealisationAttestation); both sign a fingerprint of their claim, so one shape of evidence serves both.
template <typename Claim>
absl::StatusOr<DisputeRecord> MakeRecord(const Policy& policy, DisputeSubject subject,
                                         std::span<const Claim* const> attestations, const TallyResult& tally,
                                         int64_t now_unix) {
  if (tally.verdict != Verdict::kDisputed) {
    return absl::FailedPreconditionError(
        Cat("the tally of ", subject.ToString(), " is ", VerdictName(tally.verdict),
            ", not DISPUTED (a dispute record is made only when counted builders disagree)"));
  }
  if (now_unix < 0) {
    return absl::InvalidArgumentError(
        Cat("time ", now_unix, " is before 1970 (pass the current unix time)"));
  }
  DisputeRecord record{.id = DisputeId(subject),
                       .subject = std::move(subject),
                       .policy_hash = policy.Hash(),
                       .time_unix = now_unix,
                       .sides = {},
                       .flagged_builders = {}};
  for (const FingerprintTally& fingerprint : tally.fingerprints) {
    DisputeSide side;
    side.fingerprint = fingerprint.fingerprint;
    for (size_t index : fingerprint.attestations) {
      // The tally and the attestations travel separately; a mismatch is the caller's bug, and a
      // record built from it would be evidence of something that never happened.
      if (index >= attestations.size()) {
        return absl::InvalidArgumentError(
            Cat("tally names attestation ", index, " but only ", attestations.size(),
                " were given (pass the same attestations the tally was computed from)"));
      }
      const Claim& a = *attestations[index];
      const std::string* operator_name = policy.OperatorOf(a.key_name());
      if (!IsAbout(a, record.subject) || a.claim.Fingerprint() != fingerprint.fingerprint ||
          operator_name == nullptr) {
        return absl::InvalidArgumentError(
            Cat("attestation ", index, " by ", a.key_name(),
                " does not match the tally (pass the same policy and attestations the tally was "
                "computed from)"));
      }
      side.entries.push_back({*operator_name, a.signature});
    }
    std::sort(side.entries.begin(), side.entries.end(), EntryLess);
    side.entries.erase(std::unique(side.entries.begin(), side.entries.end(), EntryEqual),
                       side.entries.end());
    record.sides.push_back(std::move(side));
  }
  std::sort(
      record.sides.begin(), record.sides.end(),
      [](const DisputeSide& a, const DisputeSide& b) { return a.fingerprint < b.fingerprint; });
  record.flagged_builders = tally.flagged_builders;
  std::sort(record.flagged_builders.begin(), record.flagged_builders.end());
  return record;
}

}  // namespace

std::string DisputeRecord::ToNoteText() const {
  std::string text = Cat(kDisputeHeader, "\n", "id ", id, "\n", subject.NoteLine(), "\n",
                         "policy ", policy_hash, "\n", "time ", time_unix, "\n");
  for (const DisputeSide& side : sides) {
    text += Cat("fingerprint ", side.fingerprint, "\n");
    for (const DisputeSide::Entry& entry : side.entries) {
      text += Cat("attestation ", entry.operator_name, " ", entry.signature.ToString(), "\n");
    }
  }
  for (const std::string& builder : flagged_builders) {
    text += Cat("flagged ", builder, "\n");
  }
  return text;
}

absl::StatusOr<DisputeRecord> DisputeRecord::FromSignedNote(std::string_view signed_note) {
  absl::StatusOr<SignedNote> note = SignedNote::Parse(signed_note);
  if (!note.ok()) return note.status();
  return FromNoteText(note->text);
}

absl::StatusOr<DisputeRecord> DisputeRecord::FromNoteText(std::string_view text) {
  LineReader reader(text);

  absl::StatusOr<std::string_view> line = reader.Next();
  if (!line.ok()) return line.status();
  if (*line != kDisputeHeader) {
    return LineError(reader.line_number(), Cat("expected the header \"", kDisputeHeader, "\""));
  }

  // Fixed header fields, in this order; the subject is the third line.
  std::string_view id_text, subject_line, policy_text, time_text;
  const std::array<std::pair<std::string_view, std::string_view*>, 4> fields = {
      {{"id", &id_text}, {"", &subject_line}, {"policy", &policy_text}, {"time", &time_text}}};
  for (auto [keyword, out] : fields) {
    line = reader.Next();
    if (!line.ok()) return line.status();
    if (keyword.empty()) {
      *out = *line;
      continue;
    }
    absl::StatusOr<std::string_view> value = ValueOf(*line, keyword, reader.line_number());
    if (!value.ok()) return value.status();
    *out = *value;
  }
  absl::StatusOr<DisputeSubject> subject = DisputeSubject::ParseNoteLine(subject_line);
  if (!subject.ok()) return LineError(3, subject.status().message());
  if (id_text != DisputeId(*subject)) {
    return LineError(
        2, Cat("id ", QuoteForError(id_text), " is not the dispute id of ", subject->ToString()));
  }
  if (!IsPolicyHash(policy_text)) {
    return LineError(4, "policy is not \"sha256:<64 lower-case hex digits>\"");
  }
  absl::StatusOr<int64_t> time = ParseTime(time_text, 5);
  if (!time.ok()) return time.status();
  DisputeRecord record{.id = std::string(id_text),
                       .subject = *std::move(subject),
                       .policy_hash = std::string(policy_text),
                       .time_unix = *time,
                       .sides = {},
                       .flagged_builders = {}};

  // Sides: "fingerprint" followed by one or more "attestation" lines.
  while (reader.PeekKeyword() == "fingerprint") {
    line = reader.Next();
    if (!line.ok()) return line.status();
    absl::StatusOr<std::string_view> fingerprint =
        ValueOf(*line, "fingerprint", reader.line_number());
    if (!fingerprint.ok()) return fingerprint.status();
    if (absl::Status about = record.subject.CheckFingerprint(*fingerprint); !about.ok()) {
      return LineError(reader.line_number(), about.message());
    }
    DisputeSide side;
    side.fingerprint = std::string(*fingerprint);
    if (!record.sides.empty() && record.sides.back().fingerprint >= side.fingerprint) {
      return LineError(reader.line_number(), "fingerprints are not sorted and unique");
    }
    while (reader.PeekKeyword() == "attestation") {
      line = reader.Next();
      if (!line.ok()) return line.status();
      absl::StatusOr<std::string_view> value = ValueOf(*line, "attestation", reader.line_number());
      if (!value.ok()) return value.status();
      std::vector<absl::string_view> parts = absl::StrSplit(AbslView(*value), ' ');
      if (parts.size() != 2 || parts[0].empty()) {
        return LineError(reader.line_number(),
                         "expected \"attestation <operator> <name:base64 signature>\"");
      }
      absl::StatusOr<Signature> signature = Signature::Parse(StdView(parts[1]));
      if (!signature.ok()) return LineError(reader.line_number(), signature.status().message());
      DisputeSide::Entry entry{std::string(parts[0]), *std::move(signature)};
      if (!side.entries.empty() && !EntryLess(side.entries.back(), entry)) {
        return LineError(reader.line_number(), "attestations are not sorted and unique");
      }
      side.entries.push_back(std::move(entry));
    }
    if (side.entries.empty()) {
      return LineError(reader.line_number(), "fingerprint has no attestation lines");
    }
    record.sides.push_back(std::move(side));
  }
  if (record.sides.size() < 2) {
    return LineError(reader.line_number() + 1,
                     Cat("a dispute needs at least two fingerprints, found ", record.sides.size()));
  }

  while (!reader.AtEnd()) {
    line = reader.Next();
    if (!line.ok()) return line.status();
    absl::StatusOr<std::string_view> builder = ValueOf(*line, "flagged", reader.line_number());
    if (!builder.ok()) return builder.status();
    if (absl::Status s = ValidateKeyName(*builder); !s.ok()) {
      return LineError(reader.line_number(), s.message());
    }
    if (!record.flagged_builders.empty() && record.flagged_builders.back() >= *builder) {
      return LineError(reader.line_number(), "flagged builders are not sorted and unique");
    }
    record.flagged_builders.emplace_back(*builder);
  }

  if (absl::Status s = CheckFlagged(record); !s.ok()) return s;

  // Anything the checks above let through that would not serialise back identically (e.g. a
  // signature whose base64 has another spelling) is not a record this code made.
  if (record.ToNoteText() != text) {
    return absl::InvalidArgumentError(
        "dispute record is not in canonical form (is this a record made by attest?)");
  }
  return record;
}

absl::StatusOr<DisputeRecord> MakeDisputeRecord(const Policy& policy, const StorePath& path,
                                                std::span<const Attestation> attestations,
                                                const TallyResult& tally, int64_t now_unix) {
  std::vector<const Attestation*> borrowed;
  borrowed.reserve(attestations.size());
  for (const Attestation& a : attestations) borrowed.push_back(&a);
  return MakeDisputeRecord(policy, path, std::span<const Attestation* const>(borrowed), tally, now_unix);
}

absl::StatusOr<DisputeRecord> MakeDisputeRecord(const Policy& policy, const StorePath& path,
                                                std::span<const Attestation* const> attestations,
                                                const TallyResult& tally, int64_t now_unix) {
  return MakeRecord(policy, DisputeSubject(path), attestations, tally, now_unix);
}

absl::StatusOr<DisputeRecord> MakeDisputeRecord(const Policy& policy, const RealisationKey& key,
                                                std::span<const RealisationAttestation* const> attestations,
                                                const TallyResult& tally, int64_t now_unix) {
  return MakeRecord(policy, DisputeSubject(key), attestations, tally, now_unix);
}

absl::Status VerifyDisputeEvidence(const DisputeRecord& record, const Policy& policy) {
  if (record.policy_hash != policy.Hash()) {
    return absl::FailedPreconditionError(Cat("dispute ", record.id, " was recorded under policy ",
                                             record.policy_hash, ", not this one (", policy.Hash(),
                                             "); only nodes sharing a policy can check each "
                                             "other's evidence"));
  }
  if (record.id != DisputeId(record.subject)) {
    return absl::InvalidArgumentError(Cat("dispute id ", QuoteForError(record.id),
                                          " is not the id of ", record.subject.ToString(),
                                          " (ids are derived from the ", record.subject.KindName(), " alone)"));
  }
  if (record.sides.size() < 2) {
    return absl::InvalidArgumentError(Cat("dispute ", record.id, " has ", record.sides.size(),
                                          " side(s); a dispute needs two or more fingerprints"));
  }
  for (size_t i = 0; i < record.sides.size(); ++i) {
    const DisputeSide& side = record.sides[i];
    if (i > 0 && record.sides[i - 1].fingerprint >= side.fingerprint) {
      return absl::InvalidArgumentError(
          Cat("dispute ", record.id, ": fingerprints are not sorted and unique"));
    }
    if (absl::Status about = record.subject.CheckFingerprint(side.fingerprint); !about.ok()) {
      return absl::InvalidArgumentError(Cat("dispute ", record.id, ": ", about.message()));
    }
    if (side.entries.empty()) {
      return absl::InvalidArgumentError(
          Cat("dispute ", record.id, ": a fingerprint has no attestations"));
    }
    for (const DisputeSide::Entry& entry : side.entries) {
      const std::string& key_name = entry.signature.key_name;
      const PublicKey* key = policy.FindBuilder(key_name);
      if (key == nullptr) {
        return absl::UnauthenticatedError(
            Cat("dispute ", record.id, ": key ", QuoteForError(key_name),
                " is not a builder key of the policy (only counted builders make a dispute)"));
      }
      if (*policy.OperatorOf(key_name) != entry.operator_name) {
        return absl::InvalidArgumentError(Cat("dispute ", record.id, ": builder ", key_name,
                                              " belongs to operator ", *policy.OperatorOf(key_name),
                                              ", not ", QuoteForError(entry.operator_name)));
      }
      if (absl::Status s = key->Verify(side.fingerprint, entry.signature); !s.ok()) {
        return absl::UnauthenticatedError(
            Cat("dispute ", record.id, ": the signature by ", key_name,
                " does not verify over its fingerprint (the record was altered, or is not "
                "evidence)"));
      }
    }
  }
  return CheckFlagged(record);
}

SignedNote SignDisputeRecord(const DisputeRecord& record, const SecretKey& node_key) {
  // AddNoteSignature cannot fail, unlike SignNote's text checks: ToNoteText() is non-empty, ends in
  // '\n' and has no blank line by construction.
  SignedNote note;
  note.text = record.ToNoteText();
  AddNoteSignature(note, node_key);
  return note;
}

}  // namespace attest::consensus
