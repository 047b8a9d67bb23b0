#include "consensus/merkle.h"

#include <sodium.h>

#include <algorithm>
#include <bit>
#include <cstddef>

#include "absl/status/status.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr uint8_t kLeafPrefix = 0x00;
constexpr uint8_t kNodePrefix = 0x01;

// Streams prefix || a || b into SHA-256, so that no concatenated copy is built for every node.
// crypto_hash_sha256_* cannot fail and need no sodium_init() (no runtime-selected code).
MerkleHash PrefixedHash(uint8_t prefix, std::span<const uint8_t> a, std::span<const uint8_t> b) {
  static_assert(crypto_hash_sha256_BYTES == std::tuple_size_v<MerkleHash>);
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  crypto_hash_sha256_update(&state, &prefix, 1);
  crypto_hash_sha256_update(&state, a.data(), a.size());
  crypto_hash_sha256_update(&state, b.data(), b.size());
  MerkleHash out{};
  crypto_hash_sha256_final(&state, out.data());
  return out;
}

// A node of the tree a proof is about: [begin, end) with begin a multiple of the smallest power of
// two >= end - begin. Either a complete subtree, or a node on the right edge of the tree.
struct NodeRange final {
  uint64_t begin = 0;
  uint64_t end = 0;
};

// The k of RFC 9162's MTH: the largest power of two smaller than n (n >= 2).
uint64_t SplitPoint(uint64_t n) { return uint64_t{1} << (std::bit_width(n - 1) - 1); }

// Appends the maximal complete subtrees of `range`, left to right. For a node range these are the
// set bits of its width, largest first, and folding them right to left gives MTH of the range:
// the same split RFC 9162 makes at the largest power of two below the width.
void AppendSubtrees(const NodeRange& range, std::vector<SubtreeId>& out) {
  for (uint64_t begin = range.begin; begin < range.end;) {
    int level = std::bit_width(range.end - begin) - 1;
    if (begin != 0) level = std::min(level, std::countr_zero(begin));
    out.push_back(SubtreeId{level, begin >> level});
    begin += uint64_t{1} << level;
  }
}

// MTH of a node from the hashes of its maximal complete subtrees (non-empty), combined right to
// left.
MerkleHash FoldRightToLeft(std::span<const MerkleHash> subtrees) {
  MerkleHash hash = subtrees.back();
  for (size_t i = subtrees.size() - 1; i-- > 0;) hash = NodeHash(subtrees[i], hash);
  return hash;
}

// One ReadHashes call for all `ids` (none when there are none): storage batches reads, so a proof
// costs one round trip however many hashes it combines.
absl::StatusOr<std::vector<MerkleHash>> ReadAll(const HashReader& reader,
                                                std::span<const SubtreeId> ids) {
  if (ids.empty()) return std::vector<MerkleHash>();
  absl::StatusOr<std::vector<MerkleHash>> hashes = reader.ReadHashes(ids);
  if (!hashes.ok()) return hashes.status();
  if (hashes->size() != ids.size()) {
    return absl::InternalError(Cat("hash reader returned ", hashes->size(), " hashes for ",
                                   ids.size(), " subtrees (a bug in the reader)"));
  }
  return hashes;
}

// The hashes of `nodes`, in order, from one read of the stored subtrees they consist of.
absl::StatusOr<std::vector<MerkleHash>> HashNodes(std::span<const NodeRange> nodes,
                                                  const HashReader& reader) {
  std::vector<SubtreeId> ids;
  std::vector<size_t> first_id;  // where each node's subtrees start in `ids`
  first_id.reserve(nodes.size() + 1);
  for (const NodeRange& node : nodes) {
    first_id.push_back(ids.size());
    AppendSubtrees(node, ids);
  }
  first_id.push_back(ids.size());
  absl::StatusOr<std::vector<MerkleHash>> stored = ReadAll(reader, ids);
  if (!stored.ok()) return stored.status();
  std::vector<MerkleHash> result;
  result.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    result.push_back(FoldRightToLeft(
        std::span<const MerkleHash>(*stored).subspan(first_id[i], first_id[i + 1] - first_id[i])));
  }
  return result;
}

// Number of hashes in the audit path of leaf `index` (< size) in a tree of `size` leaves. Below the
// highest bit where index and size - 1 differ, the leaf lies inside a complete subtree: one sibling
// per level. Above it, the leaf's ancestors run along the right edge of the tree; such an ancestor
// has a (left) sibling where index has a 1 bit, and where it has a 0 it is the last node of its
// level and moves up unchanged.
size_t InclusionProofLength(uint64_t index, uint64_t size) {
  const int inner = std::bit_width(index ^ (size - 1));
  const uint64_t border = inner >= 64 ? 0 : index >> inner;
  return static_cast<size_t>(inner + std::popcount(border));
}

// Number of hashes in the consistency proof from `old_size` to `new_size` (0 < old < new). The
// proof is the audit path of the old tree's last leaf, started not at that leaf but at the largest
// complete subtree that ends at old_size (at level countr_zero(old_size)), led by that subtree's
// own hash unless it is the whole old tree, which the verifier already has as the old root.
size_t ConsistencyProofLength(uint64_t old_size, uint64_t new_size) {
  const int shift = std::countr_zero(old_size);
  size_t length = InclusionProofLength(old_size - 1, new_size) - static_cast<size_t>(shift);
  if (!std::has_single_bit(old_size)) ++length;
  return length;
}

// RFC 9162 fails a proof that goes on after reaching the root. The length check comes first, so
// this only guards against a mistake in the length formulas.
absl::Status ProofTooLong(std::string_view kind) {
  return absl::FailedPreconditionError(Cat(kind, " proof goes on past the root"));
}

void ShiftBoth(uint64_t& fn, uint64_t& sn) {
  fn >>= 1;
  sn >>= 1;
}

}  // namespace

MerkleHash EmptyTreeHash() {
  MerkleHash out{};
  crypto_hash_sha256(out.data(), nullptr, 0);
  return out;
}

MerkleHash LeafHash(std::string_view entry) {
  return PrefixedHash(kLeafPrefix, AsBytes(entry), {});
}

MerkleHash NodeHash(const MerkleHash& left, const MerkleHash& right) {
  return PrefixedHash(kNodePrefix, left, right);
}

absl::StatusOr<MerkleHash> TreeHash(uint64_t size, const HashReader& reader) {
  if (size == 0) return EmptyTreeHash();
  const NodeRange whole{0, size};
  absl::StatusOr<std::vector<MerkleHash>> hashes = HashNodes({&whole, 1}, reader);
  if (!hashes.ok()) return hashes.status();
  return hashes->front();
}

absl::StatusOr<std::vector<MerkleHash>> InclusionProof(uint64_t index, uint64_t size,
                                                       const HashReader& reader) {
  if (index >= size) {
    return absl::InvalidArgumentError(Cat("leaf index ", index, " is not in a tree of size ", size,
                                          " (indexes run from 0 to size - 1)"));
  }
  // RFC 9162 PATH(m, D[n]), unrolled: walk down from the root, taking the sibling of the side the
  // leaf is on. The proof lists them bottom up.
  std::vector<NodeRange> siblings;
  uint64_t lo = 0;
  uint64_t hi = size;
  while (hi - lo > 1) {
    const uint64_t mid = lo + SplitPoint(hi - lo);
    if (index < mid) {
      siblings.push_back({mid, hi});
      hi = mid;
    } else {
      siblings.push_back({lo, mid});
      lo = mid;
    }
  }
  std::reverse(siblings.begin(), siblings.end());
  return HashNodes(siblings, reader);
}

absl::StatusOr<std::vector<MerkleHash>> ConsistencyProof(uint64_t old_size, uint64_t new_size,
                                                         const HashReader& reader) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(Cat("old tree size ", old_size,
                                          " is larger than new tree size ", new_size,
                                          " (a log only grows)"));
  }
  if (old_size == 0 || old_size == new_size) return std::vector<MerkleHash>();
  // RFC 9162 SUBPROOF(m, D[n], b), unrolled. `whole_old_tree` is b: true while the node being
  // descended into still starts at leaf 0, where the verifier knows the old root already.
  std::vector<NodeRange> nodes;  // top down; reversed below
  bool whole_old_tree = true;
  uint64_t lo = 0;
  uint64_t hi = new_size;
  while (old_size != hi) {
    const uint64_t mid = lo + SplitPoint(hi - lo);
    if (old_size <= mid) {
      nodes.push_back({mid, hi});
      hi = mid;
    } else {
      nodes.push_back({lo, mid});
      lo = mid;
      whole_old_tree = false;
    }
  }
  if (!whole_old_tree) nodes.push_back({lo, hi});
  std::reverse(nodes.begin(), nodes.end());
  return HashNodes(nodes, reader);
}

absl::Status VerifyInclusion(uint64_t index, uint64_t size, const MerkleHash& leaf_hash,
                             std::span<const MerkleHash> proof, const MerkleHash& root) {
  if (index >= size) {
    return absl::InvalidArgumentError(Cat("leaf index ", index, " is not in a tree of size ", size,
                                          " (indexes run from 0 to size - 1)"));
  }
  // Checked first so that no proof of the wrong shape is ever hashed through (RFC 9162 alone would
  // accept nothing wrong either, but the length error tells the caller what is off).
  const size_t expected = InclusionProofLength(index, size);
  if (proof.size() != expected) {
    return absl::FailedPreconditionError(Cat("inclusion proof has ", proof.size(),
                                             " hashes, a tree of size ", size, " needs ", expected,
                                             " for index ", index));
  }
  // RFC 9162 2.1.3.2: fn is the node's index at its level, sn the last index at that level.
  uint64_t fn = index;
  uint64_t sn = size - 1;
  MerkleHash r = leaf_hash;
  for (const MerkleHash& p : proof) {
    if (sn == 0) return ProofTooLong("inclusion");  // unreachable with the length checked
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      // A right-edge node with no sibling at some levels: it moves up unchanged.
      while ((fn & 1) == 0 && fn != 0) ShiftBoth(fn, sn);
    } else {
      r = NodeHash(r, p);
    }
    ShiftBoth(fn, sn);
  }
  if (sn != 0 || r != root) {
    return absl::FailedPreconditionError(
        Cat("inclusion proof for index ", index, " in a tree of size ", size,
            " does not lead to the root (is the leaf hash, the proof or the root from another "
            "tree?)"));
  }
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size, const MerkleHash& old_root,
                               const MerkleHash& new_root, std::span<const MerkleHash> proof) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(Cat("old tree size ", old_size,
                                          " is larger than new tree size ", new_size,
                                          " (a log only grows)"));
  }
  if (old_size == 0 || old_size == new_size) {
    if (!proof.empty()) {
      return absl::FailedPreconditionError(Cat("consistency proof has ", proof.size(),
                                               " hashes, going from size ", old_size, " to size ",
                                               new_size, " needs none"));
    }
    if (old_size != 0 && old_root != new_root) {
      return absl::FailedPreconditionError(
          Cat("two trees of size ", old_size,
              " have different roots: the log has shown two different histories"));
    }
    return absl::OkStatus();
  }
  const size_t expected = ConsistencyProofLength(old_size, new_size);
  if (proof.size() != expected) {
    return absl::FailedPreconditionError(Cat("consistency proof has ", proof.size(),
                                             " hashes, going from size ", old_size, " to size ",
                                             new_size, " needs ", expected));
  }
  // RFC 9162 2.1.4.2. A complete old tree is its own first node; otherwise the proof starts with
  // it.
  size_t next = 0;
  const MerkleHash seed = std::has_single_bit(old_size) ? old_root : proof[next++];
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while ((fn & 1) != 0) ShiftBoth(fn, sn);
  MerkleHash fr = seed;  // becomes the old root
  MerkleHash sr = seed;  // becomes the new root
  for (; next < proof.size(); ++next) {
    if (sn == 0) return ProofTooLong("consistency");  // unreachable with the length checked
    const MerkleHash& c = proof[next];
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      while ((fn & 1) == 0 && fn != 0) ShiftBoth(fn, sn);
    } else {
      sr = NodeHash(sr, c);
    }
    ShiftBoth(fn, sn);
  }
  if (sn != 0 || fr != old_root) {
    return absl::FailedPreconditionError(
        Cat("consistency proof does not lead to the old root (size ", old_size, " to ", new_size,
            "; is the old root the root of the first ", old_size, " leaves?)"));
  }
  if (sr != new_root) {
    return absl::FailedPreconditionError(Cat(
        "consistency proof does not lead to the new root (size ", old_size, " to ", new_size, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CompactRange> CompactRange::FromStored(uint64_t size, const HashReader& reader) {
  std::vector<SubtreeId> ids;
  AppendSubtrees(NodeRange{0, size}, ids);
  absl::StatusOr<std::vector<MerkleHash>> hashes = ReadAll(reader, ids);
  if (!hashes.ok()) return hashes.status();
  CompactRange range;
  range.size_ = size;
  range.hashes_ = *std::move(hashes);
  return range;
}

absl::StatusOr<CompactRange> CompactRange::FromHashes(uint64_t size, std::vector<MerkleHash> hashes) {
  if (hashes.size() != static_cast<size_t>(std::popcount(size))) {
    return absl::InvalidArgumentError(Cat("a compact range of size ", size, " has ", std::popcount(size),
                                          " hashes, not ", hashes.size()));
  }
  CompactRange range;
  range.size_ = size;
  range.hashes_ = std::move(hashes);
  return range;
}

MerkleHash CompactRange::Root() const {
  if (hashes_.empty()) return EmptyTreeHash();
  return FoldRightToLeft(hashes_);
}

void CompactRange::Append(const MerkleHash& leaf_hash,
                          std::vector<std::pair<SubtreeId, MerkleHash>>* completed) {
  const uint64_t index = size_;
  hashes_.push_back(leaf_hash);
  if (completed != nullptr) completed->push_back({SubtreeId{0, index}, leaf_hash});
  // Each trailing 1 bit of the leaf's index is a level where the leaf's subtree was the missing
  // right half: pair the last two hashes, once per such level.
  const int closed = std::countr_one(index);
  for (int level = 1; level <= closed; ++level) {
    const MerkleHash parent = NodeHash(hashes_[hashes_.size() - 2], hashes_.back());
    hashes_.pop_back();
    hashes_.back() = parent;
    if (completed != nullptr) completed->push_back({SubtreeId{level, index >> level}, parent});
  }
  ++size_;
}

void MemoryHashStore::Append(const MerkleHash& leaf_hash) {
  MerkleHash hash = leaf_hash;
  for (size_t level = 0;; ++level) {
    if (levels_.size() == level) levels_.emplace_back();
    std::vector<MerkleHash>& row = levels_[level];
    row.push_back(hash);
    if (row.size() % 2 != 0) return;  // a left half: its parent is not complete yet
    hash = NodeHash(row[row.size() - 2], row.back());
  }
}

absl::StatusOr<std::vector<MerkleHash>> MemoryHashStore::ReadHashes(
    std::span<const SubtreeId> ids) const {
  std::vector<MerkleHash> result;
  result.reserve(ids.size());
  for (const SubtreeId& id : ids) {
    if (id.level < 0 || static_cast<size_t>(id.level) >= levels_.size() ||
        id.index >= levels_[static_cast<size_t>(id.level)].size()) {
      return absl::NotFoundError(Cat("subtree at level ", id.level, " index ", id.index,
                                     " is not complete in a tree of ", size(), " leaves"));
    }
    result.push_back(levels_[static_cast<size_t>(id.level)][id.index]);
  }
  return result;
}

}  // namespace attest::consensus
