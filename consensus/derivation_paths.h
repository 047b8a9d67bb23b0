// Store paths that follow from contents: how Nix names a .drv file (text-addressed) and the outputs
// of a derivation (hashDerivationModulo), so that a derivation handed over by someone else can be
// checked before anyone stores, imports or builds it.
//
//   MakeStorePath(type, h, name) = /nix/store/<nix32(compress20(sha256(
//                                     "<type>:sha256:<hex h>:/nix/store:<name>")))>-<name>
//                           (compress20 XOR-folds the 32 bytes into 20: out[i % 20] ^= h[i])
//   a .drv (text)           type "text:<ref1>:<ref2>..." (references sorted), h = sha256(contents);
//                           its references are its input derivations and input sources
//   output names            <drv name> for "out", <drv name>-<output> for the others, where the drv
//                           name is the .drv path's name without ".drv" (as Nix reads it back)
//   input-addressed output  type "output:<output name>", h = HashModulo(drv)
//   fixed output            recursive sha256: type "source", h = the output's hash; otherwise type
//                           "output:out", h = sha256("fixed:out:<hash algo as written>:<hex>:"); Nix
//                           computes this path and never reads it from the file
//   HashModulo(drv)         fixed-output: sha256("fixed:out:<hash algo as written>:<hex>:<out path>");
//                           otherwise sha256 of the ATerm (outputs, input sources and environment
//                           sorted, as Nix holds them) with every output path and every env var named
//                           like an output emptied, and each input derivation replaced by the
//                           lower-case hex of its InputHash (inputs sorted by that hex, output names
//                           merged when two inputs share it)
//   InputHash(drv)          fixed-output: HashModulo(drv); otherwise the same as HashModulo but with
//                           the output paths and env vars kept as written (Nix's pathDerivationModulo
//                           hashes an input with maskOutputs = false)
// (Nix 2.8 src/libstore/store-api.cc makeStorePath/makeTextPath/makeFixedOutputPath/makeOutputPath,
// derivations.cc hashDerivationModulo/pathDerivationModulo/unparse.) Checked against derivations and
// output paths real Nix 2.8 wrote (tests/testdata/derivations/).
//
// Pure functions and value types; DerivationGraph is thread-compatible.
#ifndef ATTEST_CONSENSUS_DERIVATION_PATHS_H_
#define ATTEST_CONSENSUS_DERIVATION_PATHS_H_

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/derivation.h"
#include "consensus/store_path.h"

namespace attest::consensus {

inline constexpr size_t kMaxDerivationBytes = size_t{1} << 20;  // one .drv file
// Longest chain of input derivations DerivationGraph follows (nixpkgs' bootstrap is a few hundred).
inline constexpr int kMaxDerivationDepth = 10000;

using Sha256Digest = std::array<uint8_t, 32>;

// Nix's makeStorePath. INVALID_ARGUMENT when `name` is not a valid store path name.
absl::StatusOr<StorePath> MakeStorePath(std::string_view type, const Sha256Digest& hash, std::string_view name);

// The store path of a text file with these contents and references (Nix's makeTextPath; how .drv files
// and builtins.toFile are named). `references` in any order.
absl::StatusOr<StorePath> TextStorePath(std::string_view name, std::string_view contents,
                                        std::span<const StorePath> references);

// A .drv file's references in the store: its input derivations and input sources, sorted, unique.
std::vector<StorePath> DerivationReferences(const Derivation& drv);

// The ATerm text Nix writes for `drv`; for a parsed .drv, byte-identical to the file.
std::string UnparseDerivation(const Derivation& drv);

// Parses a .drv file and checks that `drv_path` is the text-addressed store path its contents and
// references give. INVALID_ARGUMENT naming the path and the problem: not a .drv path, larger than
// kMaxDerivationBytes, does not parse (with the byte offset), or "<path>: its contents give
// /nix/store/<other>: the file does not belong to this path".
absl::StatusOr<Derivation> VerifyDerivationFile(const StorePath& drv_path, std::string_view contents);

// Derivations known by path, for the computations that follow input derivations.
class DerivationGraph final {
 public:
  // Adds a derivation (already checked with VerifyDerivationFile). A path added twice keeps the first.
  void Add(const StorePath& drv_path, Derivation drv);
  bool Contains(const StorePath& drv_path) const;
  const Derivation* Find(const StorePath& drv_path) const;

  // HashModulo of the derivation (see the file comment), following input derivations iteratively and
  // remembering every hash computed (so a derivation added after a failure, e.g. a missing input,
  // is picked up by the next call). NOT_FOUND naming the input derivation the graph lacks and the
  // derivation that needs it; FAILED_PRECONDITION for a derivation with floating content-addressed or
  // deferred outputs (its output paths are not known before building, attest does not check them);
  // INVALID_ARGUMENT for a chain longer than kMaxDerivationDepth or a cycle, a derivation that mixes
  // output kinds or has a fixed output other than a single "out" (Nix refuses both), or one that uses
  // an output its input derivation does not have.
  absl::StatusOr<Sha256Digest> HashModulo(const StorePath& drv_path);

  // The output paths the derivation must have, by output name, computed from its inputs (HashModulo).
  // Errors as HashModulo.
  absl::StatusOr<std::map<std::string, StorePath>> ExpectedOutputPaths(const StorePath& drv_path);

  // OK when every output path written in the .drv is the one ExpectedOutputPaths gives;
  // INVALID_ARGUMENT "<drv path>: output <name> is written as <path> but the derivation gives <path>"
  // otherwise; errors as HashModulo.
  absl::Status CheckOutputPaths(const StorePath& drv_path);

  // Nix 2.8's hashDerivationModulo(drv, maskOutputs = true) for a derivation of any kind, including
  // floating content-addressed and deferred outputs (written with their hash algorithm, e.g.
  // "r:sha256", and an empty path; an input derivation of those kinds is hashed unmasked like any
  // other): the hash in a Nix 2.8 realisation key "sha256:<hex>!<output>" (consensus/realisation.h).
  // For input-addressed and fixed-output derivations it equals HashModulo. Errors as HashModulo, but
  // floating and deferred outputs are not refused.
  absl::StatusOr<Sha256Digest> RealisationHash(const StorePath& drv_path);

 private:
  // Which derivations a computation takes: those whose output paths are in the .drv (HashModulo), or
  // any (RealisationHash).
  enum class OutputKinds { kWithPaths, kAny };
  using HashMap = absl::flat_hash_map<StorePath, Sha256Digest>;

  // Computes InputHash of every input derivation reachable from `root` (not of `root` itself), with
  // an explicit stack bounded by kMaxDerivationDepth.
  absl::Status HashInputsOf(const StorePath& root, OutputKinds kinds);
  // The input derivations of `drv` keyed by the hex of their InputHash, as Nix's hashDerivationModulo
  // writes them. Precondition: HashInputsOf(drv_path) is OK.
  absl::StatusOr<std::map<std::string, std::set<std::string>>> HashedInputs(const StorePath& drv_path,
                                                                           const Derivation& drv,
                                                                           const HashMap& input_hashes) const;

  absl::flat_hash_map<StorePath, Derivation> derivations_;
  absl::flat_hash_map<StorePath, Sha256Digest> hashes_;        // HashModulo
  absl::flat_hash_map<StorePath, Sha256Digest> input_hashes_;  // InputHash
  HashMap any_input_hashes_;                                   // InputHash, for RealisationHash
  HashMap realisation_hashes_;                                 // RealisationHash
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_DERIVATION_PATHS_H_
