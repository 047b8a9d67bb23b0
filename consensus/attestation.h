// Attestation: a builder's signed claim about a store path, plus metadata that travels with it but is
// not signed and not counted (deriver, output name, system, build kind, build time).
//
// Value type; thread-safe.
#ifndef ATTEST_CONSENSUS_ATTESTATION_H_
#define ATTEST_CONSENSUS_ATTESTATION_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "consensus/keys.h"
#include "consensus/path_info.h"

namespace attest::consensus {

enum class BuildKind { kUnspecified = 0, kFirstBuild = 1, kRebuild = 2, kCheck = 3, kImported = 4 };
std::string_view BuildKindName(BuildKind kind);  // "unspecified", "build", "rebuild", "check", "imported"

struct BuildMetadata final {
  std::string deriver;      // full .drv store path, or empty
  std::string output_name;  // "out", "dev", ... or empty
  std::string system;       // "x86_64-linux", ... or empty
  BuildKind build_kind = BuildKind::kUnspecified;
  int64_t build_time_unix = 0;  // seconds; 0 when unknown

  friend bool operator==(const BuildMetadata&, const BuildMetadata&) = default;
};

// INVALID_ARGUMENT when metadata fields are malformed (a deriver that is not a .drv store path, an
// output name or system over 255 bytes or not a word of displayed text (consensus/display_text.h:
// white space, control or bidirectional formatting characters, invalid UTF-8), a negative time).
absl::Status ValidateBuildMetadata(const BuildMetadata& metadata);

struct Attestation final {
  PathInfo claim;
  Signature signature;
  BuildMetadata metadata;

  const std::string& key_name() const { return signature.key_name; }
  friend bool operator==(const Attestation&, const Attestation&) = default;
};

// Signs claim.Fingerprint() with `key`.
Attestation SignAttestation(const PathInfo& claim, const SecretKey& key, BuildMetadata metadata = {});

// OK when the attestation's signature verifies over its claim's fingerprint with `key`.
// UNAUTHENTICATED otherwise, with a message that names the key.
absl::Status VerifyAttestation(const Attestation& attestation, const PublicKey& key);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_ATTESTATION_H_
