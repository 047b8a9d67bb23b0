// Realisations: what a builder claims about a content-addressed (CA) derivation output, "derivation
// output D produced output path P", in Nix's own two formats. The output path of a CA derivation is a
// hash of its contents, so the bytes verify themselves; the mapping is the one thing independent
// rebuilders have to agree on.
//
// Nix 2.8 up to 2.34 (src/libstore/realisation.cc, DrvOutput and Realisation::fingerprint):
//   key          sha256:<64 lower-case hex of hashDerivationModulo(drv, maskOutputs=true)>!<output>
//   fingerprint  {"dependentRealisations":{"<key>":"<out base name>",...},"id":"<key>","outPath":"<base name>"}
//                (the realisation JSON without "signatures": compact, keys sorted, no spaces)
//   .doi file    the same object with "signatures":["<name>:<base64>",...] added (keys still sorted);
//                served at /realisations/<key>.doi
// Nix 2.35 and later ("build traces"; src/libstore/realisation.cc of 2.35):
//   key          <drv path>^<output>        (written here with the full /nix/store/... .drv path;
//                                            the base name "<hash>-<name>.drv^<output>" is accepted)
//   fingerprint  {"key":{"drvPath":"<drv base name>","outputName":"<output>"},"value":{"outPath":"<base name>"}}
//   .doi file    {"key":{...},"value":{"outPath":"<base name>","signatures":[{"keyName":"<name>","sig":"<base64>"},...]}}
//                served at /build-trace-v2/<drv base name>/<output>.doi
//
// A fingerprint is accepted only in exactly the bytes Nix signs: Parse*(x) succeeds only when
// Fingerprint() of the result is x again (key order, spaces, escapes and anything else non-canonical
// are refused, naming the first difference). Two realisation attestations agree when their
// fingerprints are byte-identical, as for store paths (consensus/path_info.h).
//
// The name check: a 2.35 key names its derivation, so the output path must be named as Nix names that
// output ("<drv name>" for "out", "<drv name>-<output>" otherwise); a 2.8 key carries only a hash, so
// its output path's name is checked only where the derivation is known.
//
// Pure functions and value types; thread-safe.
#ifndef ATTEST_CONSENSUS_REALISATION_H_
#define ATTEST_CONSENSUS_REALISATION_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/store_path.h"

namespace attest::consensus {

enum class RealisationFormat {
  kDrvHash = 1,     // Nix 2.8-2.34: sha256:<hex>!<output>
  kBuildTrace = 2,  // Nix 2.35+:    <drv path>^<output>
};
std::string_view RealisationFormatName(RealisationFormat format);  // "nix-2.8", "build-trace-v2"

// Output names follow Nix's store path name rules (1..211 of [A-Za-z0-9+-._?=], not starting with '.').
inline constexpr size_t kMaxDependentRealisations = 10000;  // as kMaxReferences for paths

// Which derivation output a realisation is about.
class RealisationKey final {
 public:
  // Parses either format: "sha256:<64 lower-case hex>!<output>" or "/nix/store/<hash>-<name>.drv^<output>"
  // (or "<hash>-<name>.drv^<output>"). INVALID_ARGUMENT naming what is wrong: an unknown or missing
  // hash algorithm, a hash that is not 64 lower-case hex digits, a missing or invalid output name, a
  // drv path that is not a .drv store path, '!' and '^' mixed or repeated.
  static absl::StatusOr<RealisationKey> Parse(std::string_view text);
  // True when `text` looks like a realisation key rather than a store path (it has '!' or '^'); the
  // CLI uses it to tell the two apart before parsing.
  static bool LooksLikeKey(std::string_view text);

  static absl::StatusOr<RealisationKey> FromDrvHash(std::string_view hex_hash, std::string_view output_name);
  static absl::StatusOr<RealisationKey> FromDrvPath(const StorePath& drv_path, std::string_view output_name);

  RealisationFormat format() const { return format_; }
  // kDrvHash: the 64 lower-case hex digits. Empty for kBuildTrace.
  const std::string& drv_hash() const { return drv_hash_; }
  // kBuildTrace: the .drv store path. Only valid for kBuildTrace.
  const StorePath& drv_path() const;
  const std::string& output_name() const { return output_name_; }

  // The canonical text: "sha256:<hex>!<output>" or "/nix/store/<hash>-<name>.drv^<output>".
  // Stored, logged and answered in this form.
  std::string ToString() const;
  // The name Nix gives this output's path, when the key names its derivation (kBuildTrace):
  // "<drv name>" for "out", "<drv name>-<output>" otherwise. Empty for kDrvHash.
  std::string ExpectedOutPathName() const;
  // Where a binary cache serves it: "realisations/<key>.doi" or
  // "build-trace-v2/<drv base name>/<output>.doi" (no leading '/').
  std::string CachePath() const;

  friend bool operator==(const RealisationKey&, const RealisationKey&) = default;

 private:
  RealisationKey() = default;
  RealisationFormat format_ = RealisationFormat::kDrvHash;
  std::string drv_hash_;
  std::optional<StorePath> drv_path_;  // kBuildTrace only
  std::string output_name_;
};

// Parses the cache path of a realisation as the gateway receives it (after the leading '/'):
// "realisations/<key>.doi" or "build-trace-v2/<drv base name>/<output>.doi". INVALID_ARGUMENT otherwise.
absl::StatusOr<RealisationKey> ParseRealisationCachePath(std::string_view path);

// The claim: key -> output path (and, in the 2.8 format, the realisations of the references it used).
struct Realisation final {
  RealisationKey key;
  StorePath out_path;
  // kDrvHash only: dependent realisation key (canonical text) -> output path, sorted by key, unique.
  // Always empty for kBuildTrace.
  std::vector<std::pair<std::string, StorePath>> dependent;

  // Validates: dependent keys are kDrvHash keys, sorted and unique, at most kMaxDependentRealisations,
  // empty for kBuildTrace; for kBuildTrace the output path's name is key.ExpectedOutPathName().
  // INVALID_ARGUMENT naming the problem (for the name: "output path <p> is not named <expected>, as
  // derivation <drv> names its output <out>").
  static absl::StatusOr<Realisation> Create(RealisationKey key, StorePath out_path,
                                            std::vector<std::pair<std::string, StorePath>> dependent = {});
  // The exact bytes Nix signs (see the top of this file).
  std::string Fingerprint() const;
  // Strict: the format is told by the first bytes; the result's Fingerprint() must equal `text`.
  // INVALID_ARGUMENT naming the first problem (not canonical: "byte <n>: expected ... found ...").
  static absl::StatusOr<Realisation> ParseFingerprint(std::string_view text);

  friend bool operator==(const Realisation&, const Realisation&) = default;
};

// A builder's signed realisation. metadata.deriver, when set, is the .drv the builder built (for a
// kBuildTrace key it must equal the key's drv path); metadata.output_name, when set, equals the key's.
struct RealisationAttestation final {
  Realisation claim;
  Signature signature;
  BuildMetadata metadata;

  const std::string& key_name() const { return signature.key_name; }
  friend bool operator==(const RealisationAttestation&, const RealisationAttestation&) = default;
};

RealisationAttestation SignRealisation(const Realisation& claim, const SecretKey& key, BuildMetadata metadata = {});
// OK when the signature verifies over claim.Fingerprint() with `key`; UNAUTHENTICATED otherwise, naming
// the key and the key of the realisation. A signature over the other format's fingerprint of the same
// output does not verify (the fingerprints differ).
absl::Status VerifyRealisation(const RealisationAttestation& attestation, const PublicKey& key);
// ValidateBuildMetadata plus the consistency of deriver / output name with the key (INVALID_ARGUMENT).
absl::Status ValidateRealisationMetadata(const Realisation& claim, const BuildMetadata& metadata);

// A realisation file (.doi) of either format: the claim and every signature it carries.
struct RealisationFile final {
  Realisation claim;
  std::vector<Signature> signatures;  // in file order
};
// Parses a .doi as Nix writes it (any key order and white space is accepted here: it is the signed
// fingerprint, rebuilt canonically, that signatures are checked against). INVALID_ARGUMENT naming the
// problem: not JSON, a missing or extra member, a wrong type, a bad key or path, a bad signature text.
absl::StatusOr<RealisationFile> ParseRealisationFile(std::string_view json);
// Writes the .doi as Nix writes it (compact, keys sorted; signatures in the given order).
std::string FormatRealisationFile(const Realisation& claim, std::span<const Signature> signatures);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_REALISATION_H_
