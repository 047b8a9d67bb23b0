// PathInfo: what a builder claims about one store path, and its Nix fingerprint
//
//   1;<storePath>;sha256:<nix32 narHash>;<narSize>;<refs, full paths, sorted, comma-joined>
//
// which is exactly what a narinfo Sig: line signs. Two claims agree when their fingerprints are
// byte-identical. Value type; thread-safe.
#ifndef ATTEST_CONSENSUS_PATH_INFO_H_
#define ATTEST_CONSENSUS_PATH_INFO_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/nar_hash.h"
#include "consensus/store_path.h"

namespace attest::consensus {

// Limits that reject absurd claims before they cost storage. 1 TiB NARs and 10,000 references are far
// beyond anything in nixpkgs.
inline constexpr uint64_t kMaxNarSize = uint64_t{1} << 40;
inline constexpr size_t kMaxReferences = 10000;

struct PathInfo final {
  StorePath path;
  NarHash nar_hash;
  uint64_t nar_size = 0;
  std::vector<StorePath> references;  // sorted, unique

  // Validates and normalises: nar_size in 1..kMaxNarSize, at most kMaxReferences references (sorted,
  // duplicates rejected). INVALID_ARGUMENT with the reason.
  static absl::StatusOr<PathInfo> Create(StorePath path, NarHash nar_hash, uint64_t nar_size,
                                         std::vector<StorePath> references);
  // Parses a fingerprint string back into a PathInfo (strict: it must re-serialise identically).
  static absl::StatusOr<PathInfo> ParseFingerprint(std::string_view fingerprint);

  std::string Fingerprint() const;

  friend bool operator==(const PathInfo&, const PathInfo&) = default;
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_PATH_INFO_H_
