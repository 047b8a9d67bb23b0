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
// Dispute part entry (a dispute record whose dispute entry would exceed kMaxLogEntryBytes: the
// record's signed note is cut into consecutive slices, logged as consecutive entries, so no record is
// ever too large to log):
//   attest/log/dispute-part/v1
//   record <SHA-256 of the whole signed note, 64 lowercase hex digits>
//   part <i>/<n>                                   (1 <= i <= n, 2 <= n <= kMaxDisputeParts)
//   <slice i of the signed note: its bytes from (i-1)*kDisputePartBytes, kDisputePartBytes of them
//    for every part but the last, which holds the 1 to kDisputePartBytes bytes left; raw bytes, not
//    a line>
// AssembleDisputeParts joins the n parts back into the note and checks the record hash.
//
// Policy entry (a successor policy the node adopted on its maintainers' approval,
// consensus/policy_update.h; storage/policy_store.h appends it):
//   attest/log/policy/v1
//   policy sha256:<64 lowercase hex>               (the policy's hash, over its canonical text)
//   parent sha256:<64 lowercase hex>               (the hash of the policy it replaced)
//   version <n>                                    (n >= 2)
//   approval <key name>:<base64 of 64 bytes>       (one line per approval, at least one, at most
//                                                   kMaxPolicyApprovals, key names distinct, in the
//                                                   order they were submitted)
//   received <unix seconds>                        (when the federation received the update)
//   toml <byte length>                             (1 to kMaxPolicyTomlBytes)
//   <exactly that many raw bytes: the policy's TOML text as submitted; the end of the entry, and
//    not a line (it need not end in '\n')>
// The entry records what was adopted; the parser does not parse the TOML or check that it hashes to
// the policy line (VerifyPolicyLink does that before a node adopts it).
//
// Realisation entry (a realisation attestation the node accepted, consensus/realisation.h; the
// builder's signature is the evidence, as for attestation entries):
//   attest/log/realisation/v1
//   realisation <the realisation fingerprint, verbatim: one line of canonical JSON, either format>
//   signature <key name>:<base64 of 64 bytes>
//   observed-key <key name>:<base64 of 32 bytes>   (optional, as above)
//   deriver, output, system, kind, built            (optional, as above)
//   received <unix seconds>                        (required)
//
// An entry is at most kMaxLogEntryBytes (the tlog-tiles entry bundle limit), header included.
//
// Pure functions and value types; thread-safe.
#ifndef ATTEST_CONSENSUS_LOG_ENTRY_H_
#define ATTEST_CONSENSUS_LOG_ENTRY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/realisation.h"

namespace attest::consensus {

// C2SP tlog-tiles entry bundles prefix each entry with a 16-bit length.
inline constexpr size_t kMaxLogEntryBytes = 65535;

// First lines of the entry kinds.
inline constexpr std::string_view kAttestationEntryHeader = "attest/log/attestation/v1";
inline constexpr std::string_view kDisputeEntryHeader = "attest/log/dispute/v1";
inline constexpr std::string_view kResolutionEntryHeader = "attest/log/resolution/v1";
inline constexpr std::string_view kDisputePartEntryHeader = "attest/log/dispute-part/v1";
inline constexpr std::string_view kPolicyEntryHeader = "attest/log/policy/v1";
inline constexpr std::string_view kRealisationEntryHeader = "attest/log/realisation/v1";

// The slice of a dispute record's note one part entry carries (the part's other lines take at most
// 121 bytes, so a part always fits in kMaxLogEntryBytes).
inline constexpr size_t kDisputePartBytes = 60000;
// At most this many parts (a record of about 245 MB); a record a node could make is far smaller: its
// sides are bounded by the policy's builder keys, each fingerprint by an attestation entry's size.
inline constexpr size_t kMaxDisputeParts = 4096;

// Values are stable (stored and compared across nodes).
enum class LogEntryKind { kAttestation = 1, kDispute = 2, kResolution = 3, kDisputePart = 4, kPolicy = 5,
                          kRealisation = 6 };

// One slice of a dispute record too large for one entry.
struct DisputePart final {
  std::string record_sha256;  // of the whole signed note, 64 lowercase hex digits
  size_t index = 0;           // 1-based
  size_t count = 0;           // parts of the record, at least 2
  std::string bytes;          // this part's slice of the note

  friend bool operator==(const DisputePart&, const DisputePart&) = default;
};

// A successor policy the node adopted (see the format above).
struct PolicyEntry final {
  std::string policy_hash;  // "sha256:<64 lowercase hex>"
  std::string parent;       // "sha256:<64 lowercase hex>"
  int64_t version = 0;      // >= 2
  std::vector<Signature> approvals;  // as submitted, in that order
  int64_t received_unix = 0;         // >= 0
  std::string toml;                  // as submitted

  friend bool operator==(const PolicyEntry&, const PolicyEntry&) = default;
};

struct AttestationEntry final {
  Attestation attestation;
  // The key that made the signature, when it is not in the policy (so the entry can be checked
  // without it). Its name equals attestation.signature.key_name.
  std::optional<PublicKey> observed_key;
  int64_t received_unix = 0;  // seconds; when the node received the attestation

  friend bool operator==(const AttestationEntry&, const AttestationEntry&) = default;
};

struct RealisationEntry final {
  RealisationAttestation attestation;
  std::optional<PublicKey> observed_key;  // as AttestationEntry
  int64_t received_unix = 0;

  friend bool operator==(const RealisationEntry&, const RealisationEntry&) = default;
};

// The realisation entry's bytes. INVALID_ARGUMENT as EncodeAttestationEntry (size, key names,
// metadata via ValidateRealisationMetadata, negative time, a claim whose fingerprint does not parse
// back).
absl::StatusOr<std::string> EncodeRealisationEntry(const RealisationEntry& entry);
// As CheckAttestationLoggable, for a realisation attestation.
absl::Status CheckRealisationLoggable(const RealisationAttestation& attestation,
                                      const std::optional<PublicKey>& observed_key);

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

// OK when the attestation entry of `attestation` (with `observed_key` when set) fits in
// kMaxLogEntryBytes whatever time it is received: the one check that validation and the log share,
// so an attestation a node accepts can always be logged. INVALID_ARGUMENT as EncodeAttestationEntry
// otherwise (for size: the entry's length and the path's number of references).
absl::Status CheckAttestationLoggable(const Attestation& attestation, const std::optional<PublicKey>& observed_key);

// The log entries of a dispute record's signed note: the one dispute entry (EncodeDisputeEntry) when
// it fits in kMaxLogEntryBytes, else its kDisputePart entries in order (see the format above).
// INVALID_ARGUMENT when the note is not a canonical signed dispute note, or would need more than
// kMaxDisputeParts parts.
absl::StatusOr<std::vector<std::string>> EncodeDisputeEntries(std::string_view signed_dispute_note);

// The signed dispute note that `parts` (all parts of one record, in order) carry. INVALID_ARGUMENT
// when a part is missing, repeated or out of order, the parts name different records or counts, the
// joined bytes do not hash to the record hash, or they are not a canonical signed dispute note.
absl::StatusOr<std::string> AssembleDisputeParts(std::span<const DisputePart> parts);

// The resolution entry's bytes for a statement's signed note (canonical serialisation). As
// EncodeDisputeEntry, with Resolution::FromNoteText for the text. Signatures are not verified here.
absl::StatusOr<std::string> EncodeResolutionEntry(std::string_view signed_resolution_note);

// The policy entry's bytes. INVALID_ARGUMENT naming the problem when a hash is not
// "sha256:<64 lowercase hex>", the version is below 2, there is no approval or more than
// kMaxPolicyApprovals, an approval's key name is invalid or repeated, the time is negative, the TOML
// is empty or over kMaxPolicyTomlBytes, or the entry would exceed kMaxLogEntryBytes.
absl::StatusOr<std::string> EncodePolicyEntry(const PolicyEntry& entry);

// The entry bytes for what a node keeps of a note entry in its log: a dispute record or a resolution
// statement (told apart by the note's first line), or a dispute part entry or a policy entry itself
// (returned as it is once ParseLogEntry accepts it). INVALID_ARGUMENT as the encoders.
absl::StatusOr<std::string> EncodeNoteEntry(std::string_view signed_note);

struct LogEntry final {
  LogEntryKind kind = LogEntryKind::kAttestation;
  std::optional<AttestationEntry> attestation;  // set exactly when kind == kAttestation
  std::string note;  // the signed note when kind is kDispute or kResolution, else empty
  std::optional<DisputePart> part;  // set exactly when kind == kDisputePart
  std::optional<PolicyEntry> policy;  // set exactly when kind == kPolicy
  std::optional<RealisationEntry> realisation;  // set exactly when kind == kRealisation

  friend bool operator==(const LogEntry&, const LogEntry&) = default;
};

// Strict inverse of the encoders. INVALID_ARGUMENT naming the line and the problem for: an entry
// over kMaxLogEntryBytes, an unknown first line, an unknown, duplicate or out-of-order field, a
// missing required field, an empty value, anything after the last field, a line without its
// final '\n', a non-canonical decimal, a fingerprint that PathInfo::ParseFingerprint refuses, a
// signature or key that does not parse (bad base64, wrong length) or is not in canonical form, an
// observed key named differently from the signature, invalid metadata, and for dispute entries a
// note EncodeDisputeEntry would refuse, and for dispute part entries a malformed record hash or part
// line, or a slice of the wrong length (empty, over kDisputePartBytes, or short before the last part).
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
