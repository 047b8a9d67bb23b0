// C2SP signed notes (signed-note@v1.0.0), signed with Nix-format Ed25519 keys.
//
//   <text: one or more lines, each ending in \n>
//   \n
//   — <key name> <base64(uint32 big-endian key id || 64-byte signature)>\n    (one line per signature)
//
// The key name is the Nix key's own name (ValidateKeyName; see ValidateNoteKeyName for where C2SP's
// stricter rule applies); key id = SHA-256(name || 0x0A || 0x01 || public key)[:4].
// Thread-safe.
#ifndef ATTEST_CONSENSUS_SIGNED_NOTE_H_
#define ATTEST_CONSENSUS_SIGNED_NOTE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/keys.h"

namespace attest::consensus {

struct NoteSignature final {
  std::string key_name;
  uint32_t key_id = 0;
  std::vector<uint8_t> signature;  // 64 bytes for Ed25519
};

struct SignedNote final {
  std::string text;  // ends in '\n'
  std::vector<NoteSignature> signatures;

  // INVALID_ARGUMENT on anything that is not a well-formed note (missing blank line, text not ending
  // in newline, control characters, bad signature line, more than 100 signatures).
  static absl::StatusOr<SignedNote> Parse(std::string_view note);
  std::string Serialize() const;
};

// Who may sign, and how signers are named:
//   - ValidateKeyName, the one rule for key names, holds for every key that signs here (keys are Nix
//     keys). A maintainer whose Nix key name holds '+' signs resolution statements: a signature line
//     is "— <name> <base64>", so '+' is unambiguous there.
//   - ValidateNoteSignerName is what a signature line may carry: a non-empty word of displayed text
//     (ValidateDisplayText with TextShape::kWord), which holds for our keys' names and for the names
//     of other C2SP signers (public witnesses are named like "transparency.dev/DEV:witness-1").
//   - ValidateNoteKeyName is C2SP's own rule: a signer name without '+'. C2SP forbids '+' because
//     verifier keys ("<name>+<id>+<key>") could not be split, and golang.org/x/mod/sumdb/note refuses
//     a note with such a signer. So a key whose notes standard clients verify (the node's key:
//     checkpoints, cosignatures, and the verifier keys naming it) and every log origin must pass it.
// Each is INVALID_ARGUMENT naming the problem otherwise.
absl::Status ValidateNoteSignerName(std::string_view name);
absl::Status ValidateNoteKeyName(std::string_view name);

uint32_t NoteKeyId(const PublicKey& key);
// "<name>+<hex8 key id>+<base64(0x01 || public key)>", the verifier key text other tools read.
// Precondition: ValidateNoteKeyName(key.name()) is OK (a '+' in the name makes the text ambiguous).
std::string NoteVerifierKey(const PublicKey& key);
// Parses a verifier key as written by NoteVerifierKey or by golang.org/x/mod/sumdb/note. Only
// Ed25519 keys (type byte 0x01) are supported. INVALID_ARGUMENT when the text is malformed, the type
// is not 0x01, the name fails ValidateNoteKeyName, or the key id does not match the name and key.
absl::StatusOr<PublicKey> ParseNoteVerifierKey(std::string_view vkey);

// Signs `text` and returns the note with one signature. The text must be non-empty, end in '\n',
// be valid UTF-8 and contain no control characters other than '\n'; key.name() must pass
// ValidateKeyName (statements that standard clients verify check ValidateNoteKeyName first, as
// SignCheckpoint does). INVALID_ARGUMENT otherwise.
absl::StatusOr<SignedNote> SignNote(std::string_view text, const SecretKey& key);
// Adds a signature by `key` to an existing note. Precondition: ValidateKeyName(key.name()) is OK
// (every parsed key passes it). Otherwise the note gains a line that Parse rejects.
void AddNoteSignature(SignedNote& note, const SecretKey& key);
// OK when the note carries a valid signature by `key` (matching name and key id). UNAUTHENTICATED when
// it carries none, or a signature line with that name and id fails to verify.
absl::Status VerifyNote(const SignedNote& note, const PublicKey& key);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_SIGNED_NOTE_H_
