#include "consensus/attestation.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "consensus/display_text.h"
#include "consensus/store_path.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr size_t kMaxMetadataField = 255;

// Output names and system strings are single words in Nix ("out", "x86_64-linux"). Metadata ends up
// in line-based formats (dispute notes, logs) and is shown as it is (`attest disputes show`, the
// dispute pages), so it follows the displayed-text rule.
absl::Status ValidateWord(std::string_view field, std::string_view value) {
  if (value.size() > kMaxMetadataField) {
    return absl::InvalidArgumentError(Cat("build metadata ", field, " has ", value.size(),
                                          " bytes; at most ", kMaxMetadataField));
  }
  return ValidateDisplayText(value, TextShape::kWord, Cat("build metadata ", field));
}

}  // namespace

std::string_view BuildKindName(BuildKind kind) {
  switch (kind) {
    case BuildKind::kUnspecified:
      return "unspecified";
    case BuildKind::kFirstBuild:
      return "build";
    case BuildKind::kRebuild:
      return "rebuild";
    case BuildKind::kCheck:
      return "check";
    case BuildKind::kImported:
      return "imported";
  }
  return "unspecified";
}

absl::Status ValidateBuildMetadata(const BuildMetadata& metadata) {
  if (!metadata.deriver.empty()) {
    auto deriver = StorePath::Parse(metadata.deriver);
    if (!deriver.ok()) {
      return absl::InvalidArgumentError(
          Cat("build metadata deriver: ", deriver.status().message()));
    }
    if (!deriver->IsDerivation()) {
      return absl::InvalidArgumentError(Cat(
          "build metadata deriver ", QuoteForError(metadata.deriver), " is not a .drv store path"));
    }
  }
  if (absl::Status s = ValidateWord("output name", metadata.output_name); !s.ok()) return s;
  if (absl::Status s = ValidateWord("system", metadata.system); !s.ok()) return s;
  switch (metadata.build_kind) {
    case BuildKind::kUnspecified:
    case BuildKind::kFirstBuild:
    case BuildKind::kRebuild:
    case BuildKind::kCheck:
    case BuildKind::kImported:
      break;
    default:
      return absl::InvalidArgumentError(
          Cat("build metadata has unknown build kind ", static_cast<int>(metadata.build_kind)));
  }
  if (metadata.build_time_unix < 0) {
    return absl::InvalidArgumentError(Cat("build metadata build time ", metadata.build_time_unix,
                                          " is negative; use 0 when unknown"));
  }
  return absl::OkStatus();
}

Attestation SignAttestation(const PathInfo& claim, const SecretKey& key, BuildMetadata metadata) {
  return Attestation{claim, key.Sign(claim.Fingerprint()), std::move(metadata)};
}

absl::Status VerifyAttestation(const Attestation& attestation, const PublicKey& key) {
  absl::Status status = key.Verify(attestation.claim.Fingerprint(), attestation.signature);
  if (status.ok()) return status;
  return absl::UnauthenticatedError(
      Cat("attestation for ", attestation.claim.path.full(), ": ", status.message()));
}

}  // namespace attest::consensus
