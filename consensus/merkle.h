// RFC 6962 / RFC 9162 Merkle trees (SHA-256): hashing, proofs, and the incremental frontier a log
// appends with. Pure; thread-safe (MemoryHashStore: see its comment).
//
// Subtrees are named as in C2SP tlog-tiles and Go's sumdb/tlog: SubtreeId{level, index} is the
// complete subtree of 2^level leaves [index << level, (index + 1) << level). Its hash is "stored"
// (it never changes once the tree has grown past it); every other hash a proof needs is combined
// from stored ones.
//
// What the proofs bind: an inclusion proof binds the leaf's index and the root; a consistency proof
// binds the old size and both roots. Neither binds the tree size on its own: for many sizes n, a
// proof for (index, n) also verifies as a proof for (index, n ± 1) against the same root, because
// RFC 9162 verification only follows the left/right pattern of the path, and both trees can share
// it. Take size and root from the same signed checkpoint, never from separate sources.
#ifndef ATTEST_CONSENSUS_MERKLE_H_
#define ATTEST_CONSENSUS_MERKLE_H_

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace attest::consensus {

using MerkleHash = std::array<uint8_t, 32>;

// MTH({}) = SHA-256("").
MerkleHash EmptyTreeHash();
// SHA-256(0x00 || entry).
MerkleHash LeafHash(std::string_view entry);
// SHA-256(0x01 || left || right).
MerkleHash NodeHash(const MerkleHash& left, const MerkleHash& right);

struct SubtreeId final {
  int level = 0;       // 0 = a leaf
  uint64_t index = 0;  // position among the subtrees of this level

  friend bool operator==(const SubtreeId&, const SubtreeId&) = default;
};

// Where a log keeps its stored hashes (leaf hashes and complete subtrees).
class HashReader {
 public:
  virtual ~HashReader() = default;
  // The hash of each subtree, in order. Callers only ask for complete subtrees of a tree the reader
  // holds; NOT_FOUND (or another error) otherwise, passed through unchanged.
  virtual absl::StatusOr<std::vector<MerkleHash>> ReadHashes(
      std::span<const SubtreeId> ids) const = 0;
};

// Every function below that reads makes at most one ReadHashes call (none when it needs no stored
// hash), so that a storage layer can answer each proof with one batched read. Errors of the reader
// pass through unchanged; INTERNAL when it returns a different number of hashes than asked for.

// MTH of the first `size` leaves (EmptyTreeHash() for 0), from the maximal complete subtrees of
// [0, size) (at most 64).
absl::StatusOr<MerkleHash> TreeHash(uint64_t size, const HashReader& reader);

// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 9162 2.1.3.1), bottom
// up. INVALID_ARGUMENT when index >= size.
absl::StatusOr<std::vector<MerkleHash>> InclusionProof(uint64_t index, uint64_t size,
                                                       const HashReader& reader);

// The proof that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves (RFC
// 9162 2.1.4.1). Empty when old_size is 0 or equals new_size. INVALID_ARGUMENT when old_size >
// new_size.
absl::StatusOr<std::vector<MerkleHash>> ConsistencyProof(uint64_t old_size, uint64_t new_size,
                                                         const HashReader& reader);

// RFC 9162 2.1.3.2, strict: the proof must have exactly the length a tree of `size` needs for
// `index`. OK when it leads from `leaf_hash` to `root`. INVALID_ARGUMENT when index >= size;
// FAILED_PRECONDITION when the proof has the wrong length or does not lead to the root.
absl::Status VerifyInclusion(uint64_t index, uint64_t size, const MerkleHash& leaf_hash,
                             std::span<const MerkleHash> proof, const MerkleHash& root);

// RFC 9162 2.1.4.2, strict about the proof length. Policy at the edges: old_size 0 is consistent
// with any tree and its proof must be empty (C2SP tlog-witness); old_size == new_size needs an
// empty proof and equal roots. INVALID_ARGUMENT when old_size > new_size; FAILED_PRECONDITION when
// the proof has the wrong length or does not lead to both roots.
absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const MerkleHash& old_root,
                               const MerkleHash& new_root, std::span<const MerkleHash> proof);

// The frontier of an append-only log: the hashes of the maximal complete subtrees of [0, size()),
// largest (leftmost) first, so appending costs O(log size) hashes and never reads storage.
// A value type; not synchronised.
class CompactRange final {
 public:
  // The empty range (size 0).
  CompactRange() = default;

  // The frontier of the tree the reader holds, cut at `size` (one read; none for size 0).
  static absl::StatusOr<CompactRange> FromStored(uint64_t size, const HashReader& reader);
  // The range whose hashes() were `hashes` at `size` (a frontier kept elsewhere). INVALID_ARGUMENT
  // unless there is exactly one hash per set bit of `size`.
  static absl::StatusOr<CompactRange> FromHashes(uint64_t size, std::vector<MerkleHash> hashes);

  uint64_t size() const { return size_; }
  // MTH of the first size() leaves; EmptyTreeHash() when empty.
  MerkleHash Root() const;
  // One hash per set bit of size(), most significant bit first.
  std::span<const MerkleHash> hashes() const { return hashes_; }

  // Appends the leaf with hash `leaf_hash`. When `completed` is not null, appends to it every
  // subtree that this leaf completes, bottom up: the leaf itself (level 0), then each subtree the
  // leaf closes, so a log can store exactly these hashes. Precondition: size() < 2^64 - 1.
  void Append(const MerkleHash& leaf_hash,
              std::vector<std::pair<SubtreeId, MerkleHash>>* completed = nullptr);

 private:
  uint64_t size_ = 0;
  std::vector<MerkleHash> hashes_;
};

// Every stored hash of a tree, in memory: one vector per level. The reference store for tests and
// small tools. Not synchronised: concurrent ReadHashes are fine, Append needs exclusive access.
class MemoryHashStore final : public HashReader {
 public:
  // Appends a leaf and every subtree hash it completes.
  void Append(const MerkleHash& leaf_hash);
  uint64_t size() const { return levels_.empty() ? 0 : levels_[0].size(); }

  // NOT_FOUND for a subtree that is not complete in the tree held.
  absl::StatusOr<std::vector<MerkleHash>> ReadHashes(std::span<const SubtreeId> ids) const override;

 private:
  std::vector<std::vector<MerkleHash>> levels_;
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_MERKLE_H_
