// DerivationStore: the .drv files a node holds so that rebuilders can build what is wanted
// (docs/rebuilds.md). A role of the store like the ledger (storage/attestation_store.h), with a write
// method of its own: derivations are not logged, not replicated and not counted; each one names itself
// (its store path is a hash of its contents), so storing one commits nothing else.
//
// The caller verifies before it stores (consensus/derivation_paths.h: the text-addressed path and the
// output paths); the store keeps the bytes, the input derivations and the output paths (an index from
// an output path, or its hash part, to the derivations that list it).
//
// The store refuses only what it could not hold faithfully (ValidateStoredDerivation in
// storage/batch_validation.h); it does not parse or hash the contents.
//
// Implementations: SqliteAttestationStore and MemoryAttestationStore, behind AttestationStore; both pass
// tests/storage/derivation_store_contract_test.cc.
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
  // Its outputs with a known path (input-addressed and fixed outputs), sorted by output name, each
  // name once (the order Nix writes them in).
  std::vector<DerivationOutputPath> outputs;
  int64_t received_unix = 0;  // when this node first received it; not negative

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
  // not stored again (kAlreadyPresent; the first copy is kept, received time included). One outcome
  // per input, in order; a path twice in one call is kInserted once, then kAlreadyPresent.
  //   INVALID_ARGUMENT  an item fails ValidateStoredDerivation ("derivation <i> of <n>: ..."): its
  //                     path is not a .drv, its contents are empty, its input derivations are not
  //                     sorted, unique .drv paths, its outputs are not sorted by unique non-empty
  //                     names, or its received time is negative; nothing of the call is stored
  //   UNAVAILABLE       busy past the retry bound (nothing stored; the call may be repeated)
  //   RESOURCE_EXHAUSTED the disk is full; DATA_LOSS on corruption
  virtual absl::StatusOr<std::vector<WriteOutcome>> PutDerivations(std::span<const StoredDerivation> derivations) = 0;

  // For each path, whether the store holds it (in input order; a path may be asked for twice).
  // Reads no contents: cheap for a whole closure.
  virtual absl::StatusOr<std::vector<bool>> HasDerivations(std::span<const consensus::StorePath> paths) = 0;

  // The derivations held, nullopt for each path that is not, in input order. All are read in one
  // snapshot. DATA_LOSS when a stored row is not a derivation this store could have written.
  virtual absl::StatusOr<std::vector<std::optional<StoredDerivation>>> GetDerivations(
      std::span<const consensus::StorePath> paths) = 0;

  // For each output path, the held derivations that list it, sorted by (drv path, output name); empty
  // when none does. In input order, one snapshot.
  virtual absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> DerivationsProducing(
      std::span<const consensus::StorePath> outputs) = 0;

  // The output path with this hash part (32 nix32 characters) that some held derivation lists, or
  // nullopt. (The gateway learns a requested path's name this way.) Should two listed paths share a
  // hash part (never in practice), the first in byte order. INVALID_ARGUMENT when `hash_part` is not
  // 32 nix32 characters.
  virtual absl::StatusOr<std::optional<consensus::StorePath>> OutputPathByHashPart(std::string_view hash_part) = 0;

  // How many derivations are held and their contents' total size; kept as running counts, so this
  // does not scan the derivations.
  virtual absl::StatusOr<DerivationStats> GetDerivationStats() = 0;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_DERIVATION_STORE_H_
