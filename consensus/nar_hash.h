// NarHash: the SHA-256 of a path's NAR serialisation, in every text form Nix prints.
//
// Immutable value type; thread-safe.
#ifndef ATTEST_CONSENSUS_NAR_HASH_H_
#define ATTEST_CONSENSUS_NAR_HASH_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace attest::consensus {

class NarHash final {
 public:
  using Digest = std::array<uint8_t, 32>;

  // Accepts "sha256:<52 nix32>", "sha256:<64 hex>", "sha256:<44 base64>" and SRI "sha256-<44 base64>".
  // INVALID_ARGUMENT saying which part is wrong (algorithm, encoding, length).
  static absl::StatusOr<NarHash> Parse(std::string_view text);
  static NarHash FromDigest(const Digest& digest) { return NarHash(digest); }

  // "sha256:<52 nix32>": the form the path fingerprint uses.
  std::string ToNix32() const;
  std::string ToSri() const;  // "sha256-<base64>"
  std::string ToHex() const;  // "<64 hex>" without prefix
  const Digest& digest() const { return digest_; }

  friend bool operator==(const NarHash&, const NarHash&) = default;

 private:
  explicit NarHash(const Digest& d) : digest_(d) {}
  Digest digest_;
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_NAR_HASH_H_
