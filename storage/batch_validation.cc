#include "storage/batch_validation.h"

#include "consensus/encoding.h"
#include "consensus/attestation.h"
#include "consensus/log_entry.h"

namespace attest::storage {

absl::Status ValidateStoredAttestation(const StoredAttestation& stored, size_t index, size_t count) {
  const std::string prefix = consensus::Cat("attestation ", index + 1, " of ", count, ": ");
  if (absl::Status status = consensus::ValidateBuildMetadata(stored.attestation.metadata);
      !status.ok()) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, status.message()));
  }
  if (stored.received_unix < 0) {
    return absl::InvalidArgumentError(
        consensus::Cat(prefix, "received time ", stored.received_unix, " is negative"));
  }
  if (stored.observed_key.has_value() &&
      stored.observed_key->name() != stored.attestation.key_name()) {
    return absl::InvalidArgumentError(consensus::Cat(
        prefix, "observed key is named ", stored.observed_key->name(), " but the signature is by ",
        stored.attestation.key_name(), " (store the key that made the signature)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateStoredDispute(const StoredDispute& dispute, size_t index, size_t count) {
  const std::string prefix = consensus::Cat("dispute ", index + 1, " of ", count, ": ");
  if (dispute.id.empty()) return absl::InvalidArgumentError(consensus::Cat(prefix, "empty id"));
  if (dispute.signed_record.empty()) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "empty signed record"));
  }
  if (dispute.opened_unix < 0 || dispute.updated_unix < 0) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "negative time"));
  }
  if (dispute.updated_unix < dispute.opened_unix) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "updated time ", dispute.updated_unix,
                                                   " precedes opened time ", dispute.opened_unix));
  }
  if (dispute.fingerprint_count < 0) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "negative fingerprint count"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> LogEntriesOf(const WriteBatch& batch) {
  std::vector<std::string> entries;
  if (!batch.append_to_log) return entries;
  entries.reserve(batch.attestations.size() + batch.disputes.size());
  for (size_t i = 0; i < batch.attestations.size(); ++i) {
    const StoredAttestation& stored = batch.attestations[i];
    auto entry = consensus::EncodeAttestationEntry(consensus::AttestationEntry{
        .attestation = stored.attestation,
        .observed_key = stored.observed_key,
        .received_unix = stored.received_unix});
    if (!entry.ok()) {
      return absl::InvalidArgumentError(consensus::Cat("attestation ", i + 1, " of ",
                                                       batch.attestations.size(), ": ",
                                                       entry.status().message()));
    }
    entries.push_back(std::move(*entry));
  }
  for (size_t i = 0; i < batch.disputes.size(); ++i) {
    auto entry = consensus::EncodeDisputeEntry(batch.disputes[i].signed_record);
    if (!entry.ok()) {
      return absl::InvalidArgumentError(consensus::Cat(
          "dispute ", i + 1, " of ", batch.disputes.size(), ": ", entry.status().message()));
    }
    entries.push_back(std::move(*entry));
  }
  return entries;
}

absl::Status CheckLogRange(uint64_t first, uint64_t count, uint64_t size) {
  if (first > size || count > size - first) {
    return absl::OutOfRangeError(consensus::Cat("log entries ", first, " to ", first + count,
                                                " are past the end of the log (", size,
                                                " entries)"));
  }
  return absl::OkStatus();
}

absl::Status CheckNewCheckpoint(const StoredCheckpoint& checkpoint, uint64_t log_size,
                                const StoredCheckpoint* existing) {
  if (checkpoint.size > log_size) {
    return absl::InvalidArgumentError(consensus::Cat("a checkpoint of size ", checkpoint.size,
                                                     " for a log of ", log_size, " entries"));
  }
  if (checkpoint.note.empty()) return absl::InvalidArgumentError("a checkpoint without its note");
  if (existing != nullptr && existing->root != checkpoint.root) {
    return absl::AlreadyExistsError(consensus::Cat(
        "a checkpoint of size ", checkpoint.size,
        " with another root is already stored: the log never signs two roots for one size"));
  }
  return absl::OkStatus();
}

}  // namespace attest::storage
