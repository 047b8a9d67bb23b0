// The entries of a node's transparency log: the exact bytes that are hashed into the RFC 6962
// Merkle tree (merkle.h) and served in C2SP tlog-tiles entry bundles (tlog_tiles.h). Every node
// must produce byte-identical entries for the same facts, so the format is text with one field per
// line, in a fixed order, every line (the last one included) ending in '\n', and the parser
// accepts exactly what the encoder writes: Encode(Parse(x)) == x for every accepted x.
//
// Attestation entry (an attestation the node accepted; not signed by the node, the builder's
// signature is the evidence):
//   attest/log/attestation/v1
//   fingerprint <Nix fingerprint: 1;/nix/store/...;sha256:<nix32>;<NAR size>;<refs, ','-joined>>
//   signature <key name>:<base64 of 64 bytes>      (Nix's signature text form)
//   observed-key <key name>:<base64 of 32 bytes>   (optional: the key was not in the policy; its
//                                                   name is the signature's)
//   deriver <full .drv store path>                 (optional)
//   output <output name>                           (optional)
//   system <system>                                (optional)
//   kind <build|rebuild|check|imported>            (optional; omitted when unspecified)
//   built <unix seconds>                           (optional; omitted when 0)
//   received <unix seconds>                        (required; when the node received it)
//
// Decimals are digits only, without sign or leading zeros. Optional lines are left out, never
// written with an empty value.
//
// Dispute entry (a dispute record the node made, dispute.h):
//   attest/log/dispute/v1
//   <the dispute record's signed note, verbatim as SignedNote::Serialize writes it; it starts with
//    "attest/dispute/v1\n">
//
// Resolution entry (a maintainer's resolution statement the node accepted, resolution.h):
//   attest/log/resolution/v1
//   <the statement's signed note, verbatim as SignedNote::Serialize writes it; it starts with
//    "attest/resolution/v1\n">
//
// An entry is at most kMaxLogEntryBytes (the tlog-tiles entry bundle limit), header included.
//
// Pure functions and value types; thread-safe.
#ifndef ATTEST_CONSENSUS_LOG_ENTRY_H_
#define ATTEST_CONSENSUS_LOG_ENTRY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"

namespace attest::consensus {

// C2SP tlog-tiles entry bundles prefix each entry with a 16-bit length.
inline constexpr size_t kMaxLogEntryBytes = 65535;

// First lines of the entry kinds.
inline constexpr std::string_view kAttestationEntryHeader = "attest/log/attestation/v1";
inline constexpr std::string_view kDisputeEntryHeader = "attest/log/dispute/v1";
inline constexpr std::string_view kResolutionEntryHeader = "attest/log/resolution/v1";

// Values are stable (stored and compared across nodes).
enum class LogEntryKind { kAttestation = 1, kDispute = 2, kResolution = 3 };

struct AttestationEntry final {
  Attestation attestation;
  // The key that made the signature, when it is not in the policy (so the entry can be checked
  // without it). Its name equals attestation.signature.key_name.
  std::optional<PublicKey> observed_key;
  int64_t received_unix = 0;  // seconds; when the node received the attestation

  friend bool operator==(const AttestationEntry&, const AttestationEntry&) = default;
};

// The attestation entry's bytes. INVALID_ARGUMENT when:
//   - the entry would exceed kMaxLogEntryBytes (the message gives the length; a path with that many
//     references cannot be logged),
//   - the observed key's name differs from the signature's, or the signature's key name is invalid,
//   - the metadata fails ValidateBuildMetadata (which refuses newlines and other white space),
//   - received_unix is negative,
//   - the claim is not one PathInfo::Create would make (its fingerprint does not parse back).
absl::StatusOr<std::string> EncodeAttestationEntry(const AttestationEntry& entry);

// The dispute entry's bytes for a dispute record's signed note (SignedNote::Serialize of
// SignDisputeRecord's result). INVALID_ARGUMENT when the entry would exceed kMaxLogEntryBytes, when
// the note is not a well-formed signed note in canonical form, or when its text is not a dispute
// record (DisputeRecord::FromNoteText). The signature is not verified here (no key is known).
absl::StatusOr<std::string> EncodeDisputeEntry(std::string_view signed_dispute_note);

// The resolution entry's bytes for a statement's signed note (canonical serialisation). As
// EncodeDisputeEntry, with Resolution::FromNoteText for the text. Signatures are not verified here.
absl::StatusOr<std::string> EncodeResolutionEntry(std::string_view signed_resolution_note);

// The entry bytes for a signed note the node keeps in its log: a dispute record or a resolution
// statement, told apart by the note's first line. INVALID_ARGUMENT as the two encoders.
absl::StatusOr<std::string> EncodeNoteEntry(std::string_view signed_note);

struct LogEntry final {
  LogEntryKind kind = LogEntryKind::kAttestation;
  std::optional<AttestationEntry> attestation;  // set exactly when kind == kAttestation
  std::string note;  // the signed note when kind is kDispute or kResolution, else empty

  friend bool operator==(const LogEntry&, const LogEntry&) = default;
};

// Strict inverse of the encoders. INVALID_ARGUMENT naming the line and the problem for: an entry
// over kMaxLogEntryBytes, an unknown first line, an unknown, duplicate or out-of-order field, a
// missing required field, an empty value, anything after the last field, a line without its
// final '\n', a non-canonical decimal, a fingerprint that PathInfo::ParseFingerprint refuses, a
// signature or key that does not parse (bad base64, wrong length) or is not in canonical form, an
// observed key named differently from the signature, invalid metadata, and for dispute entries a
// note EncodeDisputeEntry would refuse.
absl::StatusOr<LogEntry> ParseLogEntry(std::string_view bytes);

// Encodes whichever kind `entry` holds; INVALID_ARGUMENT as the encoders above, or when `entry`'s
// fields do not match its kind.
absl::StatusOr<std::string> EncodeLogEntry(const LogEntry& entry);

// OK when the entry's signature verifies over its claim's fingerprint with `key`
// (VerifyAttestation).
// UNAUTHENTICATED otherwise, naming the key. Which key to trust (the policy's, or the observed one)
// is the caller's decision.
absl::Status VerifyAttestationEntry(const AttestationEntry& entry, const PublicKey& key);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_LOG_ENTRY_H_
