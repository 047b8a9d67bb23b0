// StorePath: a validated Nix store path "/nix/store/<32 nix32 chars>-<name>".
//
// Immutable value type; thread-safe.
#ifndef ATTEST_CONSENSUS_STORE_PATH_H_
#define ATTEST_CONSENSUS_STORE_PATH_H_

#include <compare>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace attest::consensus {

inline constexpr std::string_view kStoreDir = "/nix/store";
inline constexpr size_t kStorePathHashLength = 32;  // nix32 of 20 bytes
inline constexpr size_t kMaxStorePathNameLength = 211;  // Nix's limit

class StorePath final {
 public:
  // Parses "/nix/store/<hash>-<name>". The hash part must be 32 characters of the nix32 alphabet; the
  // name 1..211 characters of [A-Za-z0-9+-._?=] and must not start with '.'. No trailing slash, no
  // sub-path. INVALID_ARGUMENT naming what is wrong.
  static absl::StatusOr<StorePath> Parse(std::string_view full_path);
  // Parses the base name "<hash>-<name>" (narinfo References: and Deriver: use it).
  static absl::StatusOr<StorePath> ParseBaseName(std::string_view base_name);

  const std::string& full() const { return full_; }
  // The 32-character hash part; what a binary cache names "<hash>.narinfo".
  std::string_view hash_part() const;
  std::string_view name() const;
  std::string_view base_name() const;  // "<hash>-<name>"
  bool IsDerivation() const;           // name ends in ".drv"

  friend auto operator<=>(const StorePath&, const StorePath&) = default;
  friend bool operator==(const StorePath&, const StorePath&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const StorePath& p) {
    return H::combine(std::move(h), p.full_);
  }

 private:
  explicit StorePath(std::string full) : full_(std::move(full)) {}
  std::string full_;
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_STORE_PATH_H_
