// DerivationStore: the .drv files a node holds so that rebuilders can build what is wanted
// (docs/rebuilds.md). A role of the store like the ledger (storage/attestation_store.h), with a write
// method of its own: derivations are not logged, not replicated and not counted; each one names itself
// (its store path is a hash of its contents), so storing one commits nothing else.
//
// The caller verifies before it stores (consensus/derivation_paths.h: the text-addressed path and the
// output paths); the store keeps the bytes, the input derivations and the output paths (an index from
// an output path, or its hash part, to the derivations that list it).
//
// Thread-safety: every method may be called from any thread; implementations serialise writes.
#ifndef ATTEST_STORAGE_DERIVATION_STORE_H_
#define ATTEST_STORAGE_DERIVATION_STORE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/store_path.h"
#include "storage/store_writer.h"

namespace attest::storage {

struct DerivationOutputPath final {
  std::string output_name;  // "out", "dev", ...
  consensus::StorePath path;

  friend bool operator==(const DerivationOutputPath&, const DerivationOutputPath&) = default;
};

struct StoredDerivation final {
  consensus::StorePath path;  // "/nix/store/<hash>-<name>.drv"
  std::string contents;       // the .drv file, byte for byte
  // The input derivations it names, sorted, unique (to walk a closure without parsing).
  std::vector<consensus::StorePath> input_derivations;
  // Its outputs with a known path (input-addressed and fixed outputs), by output name.
  std::vector<DerivationOutputPath> outputs;
  int64_t received_unix = 0;

  friend bool operator==(const StoredDerivation&, const StoredDerivation&) = default;
};

// A derivation that lists a path among its outputs.
struct DerivationOfOutput final {
  consensus::StorePath drv_path;
  std::string output_name;

  friend bool operator==(const DerivationOfOutput&, const DerivationOfOutput&) = default;
};

struct DerivationStats final {
  int64_t derivations = 0;
  int64_t content_bytes = 0;  // sum of the stored files' sizes

  friend bool operator==(const DerivationStats&, const DerivationStats&) = default;
};

class DerivationStore {
 public:
  virtual ~DerivationStore() = default;

  // Stores the derivations in one transaction, durable when it returns OK. A path already held is
  // not stored again (kAlreadyPresent; the first copy is kept). One outcome per input, in order; a path
  // twice in one call is kInserted once, then kAlreadyPresent. UNAVAILABLE when busy past the retry
  // bound.
  virtual absl::StatusOr<std::vector<WriteOutcome>> PutDerivations(std::span<const StoredDerivation> derivations) = 0;

  // For each path, whether the store holds it (in input order).
  virtual absl::StatusOr<std::vector<bool>> HasDerivations(std::span<const consensus::StorePath> paths) = 0;

  // The derivations held, nullopt for each path that is not, in input order.
  virtual absl::StatusOr<std::vector<std::optional<StoredDerivation>>> GetDerivations(
      std::span<const consensus::StorePath> paths) = 0;

  // For each output path, the held derivations that list it, sorted by (drv path, output name).
  virtual absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> DerivationsProducing(
      std::span<const consensus::StorePath> outputs) = 0;

  // The output path with this hash part (32 nix32 characters) that some held derivation lists, or
  // nullopt. (The gateway learns a requested path's name this way.)
  virtual absl::StatusOr<std::optional<consensus::StorePath>> OutputPathByHashPart(std::string_view hash_part) = 0;

  virtual absl::StatusOr<DerivationStats> GetDerivationStats() = 0;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_DERIVATION_STORE_H_
