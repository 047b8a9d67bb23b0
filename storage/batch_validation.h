// Checks every AttestationStore implementation applies to a WriteBatch before storing it, so that all
// implementations accept and refuse exactly the same batches (the contract suite checks this).
//
// The store does not verify signatures or policy (the ingest pipeline does that before writing); it
// refuses only what it could not store faithfully. Pure functions; thread-safe.
#ifndef ATTEST_STORAGE_BATCH_VALIDATION_H_
#define ATTEST_STORAGE_BATCH_VALIDATION_H_

#include <cstddef>

#include "absl/status/status.h"
#include "storage/attestation_store.h"

namespace attest::storage {

// INVALID_ARGUMENT, prefixed "attestation <index+1> of <count>: ", when the metadata is malformed
// (consensus::ValidateBuildMetadata), the received time is negative, or the observed key's name is not
// the signature's key name.
absl::Status ValidateStoredAttestation(const StoredAttestation& stored, size_t index, size_t count);

// INVALID_ARGUMENT, prefixed "dispute <index+1> of <count>: ", when the id or the signed record is
// empty, a time is negative, updated_unix precedes opened_unix, or fingerprint_count is negative.
absl::Status ValidateStoredDispute(const StoredDispute& dispute, size_t index, size_t count);

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_BATCH_VALIDATION_H_
