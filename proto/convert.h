// Conversion between attest.v1 wire messages and consensus domain types.
//
// Parsing functions validate fully (store paths, hashes, sizes, signatures) and return
// INVALID_ARGUMENT with a message naming the field. Thread-safe.
#ifndef ATTEST_PROTO_CONVERT_H_
#define ATTEST_PROTO_CONVERT_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/path_info.h"
#include "consensus/realisation.h"
#include "consensus/tally.h"
#include "proto/attest/v1/attest.pb.h"

namespace attest::proto {

absl::StatusOr<consensus::PathInfo> FromProto(const v1::PathInfo& message);
v1::PathInfo ToProto(const consensus::PathInfo& path_info);

absl::StatusOr<consensus::BuildMetadata> FromProto(const v1::BuildMetadata& message);
// By value: a caller done with `metadata` moves it in and its strings are not copied.
v1::BuildMetadata ToProto(consensus::BuildMetadata metadata);

// Parses claim, signature and metadata (public_key and received_unix are left to the caller).
absl::StatusOr<consensus::Attestation> FromProto(const v1::Attestation& message);

// The wire field of v1::Attestation a conversion failure is about (the field its message names).
enum class AttestationField { kPathInfo, kStorePath, kNarHash, kNarSize, kReferences, kSignature, kMetadata };
inline constexpr AttestationField kAttestationFields[] = {
    AttestationField::kPathInfo,   AttestationField::kStorePath, AttestationField::kNarHash,
    AttestationField::kNarSize,    AttestationField::kReferences, AttestationField::kSignature,
    AttestationField::kMetadata};
// "path_info", "store_path", "nar_hash", "nar_size", "references", "signature", "metadata".
std::string_view AttestationFieldName(AttestationField field);
// FromProto, and on failure `*field_at_fault` is the field at fault.
absl::StatusOr<consensus::Attestation> FromProto(const v1::Attestation& message, AttestationField* field_at_fault);
v1::Attestation ToProto(const consensus::Attestation& attestation);

// Parses fingerprint (strictly: consensus::Realisation::ParseFingerprint, only the exact bytes Nix
// signs), signature and metadata (consensus::ValidateRealisationMetadata: deriver and output name
// consistent with the key). public_key and received_unix are left to the caller. INVALID_ARGUMENT
// "fingerprint: ...", "signature: ..." or "metadata: ..." naming the problem.
absl::StatusOr<consensus::RealisationAttestation> FromProto(const v1::RealisationAttestation& message);
v1::RealisationAttestation ToProto(const consensus::RealisationAttestation& attestation);

v1::Verdict ToProto(consensus::Verdict verdict);
absl::StatusOr<consensus::Verdict> FromProto(v1::Verdict verdict);

v1::BuildKind ToProto(consensus::BuildKind kind);
consensus::BuildKind FromProto(v1::BuildKind kind);

}  // namespace attest::proto

#endif  // ATTEST_PROTO_CONVERT_H_
