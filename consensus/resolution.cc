#include "consensus/resolution.h"

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/display_text.h"
#include "consensus/dispute.h"
#include "consensus/path_info.h"
#include "consensus/strict_decimal.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

absl::Status StatementError(std::string_view problem) {
  return absl::InvalidArgumentError(Cat("resolution statement: ", problem));
}

absl::Status LineError(int line, std::string_view problem) {
  return absl::InvalidArgumentError(
      Cat("resolution statement line ", line, ": ", problem, " (is this a statement made by attest?)"));
}

template <typename T>
bool SortedUnique(const std::vector<T>& values) {
  for (size_t i = 1; i < values.size(); ++i) {
    if (!(values[i - 1] < values[i])) return false;
  }
  return true;
}

}  // namespace

std::string_view OutcomeName(ResolutionOutcome outcome) {
  switch (outcome) {
    case ResolutionOutcome::kNondeterministic:
      return "nondeterministic";
    case ResolutionOutcome::kMalicious:
      return "malicious";
    case ResolutionOutcome::kResolved:
      return "resolved";
  }
  return "resolved";
}

absl::StatusOr<ResolutionOutcome> ParseOutcome(std::string_view text) {
  for (ResolutionOutcome outcome : {ResolutionOutcome::kNondeterministic, ResolutionOutcome::kMalicious,
                                    ResolutionOutcome::kResolved}) {
    if (text == OutcomeName(outcome)) return outcome;
  }
  return absl::InvalidArgumentError(Cat("outcome ", QuoteForError(text),
                                        " is not one of nondeterministic, malicious, resolved"));
}

absl::Status Resolution::Validate() const {
  if (dispute_id != DisputeId(subject)) {
    return StatementError(Cat("dispute id ", QuoteForError(dispute_id), " is not the dispute id of ",
                              subject.ToString(), " (", DisputeId(subject), ")"));
  }
  if (fingerprints.empty()) return StatementError("names no fingerprint (list the competing ones reviewed)");
  if (!SortedUnique(fingerprints)) return StatementError("fingerprints are not sorted and unique");
  for (const std::string& fingerprint : fingerprints) {
    if (absl::Status about = subject.CheckFingerprint(fingerprint); !about.ok()) {
      return StatementError(Cat("fingerprint: ", about.message()));
    }
  }
  if (outcome == ResolutionOutcome::kMalicious && builders.empty()) {
    return StatementError("a malicious outcome must name the builder keys at fault (--builder KEYNAME)");
  }
  if (outcome != ResolutionOutcome::kMalicious && !builders.empty()) {
    return StatementError(Cat("only a malicious outcome names builders, not ", OutcomeName(outcome)));
  }
  if (!SortedUnique(builders)) return StatementError("builders are not sorted and unique");
  for (const std::string& builder : builders) {
    if (absl::Status status = ValidateKeyName(builder); !status.ok()) {
      return StatementError(Cat("builder key name ", QuoteForError(builder), ": ", status.message()));
    }
  }
  if (time_unix < 0) return StatementError("time is negative");
  if (note.empty()) return StatementError("the note is empty (say what was found)");
  if (note.size() > kMaxResolutionNoteBytes) {
    return StatementError(Cat("the note is ", note.size(), " bytes; at most ", kMaxResolutionNoteBytes));
  }
  if (absl::Status status = ValidateDisplayText(note, TextShape::kLine, "the note"); !status.ok()) {
    return StatementError(StdView(status.message()));
  }
  return absl::OkStatus();
}

std::string Resolution::ToNoteText() const {
  std::string text = Cat(kResolutionHeader, "\n", "dispute ", dispute_id, "\n", subject.NoteLine(), "\n",
                         "outcome ", OutcomeName(outcome), "\n");
  for (const std::string& fingerprint : fingerprints) text += Cat("fingerprint ", fingerprint, "\n");
  for (const std::string& builder : builders) text += Cat("builder ", builder, "\n");
  text += Cat("time ", time_unix, "\n", "note ", note, "\n");
  return text;
}

absl::StatusOr<Resolution> Resolution::FromNoteText(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t newline = text.find('\n');
    if (newline == std::string_view::npos) {
      return LineError(static_cast<int>(lines.size()) + 1, "does not end in a newline");
    }
    lines.push_back(text.substr(0, newline));
    text.remove_prefix(newline + 1);
  }
  size_t next = 0;
  auto value_of = [&](std::string_view keyword) -> absl::StatusOr<std::string_view> {
    const int number = static_cast<int>(next) + 1;
    if (next >= lines.size()) return LineError(number, Cat("missing \"", keyword, " <value>\""));
    std::string_view line = lines[next];
    if (line.size() <= keyword.size() + 1 || line.substr(0, keyword.size()) != keyword ||
        line[keyword.size()] != ' ') {
      return LineError(number, Cat("expected \"", keyword, " <value>\", got ", QuoteForError(line)));
    }
    ++next;
    return line.substr(keyword.size() + 1);
  };
  auto keyword_is = [&](std::string_view keyword) {
    return next < lines.size() && lines[next].substr(0, lines[next].find(' ')) == keyword;
  };

  if (lines.empty() || lines[0] != kResolutionHeader) {
    return LineError(1, Cat("expected the header \"", kResolutionHeader, "\""));
  }
  next = 1;
  absl::StatusOr<std::string_view> value = value_of("dispute");
  if (!value.ok()) return value.status();
  const std::string_view dispute_id = *value;
  if (next >= lines.size()) return LineError(3, "missing \"path <store path>\" or \"realisation <key>\"");
  absl::StatusOr<DisputeSubject> subject = DisputeSubject::ParseNoteLine(lines[next++]);
  if (!subject.ok()) return LineError(3, StdView(subject.status().message()));
  if (value = value_of("outcome"); !value.ok()) return value.status();
  absl::StatusOr<ResolutionOutcome> outcome = ParseOutcome(*value);
  if (!outcome.ok()) return LineError(4, StdView(outcome.status().message()));
  Resolution resolution{.dispute_id = std::string(dispute_id), .subject = *std::move(subject), .outcome = *outcome};
  while (keyword_is("fingerprint")) {
    if (value = value_of("fingerprint"); !value.ok()) return value.status();
    resolution.fingerprints.emplace_back(*value);
  }
  while (keyword_is("builder")) {
    if (value = value_of("builder"); !value.ok()) return value.status();
    resolution.builders.emplace_back(*value);
  }
  if (value = value_of("time"); !value.ok()) return value.status();
  std::optional<uint64_t> time = ParseStrictDecimal(*value);
  if (!time.has_value() || *time > static_cast<uint64_t>(INT64_MAX)) {
    return LineError(static_cast<int>(next), Cat("time ", QuoteForError(*value),
                                                 " is not a non-negative decimal number of seconds"));
  }
  resolution.time_unix = static_cast<int64_t>(*time);
  if (value = value_of("note"); !value.ok()) return value.status();
  resolution.note = std::string(*value);
  if (next != lines.size()) {
    return LineError(static_cast<int>(next) + 1, Cat("unexpected line ", QuoteForError(lines[next])));
  }
  if (absl::Status status = resolution.Validate(); !status.ok()) return status;
  return resolution;
}

absl::StatusOr<SignedNote> SignResolution(const Resolution& resolution, const SecretKey& maintainer) {
  if (absl::Status status = resolution.Validate(); !status.ok()) return status;
  return SignNote(resolution.ToNoteText(), maintainer);
}

absl::StatusOr<VerifiedResolution> VerifyResolution(std::string_view signed_note, const Policy& policy) {
  absl::StatusOr<SignedNote> note = SignedNote::Parse(signed_note);
  if (!note.ok()) return absl::InvalidArgumentError(Cat("resolution: ", note.status().message()));
  absl::StatusOr<Resolution> resolution = Resolution::FromNoteText(note->text);
  if (!resolution.ok()) return resolution.status();
  for (const std::string& builder : resolution->builders) {
    if (policy.FindBuilder(builder) == nullptr) {
      return absl::InvalidArgumentError(
          Cat("resolution names builder ", QuoteForError(builder),
              ", which is not a builder key of the policy (only counted keys can be excluded)"));
    }
  }
  std::string signers;
  std::string failed_maintainer;
  for (const NoteSignature& signature : note->signatures) {
    signers += Cat(signers.empty() ? "" : ", ", signature.key_name);
    const PublicKey* maintainer = policy.FindMaintainer(signature.key_name);
    if (maintainer == nullptr) continue;
    if (VerifyNote(*note, *maintainer).ok()) {
      return VerifiedResolution{.resolution = *std::move(resolution),
                                .maintainer = signature.key_name,
                                .signed_note = note->Serialize()};
    }
    failed_maintainer = signature.key_name;
  }
  if (!failed_maintainer.empty()) {
    return absl::UnauthenticatedError(
        Cat("the signature by maintainer ", failed_maintainer,
            " does not verify: the statement was changed after signing, or signed with another key of that name"));
  }
  return absl::UnauthenticatedError(
      Cat("resolution is not signed by a maintainer key of the policy (signed by: ",
          signers.empty() ? "nobody" : signers,
          "; a resolution must be signed with a key listed under [[maintainer]])"));
}

const VerifiedResolution* LatestResolution(std::span<const VerifiedResolution> resolutions) {
  const VerifiedResolution* latest = nullptr;
  for (const VerifiedResolution& candidate : resolutions) {
    if (latest == nullptr ||
        std::tie(candidate.resolution.time_unix, candidate.signed_note) >
            std::tie(latest->resolution.time_unix, latest->signed_note)) {
      latest = &candidate;
    }
  }
  return latest;
}

std::string_view DisputeStateName(DisputeState state) {
  switch (state) {
    case DisputeState::kOpen:
      return "open";
    case DisputeState::kNondeterministic:
      return "nondeterministic";
    case DisputeState::kMalicious:
      return "malicious";
    case DisputeState::kResolved:
      return "resolved";
  }
  return "open";
}

absl::StatusOr<DisputeState> ParseDisputeState(std::string_view text) {
  for (DisputeState state : {DisputeState::kOpen, DisputeState::kNondeterministic, DisputeState::kMalicious,
                             DisputeState::kResolved}) {
    if (text == DisputeStateName(state)) return state;
  }
  return absl::InvalidArgumentError(Cat("dispute state ", QuoteForError(text),
                                        " is not one of open, nondeterministic, malicious, resolved"));
}

DisputeState StateOf(const Resolution* latest, std::span<const std::string> current_fingerprints) {
  if (latest == nullptr) return DisputeState::kOpen;
  for (const std::string& fingerprint : current_fingerprints) {
    if (!std::binary_search(latest->fingerprints.begin(), latest->fingerprints.end(), fingerprint)) {
      return DisputeState::kOpen;
    }
  }
  switch (latest->outcome) {
    case ResolutionOutcome::kNondeterministic:
      return DisputeState::kNondeterministic;
    case ResolutionOutcome::kMalicious:
      return DisputeState::kMalicious;
    case ResolutionOutcome::kResolved:
      return DisputeState::kResolved;
  }
  return DisputeState::kOpen;
}

absl::flat_hash_set<std::string> ExcludedBuilders(std::span<const Resolution* const> statements_in_force) {
  absl::flat_hash_set<std::string> excluded;
  for (const Resolution* statement : statements_in_force) {
    if (statement->outcome != ResolutionOutcome::kMalicious) continue;
    excluded.insert(statement->builders.begin(), statement->builders.end());
  }
  return excluded;
}

}  // namespace attest::consensus
