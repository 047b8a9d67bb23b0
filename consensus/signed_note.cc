#include "consensus/signed_note.h"

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "consensus/display_text.h"
#include "consensus/encoding.h"
#include "consensus/sha256.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

// U+2014 EM DASH and a space: the prefix of every signature line.
constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";
constexpr uint8_t kEd25519Type = 0x01;
// golang.org/x/mod/sumdb/note refuses more, so that parsing a hostile note stays cheap.
constexpr size_t kMaxSignatures = 100;

// Valid UTF-8 with no control characters except '\n'. `what` names the checked text in messages.
absl::Status ValidateNoteBytes(std::string_view s, std::string_view what) {
  for (size_t pos = 0; pos < s.size();) {
    size_t length = 0;
    const std::optional<char32_t> cp = DecodeUtf8(s, pos, length);
    if (!cp.has_value()) {
      return absl::InvalidArgumentError(Cat(what, " is not valid UTF-8 at byte offset ", pos));
    }
    if ((*cp < 0x20 && *cp != '\n') || *cp == 0x7F) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s has control character 0x%02x at byte offset %d; only '\\n' is allowed", what,
          static_cast<unsigned>(*cp), pos));
    }
    pos += length;
  }
  return absl::OkStatus();
}

absl::Status ValidateNoteText(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("note text is empty");
  if (text.back() != '\n') {
    return absl::InvalidArgumentError("note text does not end in a newline ('\\n')");
  }
  return ValidateNoteBytes(text, "note text");
}

uint32_t KeyIdOf(std::string_view name, const std::array<uint8_t, 32>& public_key) {
  std::string input;
  input.reserve(name.size() + 2 + public_key.size());
  input.append(name);
  input.push_back('\n');
  input.push_back(static_cast<char>(kEd25519Type));
  input.append(reinterpret_cast<const char*>(public_key.data()), public_key.size());
  const auto digest = Sha256(input);
  return uint32_t{digest[0]} << 24 | uint32_t{digest[1]} << 16 | uint32_t{digest[2]} << 8 |
         uint32_t{digest[3]};
}

NoteSignature MakeSignature(std::string_view text, const SecretKey& key) {
  const PublicKey public_key = key.public_key();
  const std::array<uint8_t, 64> sig = key.SignBytes(text);
  return NoteSignature{key.name(), KeyIdOf(key.name(), public_key.bytes()),
                       std::vector<uint8_t>(sig.begin(), sig.end())};
}

}  // namespace

absl::Status ValidateNoteSignerName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("note key name is empty");
  return ValidateDisplayText(name, TextShape::kWord, "note key name");
}

absl::Status ValidateNoteKeyName(std::string_view name) {
  if (absl::Status s = ValidateNoteSignerName(name); !s.ok()) return s;
  if (name.find('+') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("note key name ", QuoteForError(name),
            " contains '+', which C2SP signed-note key names cannot (it separates the fields of a "
            "verifier key '<name>+<id>+<key>', and standard clients refuse notes with such a "
            "signer): choose a name like 'example.com/node-1'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<SignedNote> SignedNote::Parse(std::string_view note) {
  if (absl::Status s = ValidateNoteBytes(note, "signed note"); !s.ok()) return s;
  // The text is everything up to the last blank line, so the text itself may hold blank lines.
  const size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return absl::InvalidArgumentError(
        "signed note has no blank line separating its text from its signature lines");
  }
  SignedNote result;
  result.text = std::string(note.substr(0, split + 1));
  std::string_view sigs = note.substr(split + 2);
  if (sigs.empty()) {
    return absl::InvalidArgumentError("signed note has no signature lines after the blank line");
  }
  if (sigs.back() != '\n') {
    return absl::InvalidArgumentError(
        "signed note does not end in a newline (every signature line ends in '\\n'; was it "
        "truncated?)");
  }
  size_t line_number = 0;
  while (!sigs.empty()) {
    const size_t eol = sigs.find('\n');
    std::string_view line = sigs.substr(0, eol);
    sigs.remove_prefix(eol + 1);
    ++line_number;
    if (line_number > kMaxSignatures) {
      return absl::InvalidArgumentError(
          Cat("signed note has more than ", kMaxSignatures, " signature lines"));
    }
    const std::string where =
        Cat("signed note signature line ", line_number, " ", QuoteForError(line));
    if (line.substr(0, kSignaturePrefix.size()) != kSignaturePrefix) {
      return absl::InvalidArgumentError(
          Cat(where, " does not start with '\xE2\x80\x94 ' (U+2014 EM DASH, then a space)"));
    }
    line.remove_prefix(kSignaturePrefix.size());
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) {
      return absl::InvalidArgumentError(
          Cat(where, " has no space between the key name and the signature"));
    }
    const std::string_view name = line.substr(0, space);
    const std::string_view b64 = line.substr(space + 1);
    if (absl::Status s = ValidateNoteSignerName(name); !s.ok()) {
      return absl::InvalidArgumentError(Cat(where, ": ", s.message()));
    }
    auto bytes = Base64Decode(b64);
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(Cat(where, ": ", bytes.status().message()));
    }
    if (bytes->size() < 5) {
      return absl::InvalidArgumentError(
          Cat(where, " decodes to ", bytes->size(),
              " bytes; a signature line holds a 4-byte key id and at least one signature byte"));
    }
    const std::vector<uint8_t>& b = *bytes;
    NoteSignature sig;
    sig.key_name = std::string(name);
    sig.key_id = uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
    sig.signature.assign(b.begin() + 4, b.end());
    result.signatures.push_back(std::move(sig));
  }
  return result;
}

std::string SignedNote::Serialize() const {
  std::string out = text;
  out.push_back('\n');
  for (const NoteSignature& sig : signatures) {
    std::vector<uint8_t> payload = {
        static_cast<uint8_t>(sig.key_id >> 24), static_cast<uint8_t>(sig.key_id >> 16),
        static_cast<uint8_t>(sig.key_id >> 8), static_cast<uint8_t>(sig.key_id)};
    payload.insert(payload.end(), sig.signature.begin(), sig.signature.end());
    out += Cat(kSignaturePrefix, sig.key_name, " ", Base64Encode(payload), "\n");
  }
  return out;
}

uint32_t NoteKeyId(const PublicKey& key) { return KeyIdOf(key.name(), key.bytes()); }

std::string NoteVerifierKey(const PublicKey& key) {
  std::vector<uint8_t> typed = {kEd25519Type};
  typed.insert(typed.end(), key.bytes().begin(), key.bytes().end());
  return absl::StrFormat("%s+%08x+%s", key.name(), NoteKeyId(key), Base64Encode(typed));
}

absl::StatusOr<PublicKey> ParseNoteVerifierKey(std::string_view vkey) {
  constexpr std::string_view kExpected = "'<name>+<8 hex digit key id>+<base64(0x01 || key)>'";
  // Split on the first two '+' only: the base64 key may itself contain '+'.
  const size_t first = vkey.find('+');
  const size_t second = first == std::string_view::npos ? first : vkey.find('+', first + 1);
  if (second == std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("verifier key ", QuoteForError(vkey), " does not have the form ", kExpected));
  }
  const std::string_view name = vkey.substr(0, first);
  const std::string_view id_hex = vkey.substr(first + 1, second - first - 1);
  const std::string_view b64 = vkey.substr(second + 1);
  if (absl::Status s = ValidateNoteKeyName(name); !s.ok()) {
    return absl::InvalidArgumentError(Cat("verifier key ", QuoteForError(vkey), ": ", s.message()));
  }
  auto id_bytes = HexDecode(id_hex);
  if (id_hex.size() != 8 || !id_bytes.ok()) {
    return absl::InvalidArgumentError(Cat("verifier key ", QuoteForError(vkey), " has key id ",
                                          QuoteForError(id_hex), "; expected 8 hex digits"));
  }
  auto typed = Base64Decode(b64);
  if (!typed.ok()) {
    return absl::InvalidArgumentError(
        Cat("verifier key ", QuoteForError(vkey), ": ", typed.status().message()));
  }
  if (typed->empty() || (*typed)[0] != kEd25519Type) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "verifier key %s has key type 0x%02x; only Ed25519 note keys (type 0x01) are supported "
        "here (0x04 is a witness cosignature key)",
        QuoteForError(vkey), typed->empty() ? 0u : static_cast<unsigned>((*typed)[0])));
  }
  if (typed->size() != 33) {
    return absl::InvalidArgumentError(Cat("verifier key ", QuoteForError(vkey), " holds ",
                                          typed->size() - 1, " key bytes; an Ed25519 key has 32"));
  }
  auto key = PublicKey::FromBytes(name, std::span<const uint8_t>(typed->data() + 1, 32));
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        Cat("verifier key ", QuoteForError(vkey), ": ", key.status().message()));
  }
  const std::vector<uint8_t>& id = *id_bytes;
  const uint32_t given =
      uint32_t{id[0]} << 24 | uint32_t{id[1]} << 16 | uint32_t{id[2]} << 8 | uint32_t{id[3]};
  if (given != NoteKeyId(*key)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "verifier key %s has key id %08x, but its name and key give %08x (the text was altered "
        "or mixes two keys)",
        QuoteForError(vkey), given, NoteKeyId(*key)));
  }
  return key;
}

absl::StatusOr<SignedNote> SignNote(std::string_view text, const SecretKey& key) {
  if (absl::Status s = ValidateNoteText(text); !s.ok()) return s;
  if (absl::Status s = ValidateKeyName(key.name()); !s.ok()) return s;
  SignedNote note;
  note.text = std::string(text);
  note.signatures.push_back(MakeSignature(text, key));
  return note;
}

void AddNoteSignature(SignedNote& note, const SecretKey& key) {
  note.signatures.push_back(MakeSignature(note.text, key));
}

absl::Status VerifyNote(const SignedNote& note, const PublicKey& key) {
  const uint32_t id = NoteKeyId(key);
  bool verified = false;
  for (const NoteSignature& sig : note.signatures) {
    // Lines from other signers are ignored, as the signed-note spec requires: a note may carry
    // signatures from keys this verifier does not know.
    if (sig.key_name != key.name() || sig.key_id != id) continue;
    if (sig.signature.size() != 64 ||
        !key.VerifyBytes(note.text, std::span<const uint8_t, 64>(sig.signature.data(), 64))) {
      return absl::UnauthenticatedError(absl::StrFormat(
          "note signature by key '%s' (id %08x) does not verify (the note text was changed after "
          "signing, or the key is not the one that signed)",
          key.name(), id));
    }
    verified = true;
  }
  if (!verified) {
    return absl::UnauthenticatedError(
        absl::StrFormat("note carries no signature by key '%s' (id %08x)", key.name(), id));
  }
  return absl::OkStatus();
}

}  // namespace attest::consensus
