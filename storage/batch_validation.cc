#include "storage/batch_validation.h"

#include "consensus/encoding.h"
#include "consensus/attestation.h"

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

}  // namespace attest::storage
