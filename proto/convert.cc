#include "proto/convert.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "consensus/keys.h"
#include "consensus/nar_hash.h"
#include "consensus/store_path.h"
#include "consensus/text.h"

namespace attest::proto {
namespace {

using consensus::Cat;
using consensus::StdView;

// Prefixes a conversion error with the field it came from, so a rejection reads
// "nar_hash: NAR hash 'x' is not valid nix32: ...".
absl::Status FieldError(std::string_view field, const absl::Status& status) {
  return absl::InvalidArgumentError(Cat(field, ": ", StdView(status.message())));
}

// FromProto of a PathInfo; `field` is set to the field at fault on failure.
absl::StatusOr<consensus::PathInfo> PathInfoFromProto(const v1::PathInfo& message, AttestationField& field) {
  field = AttestationField::kStorePath;
  auto path = consensus::StorePath::Parse(message.store_path());
  if (!path.ok()) return FieldError("store_path", path.status());
  field = AttestationField::kNarHash;
  auto nar_hash = consensus::NarHash::Parse(message.nar_hash());
  if (!nar_hash.ok()) return FieldError("nar_hash", nar_hash.status());
  // Checked here as well as in PathInfo::Create so the message names the wire field.
  if (message.nar_size() == 0 || message.nar_size() > consensus::kMaxNarSize) {
    field = AttestationField::kNarSize;
    auto invalid = consensus::PathInfo::Create(*path, *nar_hash, message.nar_size(), {});
    return FieldError("nar_size", invalid.status());
  }
  field = AttestationField::kReferences;
  if (static_cast<size_t>(message.references_size()) > consensus::kMaxReferences) {
    return absl::InvalidArgumentError(Cat("references: ", message.references_size(),
                                          " references; at most ", consensus::kMaxReferences,
                                          " are accepted"));
  }
  std::vector<consensus::StorePath> references;
  references.reserve(message.references_size());
  for (int i = 0; i < message.references_size(); ++i) {
    auto reference = consensus::StorePath::Parse(message.references(i));
    if (!reference.ok()) {
      return absl::InvalidArgumentError(Cat("references[", i, "] is not a store path: ",
                                            StdView(reference.status().message())));
    }
    references.push_back(*std::move(reference));
  }
  auto info = consensus::PathInfo::Create(*std::move(path), *nar_hash, message.nar_size(),
                                          std::move(references));
  if (!info.ok()) return FieldError("references", info.status());
  return info;
}

}  // namespace

absl::StatusOr<consensus::PathInfo> FromProto(const v1::PathInfo& message) {
  AttestationField field;
  return PathInfoFromProto(message, field);
}

v1::PathInfo ToProto(const consensus::PathInfo& path_info) {
  v1::PathInfo message;
  message.set_store_path(path_info.path.full());
  message.set_nar_hash(path_info.nar_hash.ToNix32());
  message.set_nar_size(path_info.nar_size);
  for (const consensus::StorePath& reference : path_info.references) {
    message.add_references(reference.full());
  }
  return message;
}

absl::StatusOr<consensus::BuildMetadata> FromProto(const v1::BuildMetadata& message) {
  if (!v1::BuildKind_IsValid(message.build_kind())) {
    return absl::InvalidArgumentError(
        Cat("metadata.build_kind: unknown build kind ", static_cast<int>(message.build_kind())));
  }
  consensus::BuildMetadata metadata;
  metadata.deriver = message.deriver();
  metadata.output_name = message.output_name();
  metadata.system = message.system();
  metadata.build_kind = FromProto(message.build_kind());
  metadata.build_time_unix = message.build_time_unix();
  if (absl::Status s = consensus::ValidateBuildMetadata(metadata); !s.ok()) return FieldError("metadata", s);
  return metadata;
}

v1::BuildMetadata ToProto(consensus::BuildMetadata metadata) {
  v1::BuildMetadata message;
  message.set_deriver(std::move(metadata.deriver));
  message.set_output_name(std::move(metadata.output_name));
  message.set_system(std::move(metadata.system));
  message.set_build_kind(ToProto(metadata.build_kind));
  message.set_build_time_unix(metadata.build_time_unix);
  return message;
}

absl::StatusOr<consensus::Attestation> FromProto(const v1::Attestation& message) {
  AttestationField field;
  return FromProto(message, &field);
}

absl::StatusOr<consensus::Attestation> FromProto(const v1::Attestation& message, AttestationField* field_at_fault) {
  AttestationField& field = *field_at_fault;
  field = AttestationField::kPathInfo;
  if (!message.has_path_info()) {
    return absl::InvalidArgumentError("path_info is missing (store path, NAR hash, NAR size, references)");
  }
  auto claim = PathInfoFromProto(message.path_info(), field);
  if (!claim.ok()) return claim.status();
  field = AttestationField::kSignature;
  auto signature = consensus::Signature::Parse(message.signature());
  if (!signature.ok()) return FieldError("signature", signature.status());
  field = AttestationField::kMetadata;
  auto metadata = FromProto(message.metadata());
  if (!metadata.ok()) return metadata.status();
  return consensus::Attestation{*std::move(claim), *std::move(signature), *std::move(metadata)};
}

std::string_view AttestationFieldName(AttestationField field) {
  switch (field) {
    case AttestationField::kPathInfo:
      return "path_info";
    case AttestationField::kStorePath:
      return "store_path";
    case AttestationField::kNarHash:
      return "nar_hash";
    case AttestationField::kNarSize:
      return "nar_size";
    case AttestationField::kReferences:
      return "references";
    case AttestationField::kSignature:
      return "signature";
    case AttestationField::kMetadata:
      return "metadata";
  }
  return "unknown";
}

v1::Attestation ToProto(const consensus::Attestation& attestation) {
  v1::Attestation message;
  *message.mutable_path_info() = ToProto(attestation.claim);
  message.set_signature(attestation.signature.ToString());
  const consensus::BuildMetadata& metadata = attestation.metadata;
  // An empty metadata message is left unset so answers stay small.
  if (!(metadata == consensus::BuildMetadata{})) *message.mutable_metadata() = ToProto(metadata);
  return message;
}

absl::StatusOr<consensus::RealisationAttestation> FromProto(const v1::RealisationAttestation& message) {
  if (message.fingerprint().empty()) {
    return absl::InvalidArgumentError(
        "fingerprint is missing (the realisation's JSON exactly as Nix signs it, one line)");
  }
  auto claim = consensus::Realisation::ParseFingerprint(message.fingerprint());
  if (!claim.ok()) return FieldError("fingerprint", claim.status());
  auto signature = consensus::Signature::Parse(message.signature());
  if (!signature.ok()) return FieldError("signature", signature.status());
  auto metadata = FromProto(message.metadata());
  if (!metadata.ok()) return metadata.status();
  if (absl::Status s = consensus::ValidateRealisationMetadata(*claim, *metadata); !s.ok()) {
    return FieldError("metadata", s);
  }
  return consensus::RealisationAttestation{*std::move(claim), *std::move(signature), *std::move(metadata)};
}

v1::RealisationAttestation ToProto(const consensus::RealisationAttestation& attestation) {
  v1::RealisationAttestation message;
  message.set_fingerprint(attestation.claim.Fingerprint());
  message.set_signature(attestation.signature.ToString());
  const consensus::BuildMetadata& metadata = attestation.metadata;
  if (!(metadata == consensus::BuildMetadata{})) *message.mutable_metadata() = ToProto(metadata);
  return message;
}

v1::Verdict ToProto(consensus::Verdict verdict) {
  switch (verdict) {
    case consensus::Verdict::kUnknown:
      return v1::UNKNOWN;
    case consensus::Verdict::kPending:
      return v1::PENDING;
    case consensus::Verdict::kConfirmed:
      return v1::CONFIRMED;
    case consensus::Verdict::kDisputed:
      return v1::DISPUTED;
  }
  return v1::VERDICT_UNSPECIFIED;
}

absl::StatusOr<consensus::Verdict> FromProto(v1::Verdict verdict) {
  switch (verdict) {
    case v1::UNKNOWN:
      return consensus::Verdict::kUnknown;
    case v1::PENDING:
      return consensus::Verdict::kPending;
    case v1::CONFIRMED:
      return consensus::Verdict::kConfirmed;
    case v1::DISPUTED:
      return consensus::Verdict::kDisputed;
    default:
      return absl::InvalidArgumentError(
          Cat("verdict ", static_cast<int>(verdict), " is not one of UNKNOWN, PENDING, CONFIRMED, DISPUTED"));
  }
}

v1::BuildKind ToProto(consensus::BuildKind kind) {
  switch (kind) {
    case consensus::BuildKind::kUnspecified:
      return v1::BUILD_KIND_UNSPECIFIED;
    case consensus::BuildKind::kFirstBuild:
      return v1::BUILD_KIND_FIRST_BUILD;
    case consensus::BuildKind::kRebuild:
      return v1::BUILD_KIND_REBUILD;
    case consensus::BuildKind::kCheck:
      return v1::BUILD_KIND_CHECK;
    case consensus::BuildKind::kImported:
      return v1::BUILD_KIND_IMPORTED;
  }
  return v1::BUILD_KIND_UNSPECIFIED;
}

consensus::BuildKind FromProto(v1::BuildKind kind) {
  switch (kind) {
    case v1::BUILD_KIND_FIRST_BUILD:
      return consensus::BuildKind::kFirstBuild;
    case v1::BUILD_KIND_REBUILD:
      return consensus::BuildKind::kRebuild;
    case v1::BUILD_KIND_CHECK:
      return consensus::BuildKind::kCheck;
    case v1::BUILD_KIND_IMPORTED:
      return consensus::BuildKind::kImported;
    default:
      // Unknown values (a newer client) carry no meaning for counting; FromProto(BuildMetadata)
      // refuses them, this overload is for callers that only display the kind.
      return consensus::BuildKind::kUnspecified;
  }
}

}  // namespace attest::proto
