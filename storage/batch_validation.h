// Checks every AttestationStore implementation applies to a WriteBatch before storing it, so that all
// implementations accept and refuse exactly the same batches (the contract suite checks this).
//
// The store does not verify signatures or policy (the ingest pipeline does that before writing); it
// refuses only what it could not store faithfully. Pure functions; thread-safe.
#ifndef ATTEST_STORAGE_BATCH_VALIDATION_H_
#define ATTEST_STORAGE_BATCH_VALIDATION_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "storage/attestation_store.h"

namespace attest::storage {

// INVALID_ARGUMENT, prefixed "attestation <index+1> of <count>: ", when the metadata is malformed
// (consensus::ValidateBuildMetadata), the received time is negative, or the observed key's name is not
// the signature's key name.
absl::Status ValidateStoredAttestation(const StoredAttestation& stored, size_t index, size_t count);

// INVALID_ARGUMENT, prefixed "realisation <index+1> of <count>: ", when the metadata does not fit the
// claim (consensus::ValidateRealisationMetadata: malformed, or a deriver / output name other than the
// key's), the received time is negative, or the observed key's name is not the signature's key name.
absl::Status ValidateStoredRealisation(const StoredRealisation& stored, size_t index, size_t count);

// INVALID_ARGUMENT, prefixed "dispute <index+1> of <count>: ", when the id or the signed record is
// empty, a time is negative, updated_unix precedes opened_unix, or fingerprint_count is negative.
absl::Status ValidateStoredDispute(const StoredDispute& dispute, size_t index, size_t count);

// INVALID_ARGUMENT, prefixed "resolution <index+1> of <count>: ", when the dispute id, signed note or
// maintainer is empty or a time is negative.
absl::Status ValidateStoredResolution(const StoredResolution& resolution, size_t index, size_t count);

// INVALID_ARGUMENT, prefixed "derivation <index+1> of <count>: ", when the path is not a derivation
// (name ending in .drv), the contents are empty, the input derivations are not sorted, unique .drv
// paths, the outputs are not sorted by unique, non-empty names, or the received time is negative.
// (A DerivationStore applies it to every item of a PutDerivations call before storing any.)
absl::Status ValidateStoredDerivation(const StoredDerivation& derivation, size_t index, size_t count);

// INVALID_ARGUMENT unless `hash_part` is a store path's hash part: 32 characters of the nix32
// alphabet (DerivationStore::OutputPathByHashPart).
absl::Status ValidateHashPart(std::string_view hash_part);

// The policy entry (consensus::EncodePolicyEntry) of a link; every link must have one, whatever its
// origin, so that links learnt from peers are held to the rules of the ones submitted here.
// INVALID_ARGUMENT, naming the link, for an empty or malformed hash, parent or TOML, a version below 2,
// a negative time, no or too many approvals, an approval key twice, or an entry over kMaxLogEntryBytes.
absl::StatusOr<std::string> PolicyLinkEntry(const StoredPolicyLink& link);
// Whether `link` may be appended to a chain whose last link is `last` (nullptr: the chain is empty),
// `parent` being the stored link whose hash is link.parent (nullptr: the chain holds no such link).
// A link whose parent the chain does not hold starts a new segment (any version is fine); one whose
// parent it holds must extend the last link: FAILED_PRECONDITION naming both when the parent is an
// older link (a fork of old history) or the version is not last's + 1. (ALREADY_EXISTS for a held
// hash is the caller's check: it looks at the whole chain.)
absl::Status CheckPolicyLinkExtends(const StoredPolicyLink& link, const StoredPolicyLink* last,
                                    const StoredPolicyLink* parent);

// Whether a dispute passes the query's filters (state, name, operator); paging is not considered.
bool MatchesDisputeFilters(const StoredDispute& dispute, const DisputeQuery& query);

// Statements in the order ResolutionsFor returns them: by time, then signed note.
bool ResolutionLess(const StoredResolution& a, const StoredResolution& b);

// The log entries (consensus/log_entry.h) of a batch, whether or not they end up inserted.
struct BatchLogEntries final {
  bool logged = false;                        // false: nothing of the batch is logged
  std::vector<std::string> attestations;      // one per attestation; empty strings unless LogAppend::kAll
  std::vector<std::string> realisations;      // one per realisation with LogAppend::kAll, else none
  std::vector<std::vector<std::string>> disputes;  // per dispute: its entry, or its part entries in order
  std::vector<std::string> resolutions;       // one per resolution with LogAppend::kAll, else none
};
// INVALID_ARGUMENT, prefixed as above, when one cannot be logged (an attestation or realisation entry
// over 65535 bytes, a dispute record that is not a signed dispute note). A dispute record too large for one entry
// is logged in parts (consensus::EncodeDisputeEntries), never refused for its size.
absl::StatusOr<BatchLogEntries> LogEntriesOf(const WriteBatch& batch);

// INVALID_ARGUMENT when a peer's progress is inconsistent in itself (no peer name, a frontier that is
// not the compact range of `cursor` entries, a cursor past the checkpoint's size).
absl::Status ValidatePeerProgress(const PeerProgress& progress);
// FAILED_PRECONDITION when `progress` would move the stored cursor (if any) backwards.
absl::Status CheckCursorAdvance(const PeerProgress& progress, std::optional<uint64_t> stored_cursor);
// INVALID_ARGUMENT when the batch carries peer entries without peer progress, or not exactly as
// many as its cursor advances from `stored_cursor` (0 before the first write for the peer). No
// entries at all is allowed (nothing kept).
absl::Status CheckPeerEntries(const WriteBatch& batch, std::optional<uint64_t> stored_cursor);

// INVALID_ARGUMENT when a peer name or either checkpoint is missing.
absl::Status ValidateForkEvidence(const ForkEvidence& evidence);

// Orders rejected entries newest first (detection time, then index, both descending).
void SortNewestFirst(std::vector<RejectedEntry>& entries);

// OUT_OF_RANGE unless [first, first + count) lies within a log of `size` entries.
absl::Status CheckLogRange(uint64_t first, uint64_t count, uint64_t size);

// Whether `checkpoint` may be stored in a log of `log_size` entries where `existing` (or null) is
// the checkpoint already stored for its size: OK (also when `existing` has the same root: nothing
// to store), ALREADY_EXISTS when `existing` has another root (a log never has two roots for one
// size), INVALID_ARGUMENT when the size exceeds the log's or the note is empty.
absl::Status CheckNewCheckpoint(const StoredCheckpoint& checkpoint, uint64_t log_size,
                                const StoredCheckpoint* existing);

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_BATCH_VALIDATION_H_
