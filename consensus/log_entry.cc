// This file is long on purpose, for the reason below.
// Every log entry kind in one file: they share one line grammar (header, fields in a fixed order,
// canonical decimals, signature and metadata lines) and one strict parser, so that Encode(Parse(x)) == x
// holds for all of them by construction; splitting per kind would copy that grammar.
#include "consensus/log_entry.h"

#include <algorithm>

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/path_info.h"
#include "consensus/policy_update.h"
#include "consensus/resolution.h"
#include "consensus/sha256.h"
#include "consensus/signed_note.h"
#include "consensus/strict_decimal.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

enum class Presence { kRequired, kOptional };

struct FieldSpec {
  std::string_view keyword;
  Presence presence;
};

// The attestation entry's fields, in the only order they may appear.
enum Field : size_t {
  kFingerprint,
  kSignature,
  kObservedKey,
  kDeriver,
  kOutput,
  kSystem,
  kKind,
  kBuilt,
  kReceived,
  kFieldCount,
};

constexpr std::array<FieldSpec, kFieldCount> kFields = {{
    {"fingerprint", Presence::kRequired},
    {"signature", Presence::kRequired},
    {"observed-key", Presence::kOptional},
    {"deriver", Presence::kOptional},
    {"output", Presence::kOptional},
    {"system", Presence::kOptional},
    {"kind", Presence::kOptional},
    {"built", Presence::kOptional},
    {"received", Presence::kRequired},
}};

// Realisation entries have the same fields, with "realisation" in place of "fingerprint".
enum class ClaimKind { kPath, kRealisation };
constexpr std::string_view kRealisationKeyword = "realisation";

std::string_view ClaimKeyword(ClaimKind kind) {
  return kind == ClaimKind::kPath ? kFields[kFingerprint].keyword : kRealisationKeyword;
}
std::string_view EntryKindName(ClaimKind kind) {
  return kind == ClaimKind::kPath ? "attestation" : "realisation";
}
std::string_view FieldKeyword(Field field, ClaimKind kind) {
  return field == kFingerprint ? ClaimKeyword(kind) : kFields[field].keyword;
}
std::string FieldList(ClaimKind kind) {
  return Cat(ClaimKeyword(kind), ", signature, observed-key, deriver, output, system, kind, built, received");
}

constexpr std::array<BuildKind, 4> kNamedBuildKinds = {BuildKind::kFirstBuild, BuildKind::kRebuild,
                                                       BuildKind::kCheck, BuildKind::kImported};

std::optional<Field> FindField(std::string_view keyword, ClaimKind kind) {
  for (size_t i = 0; i < kFields.size(); ++i) {
    if (FieldKeyword(static_cast<Field>(i), kind) == keyword) return static_cast<Field>(i);
  }
  return std::nullopt;
}

template <typename Text>  // std::string_view, std::string or absl::string_view (Status::message())
absl::Status LineError(int line, const Text& problem) {
  return absl::InvalidArgumentError(Cat("log entry line ", line, ": ", problem));
}

// Hands out the lines of an entry one at a time; every line must end in '\n'.
class LineReader final {
 public:
  LineReader(std::string_view text, int lines_before)
      : rest_(text), line_number_(lines_before) {}

  bool AtEnd() const { return rest_.empty(); }
  // What Next() has not handed out yet.
  std::string_view rest() const { return rest_; }
  // The number of the line Next() returned last.
  int line_number() const { return line_number_; }

  // The next line without its '\n'; nullopt when the remaining text has no '\n'.
  std::optional<std::string_view> Next() {
    const size_t newline = rest_.find('\n');
    if (newline == std::string_view::npos) return std::nullopt;
    std::string_view line = rest_.substr(0, newline);
    rest_.remove_prefix(newline + 1);
    ++line_number_;
    return line;
  }

 private:
  std::string_view rest_;
  int line_number_;
};

absl::Status MissingNewline(int line) {
  return LineError(line,
                   "does not end in a newline; every line of a log entry ends in '\\n', the last "
                   "one included (was the entry truncated?)");
}

// Seconds as written in an entry: canonical decimal, and within int64 like every time we hold.
absl::StatusOr<int64_t> ParseSeconds(std::string_view keyword, std::string_view text, int line) {
  const std::optional<uint64_t> value = ParseStrictDecimal(text);
  if (!value.has_value() || *value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return LineError(line, Cat(keyword, " ", QuoteForError(text),
                               " is not a canonical decimal number of unix seconds (digits only, "
                               "no sign, no leading zeros, at most 2^63-1)"));
  }
  return static_cast<int64_t>(*value);
}

// The fields of an attestation entry as they are read (an Attestation needs its claim up front).
struct EntryFields {
  ClaimKind kind = ClaimKind::kPath;
  std::optional<PathInfo> claim;               // kPath
  std::optional<Realisation> realisation;      // kRealisation
  Signature signature;
  std::optional<PublicKey> observed_key;
  BuildMetadata metadata;
  int64_t received_unix = 0;
};

// Decodes the value of `field` on line `line` into `out`. The fields before it are already set.
absl::Status DecodeField(Field field, std::string_view value, int line, EntryFields& out) {
  switch (field) {
    case kFingerprint: {
      if (out.kind == ClaimKind::kRealisation) {
        absl::StatusOr<Realisation> realisation = Realisation::ParseFingerprint(value);
        if (!realisation.ok()) return LineError(line, realisation.status().message());
        out.realisation = *std::move(realisation);
        return absl::OkStatus();
      }
      absl::StatusOr<PathInfo> claim = PathInfo::ParseFingerprint(value);
      if (!claim.ok()) return LineError(line, claim.status().message());
      out.claim = *std::move(claim);
      return absl::OkStatus();
    }
    case kSignature: {
      absl::StatusOr<Signature> signature = Signature::Parse(value);
      if (!signature.ok()) return LineError(line, signature.status().message());
      if (signature->ToString() != value) {
        return LineError(line, Cat("signature ", QuoteForError(value),
                                   " is not in canonical form (expected ",
                                   signature->ToString(), ")"));
      }
      out.signature = *std::move(signature);
      return absl::OkStatus();
    }
    case kObservedKey: {
      absl::StatusOr<PublicKey> key = PublicKey::Parse(value);
      if (!key.ok()) return LineError(line, Cat("observed key: ", key.status().message()));
      if (key->ToString() != value) {
        return LineError(line, Cat("observed key ", QuoteForError(value),
                                   " is not in canonical form (expected ", key->ToString(), ")"));
      }
      if (key->name() != out.signature.key_name) {
        return LineError(line, Cat("observed key is named '", key->name(),
                                   "' but the signature is by '", out.signature.key_name,
                                   "'; the observed key is the one that made the signature"));
      }
      out.observed_key = *std::move(key);
      return absl::OkStatus();
    }
    case kDeriver:
    case kOutput:
    case kSystem: {
      // Checked alone, with the rules the encoder applies (ValidateBuildMetadata).
      std::string BuildMetadata::*member = field == kDeriver  ? &BuildMetadata::deriver
                                           : field == kOutput ? &BuildMetadata::output_name
                                                              : &BuildMetadata::system;
      BuildMetadata only_this;
      only_this.*member = std::string(value);
      if (absl::Status s = ValidateBuildMetadata(only_this); !s.ok()) {
        return LineError(line, s.message());
      }
      out.metadata.*member = std::move(only_this.*member);
      return absl::OkStatus();
    }
    case kKind: {
      for (BuildKind kind : kNamedBuildKinds) {
        if (BuildKindName(kind) == value) {
          out.metadata.build_kind = kind;
          return absl::OkStatus();
        }
      }
      if (value == BuildKindName(BuildKind::kUnspecified)) {
        return LineError(line,
                         "kind 'unspecified' is written by leaving the kind line out, never "
                         "spelled out");
      }
      return LineError(line, Cat("unknown build kind ", QuoteForError(value),
                                 " (expected build, rebuild, check or imported)"));
    }
    case kBuilt: {
      absl::StatusOr<int64_t> built = ParseSeconds("built", value, line);
      if (!built.ok()) return built.status();
      if (*built == 0) {
        return LineError(line, "built time 0 (unknown) is written by leaving the built line out");
      }
      out.metadata.build_time_unix = *built;
      return absl::OkStatus();
    }
    case kReceived: {
      absl::StatusOr<int64_t> received = ParseSeconds("received", value, line);
      if (!received.ok()) return received.status();
      out.received_unix = *received;
      return absl::OkStatus();
    }
    case kFieldCount:
      break;
  }
  return absl::InternalError("log entry: unhandled field");
}

// The lines of an attestation or realisation entry after the header, into `fields` (whose kind says
// which).
absl::Status ParseSignedClaimBody(std::string_view body, EntryFields& fields) {
  const ClaimKind claim_kind = fields.kind;
  const std::string field_list = FieldList(claim_kind);
  LineReader reader(body, /*lines_before=*/1);
  std::array<int, kFieldCount> seen_on_line{};  // 0: not seen
  std::optional<Field> last;
  while (!reader.AtEnd()) {
    const std::optional<std::string_view> line = reader.Next();
    if (!line.has_value()) return MissingNewline(reader.line_number() + 1);
    const int n = reader.line_number();
    if (seen_on_line[kReceived] != 0) {
      return LineError(n, Cat("unexpected ", QuoteForError(*line),
                              " after the received line, which is the last line of ",
                              claim_kind == ClaimKind::kPath ? "an" : "a", " ",
                              EntryKindName(claim_kind), " entry"));
    }
    if (line->empty()) return LineError(n, "is empty; a log entry has no blank lines");
    const size_t space = line->find(' ');
    const std::string_view keyword = line->substr(0, space);
    const std::optional<Field> field = FindField(keyword, claim_kind);
    if (!field.has_value()) {
      return LineError(n, Cat("unknown field ", QuoteForError(keyword), " (",
                              claim_kind == ClaimKind::kPath ? "an" : "a", " ",
                              EntryKindName(claim_kind), " entry has, in this order: ", field_list, ")"));
    }
    if (seen_on_line[*field] != 0) {
      return LineError(n, Cat("duplicate field '", keyword, "' (first on line ",
                              seen_on_line[*field], ")"));
    }
    if (last.has_value() && *field < *last) {
      return LineError(n, Cat("field '", keyword, "' is out of order: it belongs before '",
                              FieldKeyword(*last, claim_kind), "' (line ", seen_on_line[*last],
                              "); the order is ", field_list));
    }
    for (size_t skipped = last.has_value() ? *last + 1 : 0; skipped < *field; ++skipped) {
      if (kFields[skipped].presence == Presence::kRequired) {
        return LineError(n, Cat("missing required field '", FieldKeyword(static_cast<Field>(skipped), claim_kind),
                                "' before '", keyword, "'"));
      }
    }
    if (space == std::string_view::npos || space + 1 == line->size()) {
      return LineError(n, Cat("field '", keyword, "' has no value (expected \"", keyword,
                              " <value>\"; an optional field is left out when unknown)"));
    }
    if (absl::Status s = DecodeField(*field, line->substr(space + 1), n, fields); !s.ok()) {
      return s;
    }
    seen_on_line[*field] = n;
    last = field;
  }
  for (size_t missing = last.has_value() ? *last + 1 : 0; missing < kFieldCount; ++missing) {
    if (kFields[missing].presence == Presence::kRequired) {
      return LineError(reader.line_number(), Cat("the entry ends without the required field '",
                                                 FieldKeyword(static_cast<Field>(missing), claim_kind), "'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AttestationEntry> ParseAttestationBody(std::string_view body) {
  EntryFields fields;
  fields.kind = ClaimKind::kPath;
  if (absl::Status s = ParseSignedClaimBody(body, fields); !s.ok()) return s;
  return AttestationEntry{
      .attestation = Attestation{.claim = *std::move(fields.claim),
                                 .signature = std::move(fields.signature),
                                 .metadata = std::move(fields.metadata)},
      .observed_key = std::move(fields.observed_key),
      .received_unix = fields.received_unix,
  };
}

absl::StatusOr<RealisationEntry> ParseRealisationBody(std::string_view body) {
  EntryFields fields;
  fields.kind = ClaimKind::kRealisation;
  if (absl::Status s = ParseSignedClaimBody(body, fields); !s.ok()) return s;
  // Each metadata line was checked alone; the deriver and output must also fit the key.
  if (absl::Status s = ValidateRealisationMetadata(*fields.realisation, fields.metadata); !s.ok()) {
    return absl::InvalidArgumentError(Cat("realisation entry: ", s.message()));
  }
  return RealisationEntry{
      .attestation = RealisationAttestation{.claim = *std::move(fields.realisation),
                                            .signature = std::move(fields.signature),
                                            .metadata = std::move(fields.metadata)},
      .observed_key = std::move(fields.observed_key),
      .received_unix = fields.received_unix,
  };
}

// The checks the attestation and realisation encoders share (`subject` names the entry in
// messages): the signature's key name, the observed key's name, the metadata and the time.
// `subject` words what is validated, for an error only.
absl::Status ValidateSignedClaimEntry(absl::FunctionRef<std::string()> subject, const Signature& signature,
                                      const std::optional<PublicKey>& observed_key,
                                      const BuildMetadata& metadata, int64_t received_unix) {
  if (absl::Status s = ValidateKeyName(signature.key_name); !s.ok()) {
    return absl::InvalidArgumentError(Cat(subject(), ": signature: ", s.message()));
  }
  if (observed_key.has_value() && observed_key->name() != signature.key_name) {
    return absl::InvalidArgumentError(
        Cat(subject(), ": observed key is named '", observed_key->name(), "' but the signature is by '",
            signature.key_name, "' (the observed key must be the one that made the signature)"));
  }
  if (absl::Status s = ValidateBuildMetadata(metadata); !s.ok()) {
    return absl::InvalidArgumentError(Cat(subject(), ": ", s.message()));
  }
  if (received_unix < 0) {
    return absl::InvalidArgumentError(Cat(subject(), ": received time ", received_unix,
                                          " is negative (pass the unix time it arrived)"));
  }
  return absl::OkStatus();
}

// The lines after the claim line, shared by attestation and realisation entries.
void AppendSignedClaimLines(const Signature& signature, const std::optional<PublicKey>& observed_key,
                            const BuildMetadata& metadata, int64_t received_unix, std::string& out) {
  out += Cat("signature ", signature.ToString(), "\n");
  if (observed_key.has_value()) out += Cat("observed-key ", observed_key->ToString(), "\n");
  if (!metadata.deriver.empty()) out += Cat("deriver ", metadata.deriver, "\n");
  if (!metadata.output_name.empty()) out += Cat("output ", metadata.output_name, "\n");
  if (!metadata.system.empty()) out += Cat("system ", metadata.system, "\n");
  if (metadata.build_kind != BuildKind::kUnspecified) {
    out += Cat("kind ", BuildKindName(metadata.build_kind), "\n");
  }
  if (metadata.build_time_unix != 0) out += Cat("built ", metadata.build_time_unix, "\n");
  out += Cat("received ", received_unix, "\n");
}

// What the note encoders accept: a canonical signed note whose text is a statement of the kind that
// starts with `header` and that `parse_text` accepts.
template <typename ParseText>
absl::Status ValidateStatementNote(std::string_view note, std::string_view header, std::string_view kind,
                                   ParseText parse_text) {
  if (note.empty()) return absl::InvalidArgumentError(Cat(kind, " note is empty"));
  absl::StatusOr<SignedNote> parsed = SignedNote::Parse(note);
  if (!parsed.ok()) return parsed.status();
  if (parsed->Serialize() != note) {
    return absl::InvalidArgumentError(
        "signed note is not in canonical form (store it exactly as SignedNote::Serialize wrote "
        "it)");
  }
  const std::string first_line = Cat(header, "\n");
  if (parsed->text.compare(0, first_line.size(), first_line) != 0) {
    return absl::InvalidArgumentError(Cat("note text starts with ",
                                          QuoteForError(parsed->text.substr(0, first_line.size())),
                                          ", not the ", kind, " header \"", header, "\""));
  }
  return parse_text(parsed->text).status();
}

absl::Status ValidateDisputeNote(std::string_view note) {
  return ValidateStatementNote(note, kDisputeHeader, "dispute", DisputeRecord::FromNoteText);
}

absl::Status ValidateResolutionNote(std::string_view note) {
  return ValidateStatementNote(note, kResolutionHeader, "resolution", Resolution::FromNoteText);
}

absl::StatusOr<std::string> EncodeStatementEntry(std::string_view entry_header, std::string_view kind,
                                                 std::string_view note,
                                                 absl::Status (*validate)(std::string_view)) {
  const size_t size = entry_header.size() + 1 + note.size();
  if (size > kMaxLogEntryBytes) {
    return absl::InvalidArgumentError(
        Cat(kind, " entry would be ", size, " bytes; a log entry holds at most ", kMaxLogEntryBytes,
            " bytes (C2SP tlog-tiles), so a ", kind, " with this much evidence cannot be logged"));
  }
  if (absl::Status s = validate(note); !s.ok()) {
    return absl::InvalidArgumentError(Cat(kind, " entry: ", s.message()));
  }
  return Cat(entry_header, "\n", note);
}

// "<i>/<n>" of a part line, both canonical decimals.
std::optional<std::pair<size_t, size_t>> ParsePartNumbers(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::optional<uint64_t> index = ParseStrictDecimal(text.substr(0, slash));
  const std::optional<uint64_t> count = ParseStrictDecimal(text.substr(slash + 1));
  if (!index.has_value() || !count.has_value() || *count > kMaxDisputeParts) return std::nullopt;
  return std::make_pair(static_cast<size_t>(*index), static_cast<size_t>(*count));
}

bool IsLowerHexDigest(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

absl::StatusOr<DisputePart> ParseDisputePartBody(std::string_view body) {
  LineReader reader(body, /*lines_before=*/1);
  const std::optional<std::string_view> record = reader.Next();
  if (!record.has_value()) return MissingNewline(2);
  constexpr std::string_view kRecord = "record ";
  if (record->substr(0, kRecord.size()) != kRecord || !IsLowerHexDigest(record->substr(kRecord.size()))) {
    return LineError(2, Cat("expected \"record <SHA-256 of the dispute record, 64 lowercase hex digits>\", got ",
                            QuoteForError(*record)));
  }
  const std::optional<std::string_view> part = reader.Next();
  if (!part.has_value()) return MissingNewline(3);
  constexpr std::string_view kPart = "part ";
  std::optional<std::pair<size_t, size_t>> numbers;
  if (part->substr(0, kPart.size()) == kPart) numbers = ParsePartNumbers(part->substr(kPart.size()));
  if (!numbers.has_value() || numbers->second < 2 || numbers->first < 1 || numbers->first > numbers->second) {
    return LineError(3, Cat("expected \"part <i>/<n>\" with canonical decimals, 1 <= i <= n and 2 <= n <= ",
                            kMaxDisputeParts, ", got ", QuoteForError(*part)));
  }
  const size_t consumed = kRecord.size() + 64 + 1 + part->size() + 1;
  const std::string_view bytes = body.substr(consumed);
  const bool last = numbers->first == numbers->second;
  if (bytes.empty() || bytes.size() > kDisputePartBytes || (!last && bytes.size() != kDisputePartBytes)) {
    return LineError(4, Cat("part ", numbers->first, " of ", numbers->second, " holds ", bytes.size(),
                            " bytes of the record; every part but the last holds exactly ", kDisputePartBytes,
                            ", the last 1 to ", kDisputePartBytes));
  }
  return DisputePart{.record_sha256 = std::string(record->substr(kRecord.size())),
                     .index = numbers->first,
                     .count = numbers->second,
                     .bytes = std::string(bytes)};
}

std::string EncodeDisputePart(const DisputePart& part) {
  return Cat(kDisputePartEntryHeader, "\n", "record ", part.record_sha256, "\n", "part ", part.index, "/",
             part.count, "\n", part.bytes);
}

constexpr std::string_view kSha256Prefix = "sha256:";

bool IsPolicyHash(std::string_view text) {
  return text.substr(0, kSha256Prefix.size()) == kSha256Prefix && IsLowerHexDigest(text.substr(kSha256Prefix.size()));
}

// Everything EncodePolicyEntry checks but the size, which needs the bytes.
absl::Status ValidatePolicyEntry(const PolicyEntry& entry) {
  if (!IsPolicyHash(entry.policy_hash)) {
    return absl::InvalidArgumentError(Cat("policy entry: policy hash ", QuoteForError(entry.policy_hash),
                                          " is not \"sha256:<64 lowercase hex digits>\""));
  }
  if (!IsPolicyHash(entry.parent)) {
    return absl::InvalidArgumentError(Cat("policy entry for ", entry.policy_hash, ": parent ",
                                          QuoteForError(entry.parent),
                                          " is not \"sha256:<64 lowercase hex digits>\" (a logged policy always "
                                          "replaces one)"));
  }
  if (entry.version < 2) {
    return absl::InvalidArgumentError(Cat("policy entry for ", entry.policy_hash, ": version ", entry.version,
                                          " is below 2 (a successor's version is its parent's + 1)"));
  }
  if (entry.approvals.empty() || entry.approvals.size() > kMaxPolicyApprovals) {
    return absl::InvalidArgumentError(Cat("policy entry for ", entry.policy_hash, ": ", entry.approvals.size(),
                                          " approvals; a logged policy has 1 to ", kMaxPolicyApprovals));
  }
  for (size_t i = 0; i < entry.approvals.size(); ++i) {
    const std::string& name = entry.approvals[i].key_name;
    if (absl::Status s = ValidateKeyName(name); !s.ok()) {
      return absl::InvalidArgumentError(
          Cat("policy entry for ", entry.policy_hash, ": approval ", i + 1, ": ", s.message()));
    }
    for (size_t j = 0; j < i; ++j) {
      if (entry.approvals[j].key_name == name) {
        return absl::InvalidArgumentError(Cat("policy entry for ", entry.policy_hash, ": approvals ", j + 1,
                                              " and ", i + 1, " are both by key '", name,
                                              "' (a maintainer approves once)"));
      }
    }
  }
  if (entry.received_unix < 0) {
    return absl::InvalidArgumentError(Cat("policy entry for ", entry.policy_hash, ": received time ",
                                          entry.received_unix, " is negative (pass the unix time it arrived)"));
  }
  if (entry.toml.empty() || entry.toml.size() > kMaxPolicyTomlBytes) {
    return absl::InvalidArgumentError(Cat("policy entry for ", entry.policy_hash, ": TOML of ", entry.toml.size(),
                                          " bytes; a logged policy has 1 to ", kMaxPolicyTomlBytes));
  }
  return absl::OkStatus();
}

// The line `<keyword> <value>` as the next line of `reader`, or an error naming what was expected.
absl::StatusOr<std::string_view> ExpectLine(LineReader& reader, std::string_view keyword, std::string_view expected) {
  const std::optional<std::string_view> line = reader.Next();
  if (!line.has_value()) return MissingNewline(reader.line_number() + 1);
  const std::string prefix = Cat(keyword, " ");
  if (line->substr(0, prefix.size()) != prefix) {
    return LineError(reader.line_number(), Cat("expected \"", keyword, " ", expected, "\", got ", QuoteForError(*line)));
  }
  return line->substr(prefix.size());
}

absl::StatusOr<PolicyEntry> ParsePolicyBody(std::string_view body) {
  LineReader reader(body, /*lines_before=*/1);
  PolicyEntry entry;
  absl::StatusOr<std::string_view> hash = ExpectLine(reader, "policy", "sha256:<64 lowercase hex digits>");
  if (!hash.ok()) return hash.status();
  if (!IsPolicyHash(*hash)) {
    return LineError(reader.line_number(), Cat("policy hash ", QuoteForError(*hash),
                                               " is not \"sha256:<64 lowercase hex digits>\""));
  }
  entry.policy_hash = std::string(*hash);
  absl::StatusOr<std::string_view> parent = ExpectLine(reader, "parent", "sha256:<64 lowercase hex digits>");
  if (!parent.ok()) return parent.status();
  if (!IsPolicyHash(*parent)) {
    return LineError(reader.line_number(), Cat("parent hash ", QuoteForError(*parent),
                                               " is not \"sha256:<64 lowercase hex digits>\""));
  }
  entry.parent = std::string(*parent);
  absl::StatusOr<std::string_view> version = ExpectLine(reader, "version", "<n>");
  if (!version.ok()) return version.status();
  const std::optional<uint64_t> n = ParseStrictDecimal(*version);
  if (!n.has_value() || *n < 2 || *n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return LineError(reader.line_number(), Cat("version ", QuoteForError(*version),
                                               " is not a canonical decimal of at least 2"));
  }
  entry.version = static_cast<int64_t>(*n);

  // approval lines, then the received line.
  constexpr std::string_view kApproval = "approval ";
  constexpr std::string_view kReceived = "received ";
  while (true) {
    const std::optional<std::string_view> line = reader.Next();
    if (!line.has_value()) return MissingNewline(reader.line_number() + 1);
    const int number = reader.line_number();
    if (line->substr(0, kApproval.size()) == kApproval) {
      const std::string_view text = line->substr(kApproval.size());
      absl::StatusOr<Signature> signature = Signature::Parse(text);
      if (!signature.ok()) return LineError(number, Cat("approval: ", signature.status().message()));
      if (signature->ToString() != text) {
        return LineError(number, Cat("approval ", QuoteForError(text), " is not in canonical form (expected ",
                                     signature->ToString(), ")"));
      }
      if (entry.approvals.size() == kMaxPolicyApprovals) {
        return LineError(number, Cat("more than ", kMaxPolicyApprovals, " approvals"));
      }
      for (const Signature& earlier : entry.approvals) {
        if (earlier.key_name == signature->key_name) {
          return LineError(number, Cat("a second approval by key '", signature->key_name,
                                       "' (a maintainer approves once)"));
        }
      }
      entry.approvals.push_back(*std::move(signature));
      continue;
    }
    if (line->substr(0, kReceived.size()) != kReceived) {
      return LineError(number, Cat("expected \"approval <key name>:<base64>\" or \"received <unix seconds>\", got ",
                                   QuoteForError(*line)));
    }
    if (entry.approvals.empty()) {
      return LineError(number, "no approval line before the received line (a logged policy has at least one)");
    }
    absl::StatusOr<int64_t> received = ParseSeconds("received", line->substr(kReceived.size()), number);
    if (!received.ok()) return received.status();
    entry.received_unix = *received;
    break;
  }
  absl::StatusOr<std::string_view> length = ExpectLine(reader, "toml", "<byte length>");
  if (!length.ok()) return length.status();
  const std::optional<uint64_t> size = ParseStrictDecimal(*length);
  if (!size.has_value() || *size == 0 || *size > kMaxPolicyTomlBytes) {
    return LineError(reader.line_number(), Cat("toml length ", QuoteForError(*length),
                                               " is not a canonical decimal from 1 to ", kMaxPolicyTomlBytes));
  }
  const std::string_view toml = reader.rest();
  if (toml.size() != *size) {
    return LineError(reader.line_number() + 1, Cat("the toml line announces ", *size, " bytes but ", toml.size(),
                                                   " follow (the TOML text is the end of the entry)"));
  }
  entry.toml = std::string(toml);
  return entry;
}

}  // namespace

absl::StatusOr<std::string> EncodeAttestationEntry(const AttestationEntry& entry) {
  const Attestation& a = entry.attestation;
  const std::string& path = a.claim.path.full();
  if (absl::Status s = ValidateSignedClaimEntry([&path] { return Cat("attestation entry for ", path); }, a.signature,
                                                entry.observed_key, a.metadata, entry.received_unix);
      !s.ok()) {
    return s;
  }

  const std::string fingerprint = a.claim.Fingerprint();
  std::string out = Cat(kAttestationEntryHeader, "\n", "fingerprint ", fingerprint, "\n");
  AppendSignedClaimLines(a.signature, entry.observed_key, a.metadata, entry.received_unix, out);

  if (out.size() > kMaxLogEntryBytes) {
    return absl::InvalidArgumentError(Cat(
        "attestation entry for ", path, " would be ", out.size(), " bytes (its fingerprint alone ",
        fingerprint.size(), "); a log entry holds at most ", kMaxLogEntryBytes,
        " bytes (C2SP tlog-tiles), so a path with ", a.claim.references.size(),
        " references this long cannot be logged"));
  }
  // A PathInfo assembled by hand (not by PathInfo::Create) could be unsorted or out of range; its
  // entry would be one that ParseLogEntry refuses, so it is refused here instead. Checked on the
  // fields (what Create checks), not by parsing the fingerprint back: this runs for every
  // attestation a node logs, and store paths are valid by construction.
  const bool sorted_unique =
      std::adjacent_find(a.claim.references.begin(), a.claim.references.end(),
                         [](const StorePath& x, const StorePath& y) { return !(x < y); }) ==
      a.claim.references.end();
  if (a.claim.nar_size == 0 || a.claim.nar_size > kMaxNarSize ||
      a.claim.references.size() > kMaxReferences || !sorted_unique) {
    return absl::InvalidArgumentError(Cat(
        "attestation entry for ", path,
        ": invalid claim (NAR size 0 or over the limit, too many references, or references not "
        "sorted and unique): build it with PathInfo::Create"));
  }
  return out;
}

absl::StatusOr<std::string> EncodeRealisationEntry(const RealisationEntry& entry) {
  const RealisationAttestation& a = entry.attestation;
  // Worded only for an error: the node encodes every realisation it accepts.
  auto subject = [&a] { return Cat("realisation entry for ", a.claim.key.ToString()); };
  if (absl::Status s = ValidateSignedClaimEntry(subject, a.signature, entry.observed_key, a.metadata,
                                                entry.received_unix);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateRealisationMetadata(a.claim, a.metadata); !s.ok()) {
    return absl::InvalidArgumentError(Cat(subject(), ": ", s.message()));
  }
  const std::string fingerprint = a.claim.Fingerprint();
  std::string out = Cat(kRealisationEntryHeader, "\n", kRealisationKeyword, " ", fingerprint, "\n");
  AppendSignedClaimLines(a.signature, entry.observed_key, a.metadata, entry.received_unix, out);
  if (out.size() > kMaxLogEntryBytes) {
    return absl::InvalidArgumentError(
        Cat(subject(), " would be ", out.size(), " bytes (its fingerprint alone ", fingerprint.size(),
            "); a log entry holds at most ", kMaxLogEntryBytes, " bytes (C2SP tlog-tiles), so a "
            "realisation with ", a.claim.dependent.size(), " dependent realisations cannot be logged"));
  }
  // A Realisation assembled by hand (not by Realisation::Create) could be unsorted or misnamed; its
  // entry would be one that ParseLogEntry refuses, so it is refused here instead. Create checks exactly
  // what makes a fingerprint read back as its claim, without parsing the JSON again (the writer encodes
  // every accepted realisation while it holds the write lock).
  absl::StatusOr<Realisation> valid = Realisation::Create(a.claim.key, a.claim.out_path, a.claim.dependent);
  if (!valid.ok()) {
    return absl::InvalidArgumentError(
        Cat(subject(), ": invalid claim (", valid.status().message(), "): build it with Realisation::Create"));
  }
  return out;
}

absl::Status CheckRealisationLoggable(const RealisationAttestation& attestation,
                                      const std::optional<PublicKey>& observed_key) {
  // The longest received time an entry can carry: an entry that fits with it fits with any.
  return EncodeRealisationEntry(RealisationEntry{.attestation = attestation,
                                                 .observed_key = observed_key,
                                                 .received_unix = std::numeric_limits<int64_t>::max()})
      .status();
}

absl::StatusOr<std::string> EncodeDisputeEntry(std::string_view signed_dispute_note) {
  return EncodeStatementEntry(kDisputeEntryHeader, "dispute", signed_dispute_note, ValidateDisputeNote);
}

absl::Status CheckAttestationLoggable(const Attestation& attestation, const std::optional<PublicKey>& observed_key) {
  // The longest received time an entry can carry: an entry that fits with it fits with any.
  return EncodeAttestationEntry(AttestationEntry{.attestation = attestation,
                                                 .observed_key = observed_key,
                                                 .received_unix = std::numeric_limits<int64_t>::max()})
      .status();
}

absl::StatusOr<std::vector<std::string>> EncodeDisputeEntries(std::string_view signed_dispute_note) {
  if (kDisputeEntryHeader.size() + 1 + signed_dispute_note.size() <= kMaxLogEntryBytes) {
    absl::StatusOr<std::string> entry = EncodeDisputeEntry(signed_dispute_note);
    if (!entry.ok()) return entry.status();
    return std::vector<std::string>{*std::move(entry)};
  }
  if (absl::Status s = ValidateDisputeNote(signed_dispute_note); !s.ok()) {
    return absl::InvalidArgumentError(Cat("dispute entry: ", s.message()));
  }
  const size_t count = (signed_dispute_note.size() + kDisputePartBytes - 1) / kDisputePartBytes;
  if (count > kMaxDisputeParts) {
    return absl::InvalidArgumentError(Cat("dispute record of ", signed_dispute_note.size(), " bytes would take ",
                                          count, " log entries; at most ", kMaxDisputeParts, " are allowed"));
  }
  const std::string record = HexEncode(Sha256(signed_dispute_note));
  std::vector<std::string> entries;
  entries.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    entries.push_back(EncodeDisputePart(DisputePart{
        .record_sha256 = record,
        .index = i + 1,
        .count = count,
        .bytes = std::string(signed_dispute_note.substr(i * kDisputePartBytes, kDisputePartBytes))}));
  }
  return entries;
}

absl::StatusOr<std::string> AssembleDisputeParts(std::span<const DisputePart> parts) {
  if (parts.empty()) return absl::InvalidArgumentError("no dispute parts to assemble");
  const DisputePart& first = parts.front();
  if (parts.size() != first.count) {
    return absl::InvalidArgumentError(
        Cat("the record ", first.record_sha256, " has ", first.count, " parts; ", parts.size(), " were given"));
  }
  std::string note;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].record_sha256 != first.record_sha256 || parts[i].count != first.count) {
      return absl::InvalidArgumentError(Cat("part ", i + 1, " belongs to another record (",
                                            parts[i].record_sha256, " part ", parts[i].index, "/", parts[i].count,
                                            ", expected ", first.record_sha256, ")"));
    }
    if (parts[i].index != i + 1) {
      return absl::InvalidArgumentError(Cat("part ", parts[i].index, " of record ", first.record_sha256,
                                            " found where part ", i + 1, " belongs (parts are consecutive)"));
    }
    note += parts[i].bytes;
  }
  if (HexEncode(Sha256(note)) != first.record_sha256) {
    return absl::InvalidArgumentError(Cat("the parts of record ", first.record_sha256,
                                          " join to bytes with another SHA-256: a part was changed"));
  }
  if (absl::Status s = ValidateDisputeNote(note); !s.ok()) {
    return absl::InvalidArgumentError(Cat("the assembled dispute record: ", s.message()));
  }
  return note;
}

absl::StatusOr<std::string> EncodeResolutionEntry(std::string_view signed_resolution_note) {
  return EncodeStatementEntry(kResolutionEntryHeader, "resolution", signed_resolution_note,
                              ValidateResolutionNote);
}

absl::StatusOr<std::string> EncodePolicyEntry(const PolicyEntry& entry) {
  if (absl::Status s = ValidatePolicyEntry(entry); !s.ok()) return s;
  std::string out = Cat(kPolicyEntryHeader, "\n", "policy ", entry.policy_hash, "\n", "parent ", entry.parent, "\n",
                        "version ", entry.version, "\n");
  for (const Signature& approval : entry.approvals) out += Cat("approval ", approval.ToString(), "\n");
  out += Cat("received ", entry.received_unix, "\n", "toml ", entry.toml.size(), "\n");
  out += entry.toml;
  if (out.size() > kMaxLogEntryBytes) {
    return absl::InvalidArgumentError(Cat("policy entry for ", entry.policy_hash, " would be ", out.size(),
                                          " bytes; a log entry holds at most ", kMaxLogEntryBytes,
                                          " bytes (C2SP tlog-tiles): shorten the TOML text or its approvals"));
  }
  return out;
}

absl::StatusOr<std::string> EncodeNoteEntry(std::string_view signed_note) {
  if (signed_note.substr(0, kDisputePartEntryHeader.size() + 1) == Cat(kDisputePartEntryHeader, "\n") ||
      signed_note.substr(0, kPolicyEntryHeader.size() + 1) == Cat(kPolicyEntryHeader, "\n")) {
    absl::StatusOr<LogEntry> part = ParseLogEntry(signed_note);
    if (!part.ok()) return part.status();
    return std::string(signed_note);
  }
  if (signed_note.substr(0, kResolutionHeader.size() + 1) == Cat(kResolutionHeader, "\n")) {
    return EncodeResolutionEntry(signed_note);
  }
  return EncodeDisputeEntry(signed_note);
}

absl::StatusOr<LogEntry> ParseLogEntry(std::string_view bytes) {
  if (bytes.size() > kMaxLogEntryBytes) {
    return absl::InvalidArgumentError(Cat("log entry has ", bytes.size(),
                                          " bytes; at most ", kMaxLogEntryBytes,
                                          " are allowed (C2SP tlog-tiles)"));
  }
  if (bytes.empty()) return LineError(1, "the entry is empty");
  const size_t newline = bytes.find('\n');
  const std::string_view header = bytes.substr(0, newline);
  if (header != kAttestationEntryHeader && header != kDisputeEntryHeader &&
      header != kResolutionEntryHeader && header != kDisputePartEntryHeader && header != kPolicyEntryHeader &&
      header != kRealisationEntryHeader) {
    return LineError(1, Cat("unknown entry type ", QuoteForError(header), " (expected \"",
                            kAttestationEntryHeader, "\", \"", kRealisationEntryHeader, "\", \"",
                            kDisputeEntryHeader, "\", \"", kDisputePartEntryHeader, "\", \"",
                            kResolutionEntryHeader, "\" or \"", kPolicyEntryHeader, "\")"));
  }
  if (newline == std::string_view::npos) return MissingNewline(1);
  const std::string_view body = bytes.substr(newline + 1);

  if (header == kAttestationEntryHeader) {
    absl::StatusOr<AttestationEntry> entry = ParseAttestationBody(body);
    if (!entry.ok()) return entry.status();
    return LogEntry{.kind = LogEntryKind::kAttestation,
                    .attestation = *std::move(entry),
                    .note = {},
                    .part = std::nullopt,
                    .policy = std::nullopt, .realisation = std::nullopt};
  }
  if (header == kRealisationEntryHeader) {
    absl::StatusOr<RealisationEntry> entry = ParseRealisationBody(body);
    if (!entry.ok()) return entry.status();
    LogEntry parsed;
    parsed.kind = LogEntryKind::kRealisation;
    parsed.realisation = *std::move(entry);
    return parsed;
  }
  if (header == kPolicyEntryHeader) {
    absl::StatusOr<PolicyEntry> policy = ParsePolicyBody(body);
    if (!policy.ok()) return policy.status();
    return LogEntry{.kind = LogEntryKind::kPolicy, .attestation = std::nullopt, .note = {}, .part = std::nullopt,
                    .policy = *std::move(policy), .realisation = std::nullopt};
  }
  if (header == kDisputePartEntryHeader) {
    absl::StatusOr<DisputePart> part = ParseDisputePartBody(body);
    if (!part.ok()) return part.status();
    return LogEntry{.kind = LogEntryKind::kDisputePart, .attestation = std::nullopt, .note = {},
                    .part = *std::move(part), .policy = std::nullopt, .realisation = std::nullopt};
  }
  if (header == kResolutionEntryHeader) {
    if (absl::Status s = ValidateResolutionNote(body); !s.ok()) {
      return LineError(2, Cat("resolution note: ", s.message()));
    }
    return LogEntry{.kind = LogEntryKind::kResolution,
                    .attestation = std::nullopt,
                    .note = std::string(body),
                    .part = std::nullopt,
                    .policy = std::nullopt, .realisation = std::nullopt};
  }
  if (absl::Status s = ValidateDisputeNote(body); !s.ok()) {
    return LineError(2, Cat("dispute note: ", s.message()));
  }
  return LogEntry{.kind = LogEntryKind::kDispute,
                  .attestation = std::nullopt,
                  .note = std::string(body),
                  .part = std::nullopt,
                  .policy = std::nullopt, .realisation = std::nullopt};
}

absl::StatusOr<std::string> EncodeLogEntry(const LogEntry& entry) {
  if (entry.kind != LogEntryKind::kRealisation && entry.realisation.has_value()) {
    return absl::InvalidArgumentError("only a log entry of kind realisation holds a realisation");
  }
  switch (entry.kind) {
    case LogEntryKind::kRealisation:
      if (!entry.realisation.has_value() || entry.attestation.has_value() || !entry.note.empty() ||
          entry.part.has_value() || entry.policy.has_value()) {
        return absl::InvalidArgumentError(
            "log entry of kind realisation must hold a realisation and nothing else");
      }
      return EncodeRealisationEntry(*entry.realisation);
    case LogEntryKind::kAttestation:
      if (!entry.attestation.has_value() || !entry.note.empty() || entry.part.has_value() || entry.policy.has_value() ||
          entry.realisation.has_value()) {
        return absl::InvalidArgumentError(
            "log entry of kind attestation must hold an attestation and no dispute note");
      }
      return EncodeAttestationEntry(*entry.attestation);
    case LogEntryKind::kDisputePart: {
      if (!entry.part.has_value() || entry.attestation.has_value() || !entry.note.empty() || entry.policy.has_value()) {
        return absl::InvalidArgumentError("log entry of kind dispute part must hold a part and nothing else");
      }
      std::string bytes = EncodeDisputePart(*entry.part);
      // Only what the parser accepts is ever encoded.
      if (absl::StatusOr<LogEntry> parsed = ParseLogEntry(bytes); !parsed.ok()) return parsed.status();
      return bytes;
    }
    case LogEntryKind::kDispute:
      if (entry.attestation.has_value() || entry.part.has_value() || entry.policy.has_value()) {
        return absl::InvalidArgumentError(
            "log entry of kind dispute must hold a dispute note and no attestation");
      }
      return EncodeDisputeEntry(entry.note);
    case LogEntryKind::kResolution:
      if (entry.attestation.has_value() || entry.part.has_value() || entry.policy.has_value()) {
        return absl::InvalidArgumentError(
            "log entry of kind resolution must hold a resolution note and no attestation");
      }
      return EncodeResolutionEntry(entry.note);
    case LogEntryKind::kPolicy:
      if (!entry.policy.has_value() || entry.attestation.has_value() || !entry.note.empty() || entry.part.has_value()) {
        return absl::InvalidArgumentError("log entry of kind policy must hold a policy and nothing else");
      }
      return EncodePolicyEntry(*entry.policy);
  }
  return absl::InvalidArgumentError(
      Cat("unknown log entry kind ", static_cast<int>(entry.kind)));
}

absl::Status VerifyAttestationEntry(const AttestationEntry& entry, const PublicKey& key) {
  return VerifyAttestation(entry.attestation, key);
}

}  // namespace attest::consensus
