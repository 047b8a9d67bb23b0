#include "consensus/merkle.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "consensus/encoding.h"
#include "consensus/sha256.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

// ---- Vector files ------------------------------------------------------------------------------

// The non-comment lines of tests/testdata/merkle/<file>, split at white space.
std::vector<std::vector<std::string>> ReadFacts(std::string_view file) {
  std::istringstream in(attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) +
                                                       "/merkle/" + std::string(file)));
  std::vector<std::vector<std::string>> facts;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::vector<std::string> fact;
    for (std::string field; fields >> field;) fact.push_back(field);
    facts.push_back(std::move(fact));
  }
  EXPECT_FALSE(facts.empty()) << file;
  return facts;
}

// Hex as written in the vector files; "-" is the empty string.
std::string HexBytes(std::string_view hex) {
  if (hex == "-") return "";
  auto bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? std::string(bytes->begin(), bytes->end()) : std::string();
}

MerkleHash HexHash(std::string_view hex) {
  MerkleHash hash{};
  const std::string bytes = HexBytes(hex);
  EXPECT_EQ(bytes.size(), hash.size()) << hex;
  std::copy_n(bytes.begin(), std::min(bytes.size(), hash.size()), hash.begin());
  return hash;
}

// A probe's base64 hash; nullopt when it is not 32 bytes ("-" = empty), which MerkleHash cannot
// hold, so such a probe is rejected before it reaches the verifier.
std::optional<MerkleHash> ProbeHash(std::string_view base64) {
  if (base64 == "-") return std::nullopt;
  auto bytes = Base64Decode(base64);
  EXPECT_TRUE(bytes.ok()) << base64 << ": " << bytes.status();
  if (!bytes.ok() || bytes->size() != 32) return std::nullopt;
  MerkleHash hash{};
  std::copy(bytes->begin(), bytes->end(), hash.begin());
  return hash;
}

uint64_t ParseSize(const std::string& text) { return std::stoull(text); }

std::vector<MerkleHash> ToVector(std::span<const MerkleHash> hashes) {
  return {hashes.begin(), hashes.end()};
}

// ---- An independent model: RFC 9162 2.1 written as recursion over all leaf hashes ---------------

uint64_t Split(uint64_t n) {
  uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

using Leaves = std::span<const MerkleHash>;

MerkleHash NaiveMth(Leaves leaves) {
  if (leaves.empty()) return EmptyTreeHash();
  if (leaves.size() == 1) return leaves[0];
  const uint64_t k = Split(leaves.size());
  return NodeHash(NaiveMth(leaves.first(k)), NaiveMth(leaves.subspan(k)));
}

std::vector<MerkleHash> NaivePath(uint64_t m, Leaves leaves) {
  if (leaves.size() <= 1) return {};
  const uint64_t k = Split(leaves.size());
  std::vector<MerkleHash> path;
  if (m < k) {
    path = NaivePath(m, leaves.first(k));
    path.push_back(NaiveMth(leaves.subspan(k)));
  } else {
    path = NaivePath(m - k, leaves.subspan(k));
    path.push_back(NaiveMth(leaves.first(k)));
  }
  return path;
}

std::vector<MerkleHash> NaiveSubproof(uint64_t m, Leaves leaves, bool whole_old_tree) {
  if (m == leaves.size()) {
    if (whole_old_tree) return {};
    return {NaiveMth(leaves)};
  }
  const uint64_t k = Split(leaves.size());
  std::vector<MerkleHash> proof;
  if (m <= k) {
    proof = NaiveSubproof(m, leaves.first(k), whole_old_tree);
    proof.push_back(NaiveMth(leaves.subspan(k)));
  } else {
    proof = NaiveSubproof(m - k, leaves.subspan(k), false);
    proof.push_back(NaiveMth(leaves.first(k)));
  }
  return proof;
}

// The side of each sibling on the path of leaf m in a tree of n leaves, bottom up (true = left).
// RFC 9162 verification follows only this pattern, so two sizes with the same pattern for a leaf
// accept the same proofs against the same root.
std::vector<bool> InclusionSides(uint64_t m, uint64_t n) {
  if (n <= 1) return {};
  const uint64_t k = Split(n);
  std::vector<bool> sides = m < k ? InclusionSides(m, k) : InclusionSides(m - k, n - k);
  sides.push_back(m >= k);
  return sides;
}

// Same for SUBPROOF(m, D[n], b): the sibling sides bottom up, and whether the proof starts with the
// node at which the old tree ends (b false there).
std::pair<bool, std::vector<bool>> ConsistencyShape(uint64_t m, uint64_t n, bool whole_old_tree) {
  if (m == n) return {!whole_old_tree, {}};
  const uint64_t k = Split(n);
  auto shape =
      m <= k ? ConsistencyShape(m, k, whole_old_tree) : ConsistencyShape(m - k, n - k, false);
  shape.second.push_back(m > k);
  return shape;
}

// ---- Readers -----------------------------------------------------------------------------------

// Counts the calls a proof makes, and what it asks for.
class CountingReader final : public HashReader {
 public:
  explicit CountingReader(const HashReader& inner) : inner_(inner) {}
  absl::StatusOr<std::vector<MerkleHash>> ReadHashes(
      std::span<const SubtreeId> ids) const override {
    ++calls_;
    ids_ += ids.size();
    return inner_.ReadHashes(ids);
  }
  int calls() const { return calls_; }
  size_t ids() const { return ids_; }
  void Reset() {
    calls_ = 0;
    ids_ = 0;
  }

 private:
  const HashReader& inner_;
  mutable int calls_ = 0;
  mutable size_t ids_ = 0;
};

// A tree of up to 2^64 - 1 identical leaves: every subtree of a level has the same hash, so any
// size is cheap. Refuses ids that are not complete subtrees of the first `size` leaves.
class UniformTreeReader final : public HashReader {
 public:
  explicit UniformTreeReader(uint64_t size) : size_(size) {
    level_hashes_.push_back(LeafHash("same"));
    for (int level = 1; level < 64; ++level) {
      level_hashes_.push_back(NodeHash(level_hashes_.back(), level_hashes_.back()));
    }
  }
  absl::StatusOr<std::vector<MerkleHash>> ReadHashes(
      std::span<const SubtreeId> ids) const override {
    std::vector<MerkleHash> result;
    for (const SubtreeId& id : ids) {
      if (id.level < 0 || id.level > 63 || id.index >= (size_ >> id.level)) {
        return absl::NotFoundError(Cat("not a complete subtree: ", id.level, "/", id.index));
      }
      result.push_back(level_hashes_[static_cast<size_t>(id.level)]);
    }
    return result;
  }
  const MerkleHash& leaf_hash() const { return level_hashes_[0]; }

 private:
  uint64_t size_;
  std::vector<MerkleHash> level_hashes_;
};

// A reader with a bug: one hash too few.
class ShortReader final : public HashReader {
 public:
  absl::StatusOr<std::vector<MerkleHash>> ReadHashes(
      std::span<const SubtreeId> ids) const override {
    return std::vector<MerkleHash>(ids.size() - 1);
  }
};

std::vector<MerkleHash> TestLeafHashes(uint64_t n) {
  std::vector<MerkleHash> leaves;
  leaves.reserve(n);
  for (uint64_t i = 0; i < n; ++i) leaves.push_back(LeafHash(Cat("leaf ", i)));
  return leaves;
}

MemoryHashStore StoreOf(Leaves leaves) {
  MemoryHashStore store;
  for (const MerkleHash& leaf : leaves) store.Append(leaf);
  return store;
}

MerkleHash Flipped(MerkleHash hash, int bit) {
  hash[static_cast<size_t>(bit / 8)] ^= static_cast<uint8_t>(1u << (bit % 8));
  return hash;
}

// Bits to flip: all 256 in small trees, else 37 that reach every byte and every bit position.
std::vector<int> BitsToFlip(bool all) {
  std::vector<int> bits;
  for (int bit = 0; bit < 256; bit += all ? 1 : 7) bits.push_back(bit);
  return bits;
}

// ---- Hashing -----------------------------------------------------------------------------------

TEST(MerkleHasherTest, MatchesPublishedVectors) {
  int checked = 0;
  for (const auto& fact : ReadFacts("hasher.txt")) {
    if (fact[0] == "empty") {
      EXPECT_EQ(EmptyTreeHash(), HexHash(fact[1]));
    } else if (fact[0] == "leaf") {
      EXPECT_EQ(LeafHash(HexBytes(fact[1])), HexHash(fact[2])) << fact[1];
    } else if (fact[0] == "node-raw") {
      // The published node vector hashes 4-byte children, which NodeHash's 32-byte type cannot
      // take: this pins the construction (0x01 || left || right); NodeHash itself is pinned by the
      // node hashes of the 8-leaf tree below.
      EXPECT_EQ(Sha256("\x01" + HexBytes(fact[1]) + HexBytes(fact[2])), HexHash(fact[3]));
    } else {
      ADD_FAILURE() << "unknown fact " << fact[0];
    }
    ++checked;
  }
  EXPECT_EQ(checked, 4);
}

TEST(MerkleHasherTest, NodeHashIsPrefixedConcatenation) {
  const MerkleHash left = LeafHash("a");
  const MerkleHash right = LeafHash("b");
  const std::string input =
      "\x01" + std::string(left.begin(), left.end()) + std::string(right.begin(), right.end());
  EXPECT_EQ(NodeHash(left, right), Sha256(input));
  EXPECT_NE(NodeHash(left, right), NodeHash(right, left));
  // Second-preimage separation: a leaf whose entry is the two children is not the node.
  EXPECT_NE(LeafHash(input.substr(1)), NodeHash(left, right));
}

// ---- The published 8-leaf tree -----------------------------------------------------------------

struct Tree8 {
  std::vector<MerkleHash> leaf_hashes;
  std::vector<std::pair<SubtreeId, MerkleHash>> nodes;
  std::vector<MerkleHash> roots;                // by size
  std::vector<std::vector<SubtreeId>> compact;  // by size
};

Tree8 ReadTree8() {
  Tree8 tree;
  for (const auto& fact : ReadFacts("tree8.txt")) {
    if (fact[0] == "leaf") {
      EXPECT_EQ(ParseSize(fact[1]), tree.leaf_hashes.size());
      tree.leaf_hashes.push_back(LeafHash(HexBytes(fact[2])));
    } else if (fact[0] == "node") {
      tree.nodes.push_back({SubtreeId{std::stoi(fact[1]), ParseSize(fact[2])}, HexHash(fact[3])});
    } else if (fact[0] == "root") {
      EXPECT_EQ(ParseSize(fact[1]), tree.roots.size());
      tree.roots.push_back(HexHash(fact[2]));
    } else if (fact[0] == "compact") {
      EXPECT_EQ(ParseSize(fact[1]), tree.compact.size());
      std::vector<SubtreeId> ids;
      for (size_t i = 2; i < fact.size(); ++i) {
        const size_t colon = fact[i].find(':');
        ids.push_back(
            SubtreeId{std::stoi(fact[i].substr(0, colon)), ParseSize(fact[i].substr(colon + 1))});
      }
      tree.compact.push_back(std::move(ids));
    } else {
      ADD_FAILURE() << "unknown fact " << fact[0];
    }
  }
  EXPECT_EQ(tree.leaf_hashes.size(), 8u);
  EXPECT_EQ(tree.nodes.size(), 15u);
  EXPECT_EQ(tree.roots.size(), 9u);
  EXPECT_EQ(tree.compact.size(), 9u);
  return tree;
}

TEST(MerkleTree8Test, StoredHashesMatchPublishedNodeHashes) {
  const Tree8 tree = ReadTree8();
  const MemoryHashStore store = StoreOf(tree.leaf_hashes);
  for (const auto& [id, hash] : tree.nodes) {
    auto read = store.ReadHashes({&id, 1});
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->front(), hash) << "level " << id.level << " index " << id.index;
  }
}

TEST(MerkleTree8Test, RootsForEverySizeMatchPublished) {
  const Tree8 tree = ReadTree8();
  const MemoryHashStore store = StoreOf(tree.leaf_hashes);
  CompactRange range;
  for (uint64_t size = 0; size <= 8; ++size) {
    SCOPED_TRACE(Cat("size ", size));
    auto root = TreeHash(size, store);
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(*root, tree.roots[size]);
    EXPECT_EQ(NaiveMth(Leaves(tree.leaf_hashes).first(size)), tree.roots[size]);
    EXPECT_EQ(range.Root(), tree.roots[size]);
    if (size < 8) range.Append(tree.leaf_hashes[size]);
  }
}

TEST(MerkleTree8Test, CompactRangesMatchPublished) {
  const Tree8 tree = ReadTree8();
  const MemoryHashStore store = StoreOf(tree.leaf_hashes);
  CompactRange appended;
  for (uint64_t size = 0; size <= 8; ++size) {
    SCOPED_TRACE(Cat("size ", size));
    auto expected = store.ReadHashes(tree.compact[size]);
    ASSERT_TRUE(expected.ok()) << expected.status();
    EXPECT_EQ(ToVector(appended.hashes()), *expected);
    auto stored = CompactRange::FromStored(size, store);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->size(), size);
    EXPECT_EQ(ToVector(stored->hashes()), *expected);
    if (size < 8) appended.Append(tree.leaf_hashes[size]);
  }
}

// ---- Published probes --------------------------------------------------------------------------

TEST(MerkleProbeTest, InclusionProbesFromTransparencyDev) {
  const MemoryHashStore store = StoreOf(ReadTree8().leaf_hashes);
  int accepted = 0;
  int rejected = 0;
  for (const auto& fact : ReadFacts("inclusion_probes.txt")) {
    SCOPED_TRACE(fact[0]);
    ASSERT_GE(fact.size(), 6u);
    const uint64_t index = ParseSize(fact[1]);
    const uint64_t size = ParseSize(fact[2]);
    const bool want_ok = fact[5] == "ok";
    const std::optional<MerkleHash> root = ProbeHash(fact[3]);
    const std::optional<MerkleHash> leaf = ProbeHash(fact[4]);
    std::vector<MerkleHash> proof;
    bool decodable = root.has_value() && leaf.has_value();
    for (size_t i = 6; i < fact.size(); ++i) {
      const std::optional<MerkleHash> hash = ProbeHash(fact[i]);
      decodable = decodable && hash.has_value();
      if (hash.has_value()) proof.push_back(*hash);
    }
    if (!decodable) {
      EXPECT_FALSE(want_ok) << "a published valid proof with a hash that is not 32 bytes";
      ++rejected;
      continue;
    }
    const absl::Status status = VerifyInclusion(index, size, *leaf, proof, *root);
    EXPECT_EQ(status.ok(), want_ok) << status;
    if (!status.ok()) {
      EXPECT_EQ(status.code(), index >= size ? absl::StatusCode::kInvalidArgument
                                             : absl::StatusCode::kFailedPrecondition)
          << status;
    }
    if (want_ok) {
      // Every valid probe is about a prefix of the 8-leaf tree: we must produce the same proof.
      auto ours = InclusionProof(index, size, store);
      ASSERT_TRUE(ours.ok()) << ours.status();
      EXPECT_EQ(*ours, proof);
      ++accepted;
    } else {
      ++rejected;
    }
  }
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(rejected, 39);
}

TEST(MerkleProbeTest, ConsistencyProbesFromTransparencyDev) {
  const MemoryHashStore store = StoreOf(ReadTree8().leaf_hashes);
  int accepted = 0;
  int rejected = 0;
  for (const auto& fact : ReadFacts("consistency_probes.txt")) {
    SCOPED_TRACE(fact[0]);
    ASSERT_GE(fact.size(), 6u);
    const uint64_t old_size = ParseSize(fact[1]);
    const uint64_t new_size = ParseSize(fact[2]);
    const bool want_ok = fact[5] == "ok";
    const std::optional<MerkleHash> old_root = ProbeHash(fact[3]);
    const std::optional<MerkleHash> new_root = ProbeHash(fact[4]);
    std::vector<MerkleHash> proof;
    bool decodable = old_root.has_value() && new_root.has_value();
    for (size_t i = 6; i < fact.size(); ++i) {
      const std::optional<MerkleHash> hash = ProbeHash(fact[i]);
      decodable = decodable && hash.has_value();
      if (hash.has_value()) proof.push_back(*hash);
    }
    if (!decodable) {
      EXPECT_FALSE(want_ok) << "a published valid proof with a hash that is not 32 bytes";
      ++rejected;
      continue;
    }
    const absl::Status status = VerifyConsistency(old_size, new_size, *old_root, *new_root, proof);
    EXPECT_EQ(status.ok(), want_ok) << status;
    if (!status.ok()) {
      EXPECT_EQ(status.code(), old_size > new_size ? absl::StatusCode::kInvalidArgument
                                                   : absl::StatusCode::kFailedPrecondition)
          << status;
    }
    if (want_ok) {
      auto ours = ConsistencyProof(old_size, new_size, store);
      ASSERT_TRUE(ours.ok()) << ours.status();
      EXPECT_EQ(*ours, proof);
      ++accepted;
    } else {
      ++rejected;
    }
  }
  EXPECT_EQ(accepted, 5);
  EXPECT_EQ(rejected, 37);
}

// ---- Arguments and messages --------------------------------------------------------------------

TEST(MerkleProofTest, ImpossibleArgumentsAreInvalid) {
  const MemoryHashStore store = StoreOf(TestLeafHashes(8));
  EXPECT_EQ(InclusionProof(8, 8, store).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InclusionProof(0, 0, store).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConsistencyProof(5, 4, store).status().code(), absl::StatusCode::kInvalidArgument);
  const MerkleHash any = LeafHash("any");
  const absl::Status index = VerifyInclusion(8, 8, any, {}, any);
  EXPECT_EQ(index.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(index.message()), HasSubstr("leaf index 8 is not in a tree of size 8"));
  const absl::Status sizes = VerifyConsistency(5, 4, any, any, {});
  EXPECT_EQ(sizes.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(sizes.message()),
              HasSubstr("old tree size 5 is larger than new tree size 4"));
}

TEST(MerkleProofTest, WrongLengthIsNamedWithTheExpectedLength) {
  const std::vector<MerkleHash> leaves = TestLeafHashes(8);
  const MemoryHashStore store = StoreOf(leaves);
  std::vector<MerkleHash> proof = *InclusionProof(2, 8, store);
  const MerkleHash root = *TreeHash(8, store);
  proof.push_back(root);
  proof.push_back(root);
  const absl::Status status = VerifyInclusion(2, 8, leaves[2], proof, root);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "inclusion proof has 5 hashes, a tree of size 8 needs 3 for index 2");

  std::vector<MerkleHash> consistency = *ConsistencyProof(3, 8, store);
  consistency.pop_back();
  const absl::Status short_proof = VerifyConsistency(3, 8, *TreeHash(3, store), root, consistency);
  EXPECT_EQ(short_proof.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(short_proof.message()), HasSubstr("consistency proof has 3 hashes"));
  EXPECT_THAT(std::string(short_proof.message()), HasSubstr("needs 4"));
}

TEST(MerkleProofTest, MismatchesSayWhichRootIsNotReached) {
  const std::vector<MerkleHash> leaves = TestLeafHashes(8);
  const MemoryHashStore store = StoreOf(leaves);
  const MerkleHash old_root = *TreeHash(3, store);
  const MerkleHash new_root = *TreeHash(8, store);
  const std::vector<MerkleHash> proof = *ConsistencyProof(3, 8, store);

  const absl::Status wrong_new = VerifyConsistency(3, 8, old_root, Flipped(new_root, 0), proof);
  EXPECT_EQ(wrong_new.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(wrong_new.message()),
              HasSubstr("consistency proof does not lead to the new root"));
  const absl::Status wrong_old = VerifyConsistency(3, 8, Flipped(old_root, 0), new_root, proof);
  EXPECT_EQ(wrong_old.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(wrong_old.message()), HasSubstr("does not lead to the old root"));

  const absl::Status inclusion =
      VerifyInclusion(2, 8, leaves[3], *InclusionProof(2, 8, store), new_root);
  EXPECT_EQ(inclusion.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(inclusion.message()), HasSubstr("does not lead to the root"));
}

TEST(MerkleProofTest, EdgeSizesFollowTheWitnessPolicy) {
  const MemoryHashStore store = StoreOf(TestLeafHashes(8));
  const MerkleHash root5 = *TreeHash(5, store);
  const MerkleHash root8 = *TreeHash(8, store);
  // From the empty tree: consistent with anything, and the proof is empty.
  EXPECT_THAT(*ConsistencyProof(0, 8, store), ::testing::IsEmpty());
  EXPECT_TRUE(VerifyConsistency(0, 8, LeafHash("whatever"), root8, {}).ok());
  EXPECT_TRUE(VerifyConsistency(0, 0, EmptyTreeHash(), EmptyTreeHash(), {}).ok());
  const std::vector<MerkleHash> one = {root8};
  EXPECT_EQ(VerifyConsistency(0, 8, EmptyTreeHash(), root8, one).code(),
            absl::StatusCode::kFailedPrecondition);
  // Same size: empty proof, equal roots.
  EXPECT_THAT(*ConsistencyProof(5, 5, store), ::testing::IsEmpty());
  EXPECT_TRUE(VerifyConsistency(5, 5, root5, root5, {}).ok());
  EXPECT_EQ(VerifyConsistency(5, 5, root5, root8, {}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(VerifyConsistency(5, 5, root5, root5, one).code(),
            absl::StatusCode::kFailedPrecondition);
  // A one-leaf tree: the leaf is the root and the path is empty.
  EXPECT_THAT(*InclusionProof(0, 1, store), ::testing::IsEmpty());
  EXPECT_TRUE(VerifyInclusion(0, 1, *TreeHash(1, store), {}, *TreeHash(1, store)).ok());
}

// ---- Properties over many sizes ----------------------------------------------------------------

constexpr uint64_t kAllPairsUpTo = 70;

// Checks every proof for leaf `index` of the first `size` leaves: it is the RFC's PATH, verifies,
// and stops verifying when anything about it changes.
void CheckInclusion(uint64_t index, uint64_t size, Leaves leaves, const MemoryHashStore& store,
                    const MerkleHash& root, bool flip_all_bits) {
  SCOPED_TRACE(Cat("index ", index, " size ", size));
  auto proof = InclusionProof(index, size, store);
  ASSERT_TRUE(proof.ok()) << proof.status();
  if (size <= kAllPairsUpTo) {
    ASSERT_EQ(*proof, NaivePath(index, leaves.first(size)));
  }
  const MerkleHash& leaf = leaves[index];
  ASSERT_TRUE(VerifyInclusion(index, size, leaf, *proof, root).ok());

  const std::vector<int> bits = BitsToFlip(flip_all_bits);
  for (size_t i = 0; i < proof->size(); ++i) {
    std::vector<MerkleHash> bad = *proof;
    for (int bit : bits) {
      bad[i] = Flipped((*proof)[i], bit);
      ASSERT_EQ(VerifyInclusion(index, size, leaf, bad, root).code(),
                absl::StatusCode::kFailedPrecondition)
          << "proof hash " << i << " bit " << bit;
    }
  }
  for (int bit : bits) {
    ASSERT_FALSE(VerifyInclusion(index, size, leaf, *proof, Flipped(root, bit)).ok()) << bit;
    ASSERT_FALSE(VerifyInclusion(index, size, Flipped(leaf, bit), *proof, root).ok()) << bit;
  }
  if (index + 1 < size) {
    ASSERT_FALSE(VerifyInclusion(index + 1, size, leaf, *proof, root).ok());
  }
  if (index > 0) {
    ASSERT_FALSE(VerifyInclusion(index - 1, size, leaf, *proof, root).ok());
  }
  // The size is not bound by the proof alone (see merkle.h): a neighbouring size verifies exactly
  // when its path has the same left/right pattern.
  for (uint64_t other : {size - 1, size + 1}) {
    if (index >= other) {
      ASSERT_EQ(VerifyInclusion(index, other, leaf, *proof, root).code(),
                absl::StatusCode::kInvalidArgument);
      continue;
    }
    ASSERT_EQ(VerifyInclusion(index, other, leaf, *proof, root).ok(),
              InclusionSides(index, other) == InclusionSides(index, size))
        << "other size " << other;
  }
}

void CheckConsistency(uint64_t old_size, uint64_t new_size, Leaves leaves,
                      const MemoryHashStore& store, bool flip_all_bits) {
  SCOPED_TRACE(Cat("old ", old_size, " new ", new_size));
  auto proof = ConsistencyProof(old_size, new_size, store);
  ASSERT_TRUE(proof.ok()) << proof.status();
  const MerkleHash old_root = NaiveMth(leaves.first(old_size));
  const MerkleHash new_root = NaiveMth(leaves.first(new_size));
  if (old_size > 0 && old_size < new_size && new_size <= kAllPairsUpTo) {
    ASSERT_EQ(*proof, NaiveSubproof(old_size, leaves.first(new_size), true));
  }
  ASSERT_TRUE(VerifyConsistency(old_size, new_size, old_root, new_root, *proof).ok());
  if (old_size == 0) return;  // consistent with anything by policy: nothing can be corrupted

  const std::vector<int> bits = BitsToFlip(flip_all_bits);
  for (size_t i = 0; i < proof->size(); ++i) {
    std::vector<MerkleHash> bad = *proof;
    for (int bit : bits) {
      bad[i] = Flipped((*proof)[i], bit);
      ASSERT_EQ(VerifyConsistency(old_size, new_size, old_root, new_root, bad).code(),
                absl::StatusCode::kFailedPrecondition)
          << "proof hash " << i << " bit " << bit;
    }
  }
  for (int bit : bits) {
    ASSERT_FALSE(
        VerifyConsistency(old_size, new_size, Flipped(old_root, bit), new_root, *proof).ok());
    ASSERT_FALSE(
        VerifyConsistency(old_size, new_size, old_root, Flipped(new_root, bit), *proof).ok());
  }
  // Any other old size fails, except 0, which is consistent with everything by policy.
  ASSERT_FALSE(VerifyConsistency(old_size + 1, new_size, old_root, new_root, *proof).ok());
  if (old_size > 1) {
    ASSERT_FALSE(VerifyConsistency(old_size - 1, new_size, old_root, new_root, *proof).ok());
  }
  // As with inclusion, a neighbouring new size verifies exactly when the proof has the same shape.
  for (uint64_t other : {new_size - 1, new_size + 1}) {
    if (other < old_size) {
      ASSERT_EQ(VerifyConsistency(old_size, other, old_root, new_root, *proof).code(),
                absl::StatusCode::kInvalidArgument);
      continue;
    }
    const bool same_shape =
        old_size < new_size && old_size < other &&
        ConsistencyShape(old_size, other, true) == ConsistencyShape(old_size, new_size, true);
    ASSERT_EQ(VerifyConsistency(old_size, other, old_root, new_root, *proof).ok(), same_shape)
        << "other size " << other;
  }
}

TEST(MerklePropertyTest, TreeHashEqualsRecursiveDefinition) {
  const std::vector<MerkleHash> leaves = TestLeafHashes(kAllPairsUpTo);
  MemoryHashStore store;
  for (uint64_t size = 0; size <= kAllPairsUpTo; ++size) {
    auto root = TreeHash(size, store);
    ASSERT_TRUE(root.ok()) << root.status();
    ASSERT_EQ(*root, NaiveMth(Leaves(leaves).first(size))) << "size " << size;
    if (size < kAllPairsUpTo) store.Append(leaves[size]);
  }
}

TEST(MerklePropertyTest, EveryInclusionProofUpTo70Verifies) {
  const std::vector<MerkleHash> leaves = TestLeafHashes(kAllPairsUpTo + 1);
  const MemoryHashStore store = StoreOf(leaves);  // one more leaf than the trees: for size + 1
  for (uint64_t size = 1; size <= kAllPairsUpTo; ++size) {
    const MerkleHash root = NaiveMth(Leaves(leaves).first(size));
    for (uint64_t index = 0; index < size; ++index) {
      CheckInclusion(index, size, leaves, store, root, /*flip_all_bits=*/size <= 8);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(MerklePropertyTest, EveryConsistencyProofUpTo70Verifies) {
  const std::vector<MerkleHash> leaves = TestLeafHashes(kAllPairsUpTo + 1);
  const MemoryHashStore store = StoreOf(leaves);
  for (uint64_t new_size = 0; new_size <= kAllPairsUpTo; ++new_size) {
    for (uint64_t old_size = 0; old_size <= new_size; ++old_size) {
      CheckConsistency(old_size, new_size, leaves, store, /*flip_all_bits=*/new_size <= 8);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(MerklePropertyTest, RandomLargerTreesUpTo5000) {
  constexpr uint64_t kMax = 5000;
  const std::vector<MerkleHash> leaves = TestLeafHashes(kMax + 1);
  const MemoryHashStore store = StoreOf(leaves);
  std::mt19937_64 rng(20240601);  // fixed seed: failures reproduce
  std::vector<uint64_t> sizes = {1023, 1024, 1025, 4096, kMax};
  for (int i = 0; i < 5; ++i)
    sizes.push_back(std::uniform_int_distribution<uint64_t>(71, kMax)(rng));
  for (uint64_t size : sizes) {
    SCOPED_TRACE(Cat("size ", size));
    const MerkleHash root = NaiveMth(Leaves(leaves).first(size));
    ASSERT_EQ(*TreeHash(size, store), root);
    // Every index verifies; a sample also goes through every corruption.
    for (uint64_t index = 0; index < size; ++index) {
      auto proof = InclusionProof(index, size, store);
      ASSERT_TRUE(proof.ok()) << proof.status();
      ASSERT_TRUE(VerifyInclusion(index, size, leaves[index], *proof, root).ok()) << index;
    }
    std::uniform_int_distribution<uint64_t> any_index(0, size - 1);
    for (uint64_t index : {uint64_t{0}, size - 1, any_index(rng), any_index(rng), any_index(rng)}) {
      CheckInclusion(index, size, leaves, store, root, /*flip_all_bits=*/false);
      if (::testing::Test::HasFatalFailure()) return;
      ASSERT_EQ(*InclusionProof(index, size, store), NaivePath(index, Leaves(leaves).first(size)));
    }
    std::uniform_int_distribution<uint64_t> any_old(1, size);
    for (int i = 0; i < 20; ++i) {
      CheckConsistency(any_old(rng), size, leaves, store, /*flip_all_bits=*/false);
      if (::testing::Test::HasFatalFailure()) return;
    }
    for (uint64_t old_size : {uint64_t{1}, size / 2, size - 1}) {
      if (old_size == 0) continue;
      ASSERT_EQ(*ConsistencyProof(old_size, size, store),
                NaiveSubproof(old_size, Leaves(leaves).first(size), true));
    }
  }
}

TEST(MerklePropertyTest, HugeTreesNeedNoOverflow) {
  // Identical leaves make any size cheap; this checks the index arithmetic at the top of uint64_t,
  // not the hashing (corruptions are meaningless when every subtree of a level is alike).
  constexpr uint64_t kTop = ~uint64_t{0};
  for (uint64_t size : {kTop, kTop - 1, uint64_t{1} << 63, (uint64_t{1} << 63) + 1}) {
    SCOPED_TRACE(Cat("size ", size));
    const UniformTreeReader reader(size);
    CountingReader counting(reader);
    auto root = TreeHash(size, counting);
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(counting.calls(), 1);
    EXPECT_EQ(counting.ids(), static_cast<size_t>(std::popcount(size)));
    auto range = CompactRange::FromStored(size, reader);
    ASSERT_TRUE(range.ok()) << range.status();
    EXPECT_EQ(range->Root(), *root);
    for (uint64_t index : {uint64_t{0}, size / 2, size - 2, size - 1}) {
      auto proof = InclusionProof(index, size, reader);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_TRUE(VerifyInclusion(index, size, reader.leaf_hash(), *proof, *root).ok()) << index;
    }
    for (uint64_t old_size : {uint64_t{1}, uint64_t{3}, size / 2 + 1, size - 1}) {
      auto proof = ConsistencyProof(old_size, size, reader);
      ASSERT_TRUE(proof.ok()) << proof.status();
      auto old_root = TreeHash(old_size, reader);
      ASSERT_TRUE(old_root.ok()) << old_root.status();
      EXPECT_TRUE(VerifyConsistency(old_size, size, *old_root, *root, *proof).ok()) << old_size;
    }
  }
}

// ---- CompactRange ------------------------------------------------------------------------------

TEST(MerkleCompactRangeTest, RootEqualsTreeHashAfterEveryAppend) {
  constexpr uint64_t kLeaves = 300;
  const std::vector<MerkleHash> leaves = TestLeafHashes(kLeaves);
  MemoryHashStore store;
  CompactRange range;
  EXPECT_EQ(range.size(), 0u);
  EXPECT_EQ(range.Root(), EmptyTreeHash());
  EXPECT_TRUE(range.hashes().empty());
  for (uint64_t i = 0; i < kLeaves; ++i) {
    range.Append(leaves[i]);
    store.Append(leaves[i]);
    ASSERT_EQ(range.size(), i + 1);
    ASSERT_EQ(store.size(), i + 1);
    ASSERT_EQ(range.hashes().size(), static_cast<size_t>(std::popcount(i + 1)));
    ASSERT_EQ(range.Root(), *TreeHash(i + 1, store)) << "size " << i + 1;
  }
}

TEST(MerkleCompactRangeTest, CompletedSubtreesAreExactlyWhatTheStoreHolds) {
  constexpr uint64_t kLeaves = 300;
  const std::vector<MerkleHash> leaves = TestLeafHashes(kLeaves);
  MemoryHashStore store;
  CompactRange range;
  std::set<std::pair<int, uint64_t>> seen;
  for (uint64_t i = 0; i < kLeaves; ++i) {
    std::vector<std::pair<SubtreeId, MerkleHash>> completed;
    range.Append(leaves[i], &completed);
    store.Append(leaves[i]);
    // The leaf, then one subtree per level it closes, bottom up.
    ASSERT_EQ(completed.size(), 1u + static_cast<size_t>(std::countr_one(i))) << i;
    for (size_t j = 0; j < completed.size(); ++j) {
      const auto& [id, hash] = completed[j];
      ASSERT_EQ(id, (SubtreeId{static_cast<int>(j), i >> j})) << i;
      auto stored = store.ReadHashes({&id, 1});
      ASSERT_TRUE(stored.ok()) << stored.status();
      ASSERT_EQ(stored->front(), hash) << "level " << id.level << " index " << id.index;
      ASSERT_TRUE(seen.insert({id.level, id.index}).second) << "reported twice";
    }
  }
  // Every complete subtree of the final tree was reported once.
  size_t complete = 0;
  for (int level = 0; (kLeaves >> level) > 0; ++level) complete += kLeaves >> level;
  EXPECT_EQ(seen.size(), complete);
  const SubtreeId incomplete{1, kLeaves / 2};
  EXPECT_EQ(store.ReadHashes({&incomplete, 1}).status().code(), absl::StatusCode::kNotFound);
}

TEST(MerkleCompactRangeTest, FromStoredResumesIdentically) {
  constexpr uint64_t kLeaves = 140;
  const std::vector<MerkleHash> leaves = TestLeafHashes(kLeaves);
  const MemoryHashStore store = StoreOf(leaves);
  CompactRange reference;
  std::vector<std::vector<std::pair<SubtreeId, MerkleHash>>> reference_completed(kLeaves);
  for (uint64_t i = 0; i < kLeaves; ++i) reference.Append(leaves[i], &reference_completed[i]);

  for (uint64_t cut = 0; cut <= kLeaves; ++cut) {
    SCOPED_TRACE(Cat("resumed at ", cut));
    auto resumed = CompactRange::FromStored(cut, store);
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    ASSERT_EQ(resumed->size(), cut);
    ASSERT_EQ(resumed->Root(), *TreeHash(cut, store));
    for (uint64_t i = cut; i < kLeaves; ++i) {
      std::vector<std::pair<SubtreeId, MerkleHash>> completed;
      resumed->Append(leaves[i], &completed);
      ASSERT_EQ(completed, reference_completed[i]) << "leaf " << i;
    }
    ASSERT_EQ(ToVector(resumed->hashes()), ToVector(reference.hashes()));
    ASSERT_EQ(resumed->Root(), reference.Root());
  }
}

TEST(MerkleCompactRangeTest, FromStoredPassesReaderErrorsThrough) {
  const MemoryHashStore store = StoreOf(TestLeafHashes(5));
  EXPECT_EQ(CompactRange::FromStored(6, store).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(CompactRange::FromStored(3, ShortReader()).status().code(),
            absl::StatusCode::kInternal);
}

// ---- Reading -----------------------------------------------------------------------------------

TEST(MerkleReadTest, EveryProofReadsStorageAtMostOnce) {
  constexpr uint64_t kLeaves = 100;
  const MemoryHashStore store = StoreOf(TestLeafHashes(kLeaves));
  CountingReader reader(store);
  for (uint64_t size = 0; size <= kLeaves; ++size) {
    reader.Reset();
    ASSERT_TRUE(TreeHash(size, reader).ok());
    ASSERT_EQ(reader.calls(), size == 0 ? 0 : 1) << "TreeHash " << size;
    reader.Reset();
    ASSERT_TRUE(CompactRange::FromStored(size, reader).ok());
    ASSERT_EQ(reader.calls(), size == 0 ? 0 : 1) << "FromStored " << size;
    for (uint64_t index = 0; index < size; ++index) {
      reader.Reset();
      auto proof = InclusionProof(index, size, reader);
      ASSERT_TRUE(proof.ok()) << proof.status();
      ASSERT_EQ(reader.calls(), proof->empty() ? 0 : 1) << "inclusion " << index << " " << size;
    }
    for (uint64_t old_size = 0; old_size <= size; ++old_size) {
      reader.Reset();
      auto proof = ConsistencyProof(old_size, size, reader);
      ASSERT_TRUE(proof.ok()) << proof.status();
      ASSERT_EQ(reader.calls(), proof->empty() ? 0 : 1)
          << "consistency " << old_size << " " << size;
    }
  }
}

TEST(MerkleReadTest, ReaderErrorsPassThrough) {
  const MemoryHashStore store = StoreOf(TestLeafHashes(5));
  EXPECT_EQ(TreeHash(8, store).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(InclusionProof(0, 8, store).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ConsistencyProof(3, 8, store).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(TreeHash(5, ShortReader()).status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(InclusionProof(0, 5, ShortReader()).status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace attest::consensus
