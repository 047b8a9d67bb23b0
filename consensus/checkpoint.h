// Transparency-log checkpoints (C2SP tlog-checkpoint@v1.0.0) and Ed25519 witness cosignatures
// (C2SP tlog-cosignature@v1.0.1), as signed notes (signed_note.h).
//
// Checkpoint note body (attest writes no extension lines and accepts none):
//   <origin>\n
//   <tree size, ASCII decimal without leading zeros>\n
//   <base64 (standard, padded) of the 32-byte RFC 6962 root hash>\n
//
// A node's log origin is the node key's own name, so the log's signature line carries the origin
// as its key name, as the spec recommends. The node key signs other statements too; a checkpoint
// signature can never be replayed as one of them (or the reverse) because each of those starts
// with a fixed line no origin may take (ValidateLogOrigin):
//   dispute records        "attest/dispute/v1\n..." (every node statement header is "attest/...")
//   Nix fingerprints       "1;/nix/store/...", a single line without '\n'; a checkpoint body has
//                          three '\n'
//   cosigned messages      "cosignature/v1\ntime <t>\n..." (the line after a checkpoint origin is
//                          a decimal size, never "time <t>")
//
// A cosignature (signature type 0x04) is a note signature line whose payload is
//   key id (4) || uint64 big-endian timestamp (8) || Ed25519 signature (64)
// over the message "cosignature/v1\ntime <timestamp>\n" || checkpoint body. Key id =
// SHA-256(name || 0x0A || 0x04 || public key)[:4]; the same key therefore has different ids as a
// note signer (0x01) and as a witness (0x04), and VerifyNote never mistakes one for the other.
//
// Pure functions and value types; thread-safe.
#ifndef ATTEST_CONSENSUS_CHECKPOINT_H_
#define ATTEST_CONSENSUS_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/keys.h"
#include "consensus/merkle.h"
#include "consensus/signed_note.h"

namespace attest::consensus {

// Go tools (golang.org/x/mod/sumdb/tlog, transparency-dev) hold tree sizes and timestamps as int64;
// the cosignature spec caps timestamps here too. Larger values are refused so every tool agrees.
inline constexpr uint64_t kMaxTreeSize = (uint64_t{1} << 63) - 1;
inline constexpr uint64_t kMaxCosignatureTimestamp = (uint64_t{1} << 63) - 1;

// First line of the message a witness signs (tlog-cosignature@v1.0.1).
inline constexpr std::string_view kCosignatureHeader = "cosignature/v1";

struct Checkpoint final {
  std::string origin;
  uint64_t size = 0;
  MerkleHash root{};

  // "<origin>\n<size>\n<base64 root>\n". Precondition: ParseBody accepts the result (origin
  // non-empty, valid UTF-8, no control characters; size <= kMaxTreeSize); SignCheckpoint and Cosign
  // check it.
  std::string Body() const;

  // Strict parser of Body()'s output. INVALID_ARGUMENT, naming the line, when the text does not end
  // in '\n', has fewer than three lines, has extension lines (a fourth line and beyond), an empty
  // origin or one with control characters or invalid UTF-8, a size that is not plain decimal
  // (digits only, no leading zeros) or exceeds kMaxTreeSize, or a root that is not padded standard
  // base64 of exactly 32 bytes. The origin may contain spaces (sum.golang.org's is "go.sum database
  // tree"); ValidateLogOrigin is the stricter rule for origins attest creates.
  static absl::StatusOr<Checkpoint> ParseBody(std::string_view text);

  friend bool operator==(const Checkpoint&, const Checkpoint&) = default;
};

// OK when `origin` may name an attest log (and hence the node key that signs it): it passes
// ValidateNoteKeyName (non-empty, valid UTF-8, no white space, no '+', no control characters) and
// does not start with a prefix reserved for other signed statements: "attest/" (node statement
// headers such as "attest/dispute/v1"), "cosignature/" (witness messages) or "1;" (Nix
// fingerprints). INVALID_ARGUMENT otherwise, with the reason.
absl::Status ValidateLogOrigin(std::string_view origin);

// Signs the checkpoint as a note with the node key. INVALID_ARGUMENT when checkpoint.origin is not
// node_key.name() (the log key name is the origin), the origin fails ValidateLogOrigin, or the
// size exceeds kMaxTreeSize.
absl::StatusOr<SignedNote> SignCheckpoint(const Checkpoint& checkpoint, const SecretKey& node_key);

// Parses a checkpoint note and checks the log's signature. The origin must equal log_key.name().
// INVALID_ARGUMENT when the note or its body is malformed (signed_note.h, ParseBody);
// UNAUTHENTICATED when the note carries no valid signature by log_key, or a signature by it that
// fails, or the signed body names another origin (a checkpoint of another log by the same key).
// Other signature lines (witness cosignatures) are ignored; see VerifyCosignature.
absl::StatusOr<Checkpoint> VerifyCheckpoint(std::string_view note_text, const PublicKey& log_key);
// The same for a parsed note and an explicit origin, for logs whose key name differs from their
// origin (sum.golang.org signs origin "go.sum database tree" with key "sum.golang.org").
absl::StatusOr<Checkpoint> VerifyCheckpoint(const SignedNote& note, const PublicKey& log_key,
                                            std::string_view origin);

// SHA-256(name || 0x0A || 0x04 || public key)[:4], big-endian.
uint32_t CosignatureKeyId(const PublicKey& witness_key);
// "<name>+<hex8 cosignature key id>+<base64(0x04 || public key)>", how witnesses publish keys.
std::string CosignatureVerifierKey(const PublicKey& witness_key);
// Inverse of CosignatureVerifierKey, also for keys written by other witness implementations.
// INVALID_ARGUMENT when the text is malformed, the type byte is not 0x04 (a note signer key, type
// 0x01, gets its own message), the name is not usable (ValidateNoteKeyName and Nix's key name
// rules), or the key id does not match the name and key.
absl::StatusOr<PublicKey> ParseCosignatureVerifierKey(std::string_view vkey);

// "cosignature/v1\ntime <timestamp>\n" + checkpoint.Body(): the exact bytes a witness signs.
std::string CosignedMessage(const Checkpoint& checkpoint, uint64_t timestamp);

// The witness's cosignature line for `checkpoint` at `timestamp` (unix seconds; the caller reads
// the clock): key_name = witness_key.name(), key_id = CosignatureKeyId, signature = 8-byte
// big-endian timestamp || Ed25519 signature (72 bytes). Append it to the checkpoint's
// SignedNote::signatures. INVALID_ARGUMENT when the witness name fails ValidateNoteKeyName, the
// timestamp exceeds kMaxCosignatureTimestamp, or the checkpoint has no valid body (see ParseBody).
absl::StatusOr<NoteSignature> Cosign(const Checkpoint& checkpoint, uint64_t timestamp,
                                     const SecretKey& witness_key);

// The timestamp of the cosignature by `witness_key` on `note` (over note.text exactly; check the
// log's signature and the body with VerifyCheckpoint). Lines are matched by name and cosignature
// key id; when several match, all must verify and the latest timestamp is returned.
// UNAUTHENTICATED when no line matches, or a matching line has the wrong length, a timestamp above
// kMaxCosignatureTimestamp or a signature that does not verify.
absl::StatusOr<uint64_t> VerifyCosignature(const SignedNote& note, const PublicKey& witness_key);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_CHECKPOINT_H_
