#include "consensus/checkpoint.h"

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "consensus/encoding.h"
#include "consensus/sha256.h"
#include "consensus/strict_decimal.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr uint8_t kCosignatureType = 0x04;
constexpr size_t kTimestampBytes = 8;
constexpr size_t kEd25519SignatureBytes = 64;

// Statement kinds the node key signs besides checkpoints start with these; an origin that did too
// could make a checkpoint body share its first line with one of them.
constexpr std::string_view kReservedOriginPrefixes[] = {"attest/", "cosignature/", "1;"};

// Valid UTF-8 (as Go's utf8 package decides) without ASCII control characters: the rule
// signed_note.cc applies to note text, so every origin a note can carry parses. Returns the byte
// offset of the first offence.
std::optional<size_t> FindInvalidOriginByte(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    size_t length = 0;
    const std::optional<char32_t> cp = DecodeUtf8(s, pos, length);
    if (!cp.has_value() || *cp < 0x20 || *cp == 0x7F) return pos;
    pos += length;
  }
  return std::nullopt;
}

absl::Status LineError(int line, std::string_view what, std::string_view problem) {
  return absl::InvalidArgumentError(Cat("checkpoint line ", line, " (", what, ") ", problem));
}

uint32_t CosignatureKeyIdOf(std::string_view name, const std::array<uint8_t, 32>& key) {
  std::string input(name);
  input.push_back('\n');
  input.push_back(static_cast<char>(kCosignatureType));
  input.append(reinterpret_cast<const char*>(key.data()), key.size());
  const auto digest = Sha256(input);
  return uint32_t{digest[0]} << 24 | uint32_t{digest[1]} << 16 | uint32_t{digest[2]} << 8 |
         uint32_t{digest[3]};
}

std::string CosignedMessageForText(std::string_view body, uint64_t timestamp) {
  return Cat(kCosignatureHeader, "\ntime ", timestamp, "\n", body);
}

}  // namespace

std::string Checkpoint::Body() const {
  return Cat(origin, "\n", size, "\n", Base64Encode(root), "\n");
}

absl::StatusOr<Checkpoint> Checkpoint::ParseBody(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("checkpoint body is empty");
  if (text.back() != '\n') {
    return absl::InvalidArgumentError(
        "checkpoint body does not end in a newline (every line, the root hash line too, ends in "
        "'\\n'; was it truncated?)");
  }
  // Four lines are enough to tell a checkpoint from anything else; a hostile megabyte of lines is
  // not split further.
  std::vector<std::string_view> lines;
  for (std::string_view rest = text; !rest.empty() && lines.size() < 4;) {
    const size_t eol = rest.find('\n');
    lines.push_back(rest.substr(0, eol));
    rest.remove_prefix(eol + 1);
  }
  if (lines.size() < 3) {
    return absl::InvalidArgumentError(
        Cat("checkpoint body has ", lines.size(),
            " lines; expected exactly 3 (origin, tree size, root hash)"));
  }
  if (lines.size() > 3) {
    return absl::InvalidArgumentError(
        Cat("checkpoint line 4 ", QuoteForError(lines[3]),
            " is an extension line; attest neither writes nor accepts them (expected exactly 3 "
            "lines: origin, tree size, root hash)"));
  }

  Checkpoint checkpoint;
  const std::string_view origin = lines[0];
  if (origin.empty()) return LineError(1, "origin", "is empty");
  if (const std::optional<size_t> bad = FindInvalidOriginByte(origin); bad.has_value()) {
    return LineError(1, "origin",
                     Cat(QuoteForError(origin),
                         " has a control character or invalid UTF-8 at byte offset ", *bad));
  }
  checkpoint.origin = std::string(origin);

  const std::optional<uint64_t> size = ParseStrictDecimal(lines[1]);
  if (!size.has_value()) {
    return LineError(2, "tree size",
                     Cat(QuoteForError(lines[1]),
                         " is not a decimal number (digits only, no sign, no leading zeros)"));
  }
  if (*size > kMaxTreeSize) {
    return LineError(2, "tree size", Cat(*size, " exceeds 2^63-1"));
  }
  checkpoint.size = *size;

  absl::StatusOr<std::vector<uint8_t>> root = Base64Decode(lines[2]);
  if (!root.ok()) {
    return LineError(3, "root hash", Cat(QuoteForError(lines[2]), ": ", root.status().message()));
  }
  if (root->size() != checkpoint.root.size()) {
    return LineError(3, "root hash",
                     Cat(QuoteForError(lines[2]), " decodes to ", root->size(),
                         " bytes; a SHA-256 root hash has 32"));
  }
  std::copy(root->begin(), root->end(), checkpoint.root.begin());
  return checkpoint;
}

absl::Status ValidateLogOrigin(std::string_view origin) {
  if (absl::Status s = ValidateNoteKeyName(origin); !s.ok()) {
    return absl::InvalidArgumentError(Cat("log origin: ", s.message()));
  }
  for (std::string_view prefix : kReservedOriginPrefixes) {
    if (origin.substr(0, prefix.size()) == prefix) {
      return absl::InvalidArgumentError(
          Cat("log origin ", QuoteForError(origin), " starts with '", prefix,
              "', which is reserved for other statements the node key signs; the origin is the "
              "node key's name, so choose a name like 'example.org/attest-node-1'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SignedNote> SignCheckpoint(const Checkpoint& checkpoint, const SecretKey& node_key) {
  if (checkpoint.origin != node_key.name()) {
    return absl::InvalidArgumentError(Cat(
        "checkpoint origin ", QuoteForError(checkpoint.origin), " is not the name of the node key ",
        QuoteForError(node_key.name()), " that signs it; a log's origin is its key's name"));
  }
  if (absl::Status s = ValidateLogOrigin(checkpoint.origin); !s.ok()) return s;
  if (checkpoint.size > kMaxTreeSize) {
    return absl::InvalidArgumentError(
        Cat("checkpoint tree size ", checkpoint.size, " exceeds 2^63-1"));
  }
  return SignNote(checkpoint.Body(), node_key);
}

absl::StatusOr<Checkpoint> VerifyCheckpoint(const SignedNote& note, const PublicKey& log_key,
                                            std::string_view origin) {
  if (absl::Status s = VerifyNote(note, log_key); !s.ok()) {
    return absl::UnauthenticatedError(
        Cat("checkpoint of log ", QuoteForError(origin), ": ", s.message()));
  }
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::ParseBody(note.text);
  if (!checkpoint.ok()) return checkpoint.status();
  if (checkpoint->origin != origin) {
    return absl::UnauthenticatedError(
        Cat("checkpoint signed by key ", QuoteForError(log_key.name()), " has origin ",
            QuoteForError(checkpoint->origin), ", not ", QuoteForError(origin),
            " (it belongs to another log signed with the same key)"));
  }
  return checkpoint;
}

absl::StatusOr<Checkpoint> VerifyCheckpoint(std::string_view note_text, const PublicKey& log_key) {
  absl::StatusOr<SignedNote> note = SignedNote::Parse(note_text);
  if (!note.ok()) return note.status();
  return VerifyCheckpoint(*note, log_key, log_key.name());
}

uint32_t CosignatureKeyId(const PublicKey& witness_key) {
  return CosignatureKeyIdOf(witness_key.name(), witness_key.bytes());
}

std::string CosignatureVerifierKey(const PublicKey& witness_key) {
  std::vector<uint8_t> typed = {kCosignatureType};
  typed.insert(typed.end(), witness_key.bytes().begin(), witness_key.bytes().end());
  return absl::StrFormat("%s+%08x+%s", witness_key.name(), CosignatureKeyId(witness_key),
                         Base64Encode(typed));
}

absl::StatusOr<PublicKey> ParseCosignatureVerifierKey(std::string_view vkey) {
  const std::string where = Cat("witness verifier key ", QuoteForError(vkey));
  // Split on the first two '+' only: the base64 key may itself contain '+'.
  const size_t first = vkey.find('+');
  const size_t second = first == std::string_view::npos ? first : vkey.find('+', first + 1);
  if (second == std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(where, " does not have the form '<name>+<8 hex digit key id>+<base64(0x04 || key)>'"));
  }
  const std::string_view name = vkey.substr(0, first);
  const std::string_view id_hex = vkey.substr(first + 1, second - first - 1);
  if (absl::Status s = ValidateNoteKeyName(name); !s.ok()) {
    return absl::InvalidArgumentError(Cat(where, ": ", s.message()));
  }
  absl::StatusOr<std::vector<uint8_t>> id = HexDecode(id_hex);
  if (id_hex.size() != 8 || !id.ok()) {
    return absl::InvalidArgumentError(
        Cat(where, " has key id ", QuoteForError(id_hex), "; expected 8 hex digits"));
  }
  absl::StatusOr<std::vector<uint8_t>> typed = Base64Decode(vkey.substr(second + 1));
  if (!typed.ok()) return absl::InvalidArgumentError(Cat(where, ": ", typed.status().message()));
  if (typed->empty() || (*typed)[0] != kCosignatureType) {
    const unsigned type = typed->empty() ? 0u : (*typed)[0];
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s has key type 0x%02x; a witness cosignature key has type 0x04%s", where, type,
        type == 0x01 ? " (0x01 is a note signer key: read it with ParseNoteVerifierKey)" : ""));
  }
  if (typed->size() != 33) {
    return absl::InvalidArgumentError(
        Cat(where, " holds ", typed->size() - 1, " key bytes; an Ed25519 key has 32"));
  }
  absl::StatusOr<PublicKey> key =
      PublicKey::FromBytes(name, std::span<const uint8_t>(typed->data() + 1, 32));
  if (!key.ok()) return absl::InvalidArgumentError(Cat(where, ": ", key.status().message()));
  const std::vector<uint8_t>& b = *id;
  const uint32_t given =
      uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
  if (given != CosignatureKeyId(*key)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s has key id %08x, but its name and key give %08x (the text was altered or mixes two "
        "keys)",
        where, given, CosignatureKeyId(*key)));
  }
  return key;
}

std::string CosignedMessage(const Checkpoint& checkpoint, uint64_t timestamp) {
  return CosignedMessageForText(checkpoint.Body(), timestamp);
}

absl::StatusOr<NoteSignature> Cosign(const Checkpoint& checkpoint, uint64_t timestamp,
                                     const SecretKey& witness_key) {
  if (absl::Status s = ValidateNoteKeyName(witness_key.name()); !s.ok()) {
    return absl::InvalidArgumentError(Cat("witness key: ", s.message()));
  }
  if (timestamp > kMaxCosignatureTimestamp) {
    return absl::InvalidArgumentError(
        Cat("cosignature timestamp ", timestamp, " exceeds 2^63-1 (tlog-cosignature)"));
  }
  const std::string body = checkpoint.Body();
  if (absl::StatusOr<Checkpoint> parsed = Checkpoint::ParseBody(body); !parsed.ok()) {
    return absl::InvalidArgumentError(Cat("cannot cosign: ", parsed.status().message()));
  }
  const std::array<uint8_t, 64> sig =
      witness_key.SignBytes(CosignedMessageForText(body, timestamp));
  NoteSignature line;
  line.key_name = witness_key.name();
  line.key_id = CosignatureKeyId(witness_key.public_key());
  line.signature.reserve(kTimestampBytes + sig.size());
  for (int shift = 56; shift >= 0; shift -= 8) {
    line.signature.push_back(static_cast<uint8_t>(timestamp >> shift));
  }
  line.signature.insert(line.signature.end(), sig.begin(), sig.end());
  return line;
}

absl::StatusOr<uint64_t> VerifyCosignature(const SignedNote& note, const PublicKey& witness_key) {
  const uint32_t id = CosignatureKeyId(witness_key);
  std::optional<uint64_t> latest;
  for (const NoteSignature& sig : note.signatures) {
    // Lines of other signers (the log, other witnesses) are not this witness's business.
    if (sig.key_name != witness_key.name() || sig.key_id != id) continue;
    if (sig.signature.size() != kTimestampBytes + kEd25519SignatureBytes) {
      return absl::UnauthenticatedError(absl::StrFormat(
          "cosignature by witness '%s' (id %08x) holds %d bytes after the key id; a timestamped "
          "Ed25519 cosignature holds 72 (8-byte timestamp, 64-byte signature)",
          witness_key.name(), id, sig.signature.size()));
    }
    uint64_t timestamp = 0;
    for (size_t i = 0; i < kTimestampBytes; ++i) timestamp = timestamp << 8 | sig.signature[i];
    if (timestamp > kMaxCosignatureTimestamp) {
      return absl::UnauthenticatedError(
          absl::StrFormat("cosignature by witness '%s' (id %08x) has timestamp %d, above 2^63-1",
                          witness_key.name(), id, timestamp));
    }
    if (!witness_key.VerifyBytes(
            CosignedMessageForText(note.text, timestamp),
            std::span<const uint8_t, 64>(sig.signature.data() + kTimestampBytes, 64))) {
      return absl::UnauthenticatedError(absl::StrFormat(
          "cosignature by witness '%s' (id %08x, time %d) does not verify (the checkpoint or the "
          "timestamp was changed after cosigning, or the key is not the one that cosigned)",
          witness_key.name(), id, timestamp));
    }
    if (!latest.has_value() || timestamp > *latest) latest = timestamp;
  }
  if (!latest.has_value()) {
    return absl::UnauthenticatedError(absl::StrFormat(
        "checkpoint carries no cosignature by witness '%s' (id %08x)", witness_key.name(), id));
  }
  return *latest;
}

}  // namespace attest::consensus
