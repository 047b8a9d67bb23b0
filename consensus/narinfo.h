// Parsing and checking `.narinfo` files exactly as binary caches (cache.nixos.org included) serve them.
//
// Format (Nix 2.8 src/libstore/nar-info.cc): `Key: Value` lines, each ending in '\n' (the last one too);
// keys in any order; unknown keys ignored. StorePath, NarHash and NarSize (non-zero) are required;
// References holds base names ("<hash>-<name>"), at most one References line; Deriver is a base name or
// "unknown-deriver"; Sig may repeat. A Sig value is kept as text here: a malformed one does not make the
// narinfo unusable (Nix 2.8 would throw while verifying it; we report and skip it instead).
//
// Value types and pure functions; thread-safe.
#ifndef ATTEST_CONSENSUS_NARINFO_H_
#define ATTEST_CONSENSUS_NARINFO_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/keys.h"
#include "consensus/path_info.h"
#include "consensus/store_path.h"

namespace attest::consensus {

struct NarInfo final {
  // StorePath, NarHash, NarSize and References: what the Sig lines sign (References as full paths).
  PathInfo claim;
  std::string url;
  std::string compression;
  std::string file_hash;
  std::optional<uint64_t> file_size;
  std::optional<StorePath> deriver;  // full .drv path; absent for "unknown-deriver"
  std::string system;
  std::string ca;
  std::vector<std::string> signatures;  // the Sig: values, in file order, unparsed
};

// Parses narinfo text. `source` names the input in messages ("<source>:<line>: <problem>").
// INVALID_ARGUMENT for: a line without a newline at its end, a line without "Key: ", a missing or
// malformed StorePath/NarHash/NarSize, NarSize 0, a repeated StorePath/NarHash/NarSize/References line,
// a malformed reference or deriver.
absl::StatusOr<NarInfo> ParseNarInfo(std::string_view text, std::string_view source);

// One Sig: line, parsed.
struct NarInfoSignature final {
  std::string text;                               // as written in the narinfo
  std::optional<Signature> signature;  // nullopt when malformed
  std::string error;                              // why it is malformed
};
std::vector<NarInfoSignature> ParseNarInfoSignatures(const NarInfo& narinfo);

// The outcome of checking one Sig: line against a set of trusted keys, as Nix does: a signature counts
// only under the trusted key with the same name.
struct SignatureCheck final {
  enum class Result { kValid, kUntrustedKey, kDoesNotVerify, kMalformed };
  std::string key_name;  // empty when malformed
  Result result = Result::kMalformed;
  std::string detail;  // for everything but kValid
};

struct NarInfoVerification final {
  std::vector<SignatureCheck> checks;   // one per Sig: line, in file order
  std::vector<std::string> valid_keys;  // names of trusted keys with a valid signature, sorted, unique
  bool ok() const { return !valid_keys.empty(); }
};

// Checks every Sig: line of `narinfo` over its recomputed fingerprint.
NarInfoVerification VerifyNarInfo(const NarInfo& narinfo, std::span<const PublicKey> trusted_keys);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_NARINFO_H_
