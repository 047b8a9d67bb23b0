#include "consensus/text.h"
#include "consensus/tlog_tiles.h"

#include <cstdint>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "consensus/encoding.h"
#include "consensus/merkle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadVector(std::string_view file) {
  return attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) + "/tlog/" +
                                        std::string(file));
}

TileId Full(int level, uint64_t index) { return TileId{.level = level, .index = index}; }
TileId Partial(int level, uint64_t index, int width) {
  return TileId{.level = level, .index = index, .width = width};
}

std::string Describe(const TileId& tile) {
  return Cat(tile.entries ? "entries" : Cat("L", tile.level), " N", tile.index, " W", tile.width);
}

// --- Paths -----------------------------------------------------------------------------------

TEST(TilePathTest, VectorsParseAndPrint) {
  std::istringstream lines(ReadVector("tile_paths.txt"));
  std::string line;
  int valid = 0;
  int invalid = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string kind, path;
    fields >> kind >> path;
    if (kind == "invalid") {
      ++invalid;
      absl::StatusOr<TileId> parsed = ParseTilePath(path);
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << path;
      continue;
    }
    ASSERT_EQ(kind, "valid") << line;
    ++valid;
    std::string level;
    uint64_t index = 0;
    int width = 0;
    fields >> level >> index >> width;
    TileId want{.index = index, .width = width};
    if (level == "entries") {
      want.entries = true;
    } else {
      want.level = std::stoi(level);
    }
    absl::StatusOr<TileId> parsed = ParseTilePath(path);
    ASSERT_TRUE(parsed.ok()) << path << ": " << parsed.status();
    EXPECT_EQ(*parsed, want) << path << " parsed as " << Describe(*parsed);
    EXPECT_EQ(TilePath(want), path);
  }
  EXPECT_GE(valid, 9);
  EXPECT_GE(invalid, 8);
}

TEST(TilePathTest, SpecIndexExample) {
  EXPECT_EQ(TilePath(Full(0, 1234067)), "tile/0/x001/x234/067");
  EXPECT_EQ(TilePath(TileId{.index = 1234067, .width = 5, .entries = true}),
            "tile/entries/x001/x234/067.p/5");
  EXPECT_EQ(TilePath(Full(3, 0)), "tile/3/000");
  EXPECT_EQ(TilePath(Full(0, 999)), "tile/0/999");
  EXPECT_EQ(TilePath(Full(0, 1000)), "tile/0/x001/000");
  EXPECT_EQ(TilePath(Full(0, UINT64_MAX)), "tile/0/x018/x446/x744/x073/x709/x551/615");
}

TEST(TilePathTest, RoundTripsOverManyValues) {
  std::set<uint64_t> indexes;
  for (uint64_t i = 0; i < 2100; ++i) indexes.insert(i);
  for (uint64_t p = 1; p <= UINT64_MAX / 1000; p *= 1000) {
    for (uint64_t k : {p, p - 1, p + 1, 999 * p, 1000 * p - 1}) indexes.insert(k);
  }
  for (int b = 0; b < 64; ++b) {
    const uint64_t p = uint64_t{1} << b;
    for (uint64_t k : {p, p - 1, p + 1}) indexes.insert(k);
  }
  indexes.insert(UINT64_MAX);
  indexes.insert(UINT64_MAX - 1);
  int checked = 0;
  for (uint64_t index : indexes) {
    for (int level : {0, 1, 7, 10, 63}) {
      for (int width : {1, 17, 255, 256}) {
        for (bool entries : {false, true}) {
          if (entries && level != 0) continue;
          const TileId tile{.level = level, .index = index, .width = width, .entries = entries};
          const std::string path = TilePath(tile);
          absl::StatusOr<TileId> parsed = ParseTilePath(path);
          ASSERT_TRUE(parsed.ok()) << path << ": " << parsed.status();
          ASSERT_EQ(*parsed, tile) << path;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(TilePathTest, RejectsNonCanonicalAndGarbagePaths) {
  struct Case {
    std::string path;
    std::string fragment;
  };
  const Case cases[] = {
      {"", "does not start with 'tile/'"},
      {"tile", "does not start with 'tile/'"},
      {"/tile/0/000", "does not start with 'tile/'"},
      {"TILE/0/000", "does not start with 'tile/'"},
      {"checkpoint", "does not start with 'tile/'"},
      {"tile/", "level ''"},
      {"tile/0", "no final index element"},
      {"tile/0/", "index element ''"},
      {"tile/00/000", "level '00'"},
      {"tile/01/000", "level '01'"},
      {"tile/64/000", "level '64'"},
      {"tile/100/000", "level '100'"},
      {"tile/-1/000", "level '-1'"},
      {"tile/+1/000", "level '+1'"},
      {"tile/1e1/000", "level '1e1'"},
      {"tile/ENTRIES/000", "level 'ENTRIES'"},
      {"tile/entry/000", "level 'entry'"},
      {"tile/0/1", "index element '1' must be exactly 3 digits"},
      {"tile/0/01", "index element '01'"},
      {"tile/0/0001", "index element '0001'"},
      {"tile/0/00a", "index element '00a'"},
      {"tile/0/x1/000", "index element '1'"},
      {"tile/0/xabc/000", "index element 'abc'"},
      {"tile/0/x001", "no final index element"},
      {"tile/0/x001/", "index element ''"},
      {"tile/0/001/x002", "has 'x002' after the end"},
      {"tile/0/x000/001", "leading zero group"},
      {"tile/0/x000/000", "leading zero group"},
      {"tile/0/x018/x446/x744/x073/x709/x551/616", "does not fit in 64 bits"},
      {"tile/0/x999/x999/x999/x999/x999/x999/999", "does not fit in 64 bits"},
      {"tile/0/x001/x001/x001/x001/x001/x001/x001/000", "more than 7 groups"},
      {"tile/0//000", "index element ''"},
      {"tile/0/./000", "index element '.'"},
      {"tile/0/../000", "index element '..'"},
      {"tile/../0/000", "level '..'"},
      {"tile/entries/../0/000", "index element '..'"},
      {"tile/0/000/", "has '' after the end"},
      {"tile/0/000/..", "has '..' after the end"},
      {"tile/0/000.p", "has '.p' but no width"},
      {"tile/0/000.p/", "width ''"},
      {"tile/0/000.p/0", "width '0'"},
      {"tile/0/000.p/05", "width '05'"},
      {"tile/0/000.p/256", "width '256'"},
      {"tile/0/000.p/1000", "width '1000'"},
      {"tile/0/000.p/-1", "width '-1'"},
      {"tile/0/000.p/5/", "has '' after the end"},
      {"tile/0/000.p/5/6", "has '6' after the end"},
      {"tile/0/000.q/5", "index element '000.q'"},
      {"tile/0/000.p.p/5", "index element '000.p'"},
      {"tile/0/x000.p/5", "index element '000.p'"},
      {"tile/0/x001.p/000", "index element '001.p'"},
      {"tile/0/000 ", "index element '000 '"},
      {"tile/0/000%2F", "index element '000%2F'"},
      {"tile/0/000\n", "index element '000\\n'"},
      {std::string("tile/0/000\0", 11), "index element '000\\x00'"},
      {"tile/0/000?x=1", "index element '000?x=1'"},
      {"tile/0/" + std::string(100, '0'), "bytes long"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<TileId> parsed = ParseTilePath(c.path);
    ASSERT_FALSE(parsed.ok()) << "accepted " << absl::CHexEscape(c.path);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(c.fragment))
        << absl::CHexEscape(c.path);
  }
}

TEST(TilePathTest, MutatedPathsParseOnlyWhenCanonical) {
  // Whatever the parser accepts must print back to the same bytes: no two paths name one tile.
  std::mt19937_64 rng(20240501);
  const std::string alphabet = "0123456789x./pentriesl-+ \0\xff";
  const std::vector<std::string> seeds = {"tile/0/x001/x234/067", "tile/entries/273.p/112",
                                          "tile/63/x018/x446/x744/x073/x709/x551/615.p/255",
                                          "tile/1/001.p/17"};
  int accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string path = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % (path.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0:
          path.insert(pos, 1, c);
          break;
        case 1:
          if (pos < path.size()) path.erase(pos, 1);
          break;
        default:
          if (pos < path.size()) path[pos] = c;
          break;
      }
    }
    absl::StatusOr<TileId> parsed = ParseTilePath(path);
    if (!parsed.ok()) {
      ASSERT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      continue;
    }
    ++accepted;
    ASSERT_EQ(TilePath(*parsed), path) << absl::CHexEscape(path);
    ASSERT_GE(parsed->level, 0);
    ASSERT_LE(parsed->level, kMaxTileLevel);
    ASSERT_GE(parsed->width, 1);
    ASSERT_LE(parsed->width, kFullTileWidth);
  }
  EXPECT_GT(accepted, 100);
}

// --- Which tiles a size implies --------------------------------------------------------------

TEST(TilesForSizeTest, SpecExampleOfSeventyThousandLeaves) {
  const std::vector<TileId> tiles = TilesForSize(70000);
  std::vector<TileId> want;
  for (uint64_t n = 0; n < 273; ++n) want.push_back(Full(0, n));
  want.push_back(Partial(0, 273, 112));
  want.push_back(Full(1, 0));
  want.push_back(Partial(1, 1, 17));
  want.push_back(Partial(2, 0, 1));
  EXPECT_EQ(tiles, want);
  EXPECT_EQ(TilePath(tiles[273]), "tile/0/273.p/112");
  EXPECT_EQ(TilePath(tiles[275]), "tile/1/001.p/17");
  EXPECT_EQ(TilePath(tiles[276]), "tile/2/000.p/1");
}

TEST(TilesForSizeTest, SmallSizes) {
  EXPECT_TRUE(TilesForSize(0).empty());
  EXPECT_THAT(TilesForSize(1), ElementsAre(Partial(0, 0, 1)));
  EXPECT_THAT(TilesForSize(255), ElementsAre(Partial(0, 0, 255)));
  // The spec: a tree of size 256 is a full level 0 tile and a partial level 1 tile of width 1.
  EXPECT_THAT(TilesForSize(256), ElementsAre(Full(0, 0), Partial(1, 0, 1)));
  EXPECT_THAT(TilesForSize(257), ElementsAre(Full(0, 0), Partial(0, 1, 1), Partial(1, 0, 1)));
  EXPECT_THAT(TilesForSize(65536), ::testing::Contains(Partial(2, 0, 1)));
  EXPECT_EQ(TilesForSize(65536).size(), 256u + 1u + 1u);
}

TEST(TilesForSizeTest, TileForSizeAgreesWithTheList) {
  for (uint64_t size : {uint64_t{1}, uint64_t{255}, uint64_t{256}, uint64_t{257}, uint64_t{70000},
                        uint64_t{65535}, uint64_t{65536}, uint64_t{65537}, uint64_t{131071}}) {
    const std::vector<TileId> tiles = TilesForSize(size);
    for (const TileId& tile : tiles) {
      EXPECT_EQ(TileForSize(tile.level, tile.index, size), tile) << size << " " << Describe(tile);
    }
    // Just past the last tile of each level, and above the top level: nothing.
    for (int level = 0; level <= kMaxTileLevel; ++level) {
      uint64_t count = 0;
      for (const TileId& tile : tiles) count += tile.level == level ? 1 : 0;
      EXPECT_EQ(TileForSize(level, count, size), std::nullopt) << size << " level " << level;
    }
  }
  EXPECT_EQ(TileForSize(0, 273, 70000), Partial(0, 273, 112));
  EXPECT_EQ(TileForSize(0, 272, 70000), Full(0, 272));
  EXPECT_EQ(TileForSize(1, 1, 70000), Partial(1, 1, 17));
  EXPECT_EQ(TileForSize(3, 0, 70000), std::nullopt);
  EXPECT_EQ(TileForSize(-1, 0, 70000), std::nullopt);
  EXPECT_EQ(TileForSize(64, 0, 70000), std::nullopt);
  EXPECT_EQ(TileForSize(0, 0, 0), std::nullopt);
  EXPECT_EQ(TileForSize(0, UINT64_MAX, UINT64_MAX), std::nullopt);
  // The largest trees: 2^63 - 1 leaves reach tile level 7 (2^56 leaves per hash there).
  const uint64_t max = (uint64_t{1} << 63) - 1;
  EXPECT_EQ(TileForSize(7, 0, max), Partial(7, 0, 127));
  EXPECT_EQ(TileForSize(8, 0, UINT64_MAX), std::nullopt);
  EXPECT_EQ(TileForSize(0, (max >> 8), max), Partial(0, max >> 8, 255));
}

TEST(TilesForSizeTest, NewTilesAreTheDifference) {
  const std::vector<uint64_t> sizes = {0,   1,    2,    100,  101,   255,   256,   257,   511,  512,
                                       513, 1023, 1025, 4096, 65535, 65536, 65537, 66000, 70000};
  for (uint64_t old_size : sizes) {
    for (uint64_t new_size : sizes) {
      const std::vector<TileId> got = NewTilesForSize(old_size, new_size);
      if (new_size <= old_size) {
        EXPECT_TRUE(got.empty()) << old_size << " -> " << new_size;
        continue;
      }
      std::vector<TileId> want;
      const std::vector<TileId> before = TilesForSize(old_size);
      for (const TileId& tile : TilesForSize(new_size)) {
        if (std::find(before.begin(), before.end(), tile) == before.end()) want.push_back(tile);
      }
      EXPECT_EQ(got, want) << old_size << " -> " << new_size;
    }
  }
  EXPECT_THAT(NewTilesForSize(100, 101), ElementsAre(Partial(0, 0, 101)));
  EXPECT_THAT(NewTilesForSize(255, 256), ElementsAre(Full(0, 0), Partial(1, 0, 1)));
}

TEST(TilesForSizeTest, TileSubtreesNameTheStoredHashes) {
  EXPECT_THAT(TileSubtrees(Partial(0, 2, 3)),
              ElementsAre(SubtreeId{0, 512}, SubtreeId{0, 513}, SubtreeId{0, 514}));
  const std::vector<SubtreeId> level1 = TileSubtrees(Full(1, 1));
  ASSERT_EQ(level1.size(), 256u);
  EXPECT_EQ(level1.front(), (SubtreeId{8, 256}));
  EXPECT_EQ(level1.back(), (SubtreeId{8, 511}));
}

// --- Entry bundles ---------------------------------------------------------------------------

TEST(EntryBundleTest, RoundTrips) {
  const std::vector<std::vector<std::string>> cases = {
      {""},
      {"a"},
      {"", "", ""},
      {std::string(kMaxLogEntrySize, 'x'), "tail"},
      {std::string("\x01\0\xff", 3), "\x02payload"},
      std::vector<std::string>(256, "entry"),
  };
  for (const std::vector<std::string>& entries : cases) {
    absl::StatusOr<std::string> bundle = EncodeEntryBundle(entries);
    ASSERT_TRUE(bundle.ok()) << bundle.status();
    absl::StatusOr<std::vector<std::string>> decoded = DecodeEntryBundle(*bundle);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, entries);
  }
  const std::vector<std::string> two = {"ab", ""};
  EXPECT_EQ(*EncodeEntryBundle(two), std::string("\0\x02"
                                                 "ab\0\0",
                                                 6));
  const std::vector<std::string> long_entry = {std::string(0x1234, 'z')};
  EXPECT_EQ(EncodeEntryBundle(long_entry)->substr(0, 2), "\x12\x34");
}

TEST(EntryBundleTest, EncodeRefusesWhatCannotBeABundle) {
  const std::vector<std::string> too_long = {"ok", std::string(kMaxLogEntrySize + 1, 'x')};
  absl::StatusOr<std::string> long_entry = EncodeEntryBundle(too_long);
  EXPECT_EQ(long_entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(long_entry.status().message()),
              HasSubstr("entry 1 of the bundle has 65536"));
  const std::vector<std::string> too_many(257, "e");
  absl::StatusOr<std::string> many = EncodeEntryBundle(too_many);
  EXPECT_EQ(many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(many.status().message()), HasSubstr("at most 256"));
}

TEST(EntryBundleTest, DecodeRejectsMalformedBundles) {
  std::string full;
  for (int i = 0; i < 256; ++i)
    full += std::string(
        "\0\x01"
        "e",
        3);
  ASSERT_TRUE(DecodeEntryBundle(full).ok());
  struct Case {
    std::string bundle;
    std::string fragment;
  };
  const Case cases[] = {
      {"", "empty"},
      {std::string("\0", 1), "ends inside the length prefix of entry 0"},
      {std::string("\0\x01"
                   "a\0",
                   4),
       "ends inside the length prefix of entry 1 (byte offset 3)"},
      {std::string("\0\x02"
                   "a",
                   3),
       "entry 0 of the bundle has length 2 but only 1 bytes follow"},
      {std::string("\xff\xff", 2), "length 65535 but only 0 bytes follow"},
      {std::string("\0\x01"
                   "a\0\x05"
                   "abc",
                   8),
       "entry 1 of the bundle has length 5 but only 3"},
      {full + std::string("\0\0", 2), "after its 256th entry"},
      {full + "x", "after its 256th entry"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<std::string>> decoded = DecodeEntryBundle(c.bundle);
    ASSERT_FALSE(decoded.ok()) << absl::CHexEscape(c.bundle);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(c.fragment));
  }
}

// --- TileHashReader --------------------------------------------------------------------------

// A log held naively: every complete subtree hash, level by level, computed with NodeHash.
class NaiveTree {
 public:
  explicit NaiveTree(uint64_t size) {
    levels_.emplace_back();
    for (uint64_t i = 0; i < size; ++i) levels_[0].push_back(LeafHash(Cat("leaf ", i)));
    while (levels_.back().size() > 1) {
      const std::vector<MerkleHash>& below = levels_.back();
      std::vector<MerkleHash> above;
      for (size_t i = 0; i + 1 < below.size(); i += 2)
        above.push_back(NodeHash(below[i], below[i + 1]));
      levels_.push_back(std::move(above));
    }
  }

  const std::vector<std::vector<MerkleHash>>& levels() const { return levels_; }

  // The tile's bytes, built from the stored hashes TileSubtrees names.
  std::string TileBytes(const TileId& tile) const {
    std::string out;
    for (const SubtreeId& id : TileSubtrees(tile)) {
      const MerkleHash& h = levels_.at(static_cast<size_t>(id.level)).at(id.index);
      out.append(reinterpret_cast<const char*>(h.data()), h.size());
    }
    return out;
  }

  // RFC 6962 MTH of the first n leaves, by the definition (largest power of two below n).
  MerkleHash Root(uint64_t begin, uint64_t n) const {
    if (n == 1) return levels_[0][begin];
    uint64_t k = 1;
    while (k * 2 < n) k *= 2;
    return NodeHash(Root(begin, k), Root(begin + k, n - k));
  }

 private:
  std::vector<std::vector<MerkleHash>> levels_;
};

// Serves tiles from a NaiveTree and records every call.
struct RecordingFetcher {
  const NaiveTree* tree;
  std::vector<std::vector<TileId>>* calls;

  absl::StatusOr<std::vector<std::string>> operator()(std::span<const TileId> tiles) const {
    calls->emplace_back(tiles.begin(), tiles.end());
    std::vector<std::string> out;
    for (const TileId& tile : tiles) out.push_back(tree->TileBytes(tile));
    return out;
  }
};

std::vector<SubtreeId> AllStoredSubtrees(uint64_t size) {
  std::vector<SubtreeId> ids;
  for (int level = 0; level < 64 && (size >> level) > 0; ++level) {
    for (uint64_t i = 0; i < (size >> level); ++i) ids.push_back(SubtreeId{level, i});
  }
  return ids;
}

void ExpectRequestsAreImpliedAndUnique(const std::vector<TileId>& call, uint64_t size) {
  std::set<std::tuple<int, uint64_t>> seen;
  for (const TileId& tile : call) {
    EXPECT_TRUE(seen.insert({tile.level, tile.index}).second)
        << "fetched twice: " << Describe(tile);
    EXPECT_EQ(TileForSize(tile.level, tile.index, size), tile) << "not implied: " << Describe(tile);
  }
}

TEST(TileHashReaderTest, EveryStoredHashMatchesTheNaiveTree) {
  const NaiveTree tree(70000);
  for (uint64_t size :
       {1, 2, 3, 7, 8, 9, 255, 256, 257, 511, 512, 600, 65535, 65536, 65537, 70000}) {
    std::vector<std::vector<TileId>> calls;
    const TileHashReader reader(size, RecordingFetcher{&tree, &calls});
    const std::vector<SubtreeId> ids = AllStoredSubtrees(size);
    absl::StatusOr<std::vector<MerkleHash>> hashes = reader.ReadHashes(ids);
    ASSERT_TRUE(hashes.ok()) << size << ": " << hashes.status();
    ASSERT_EQ(hashes->size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_EQ((*hashes)[i], tree.levels()[static_cast<size_t>(ids[i].level)][ids[i].index])
          << "size " << size << " subtree (" << ids[i].level << ", " << ids[i].index << ")";
    }
    ASSERT_EQ(calls.size(), 1u) << "one fetch per ReadHashes call";
    ExpectRequestsAreImpliedAndUnique(calls[0], size);
    // Reading everything needs exactly the tiles the size implies.
    std::vector<TileId> sorted = calls[0];
    std::sort(sorted.begin(), sorted.end(), [](const TileId& a, const TileId& b) {
      return std::tie(a.level, a.index) < std::tie(b.level, b.index);
    });
    EXPECT_EQ(sorted, TilesForSize(size)) << size;
  }
}

TEST(TileHashReaderTest, SingleReadsAtSmallSizes) {
  const NaiveTree tree(600);
  std::vector<uint64_t> sizes;
  for (uint64_t size = 1; size <= 40; ++size) sizes.push_back(size);
  for (uint64_t size : {63, 64, 65, 127, 128, 129, 255, 256, 257, 300, 511, 512, 513, 600}) {
    sizes.push_back(size);
  }
  for (uint64_t size : sizes) {
    std::vector<std::vector<TileId>> calls;
    const TileHashReader reader(size, RecordingFetcher{&tree, &calls});
    for (const SubtreeId& id : AllStoredSubtrees(size)) {
      absl::StatusOr<std::vector<MerkleHash>> hash = reader.ReadHashes(std::span(&id, 1));
      ASSERT_TRUE(hash.ok()) << hash.status();
      ASSERT_EQ(hash->size(), 1u);
      ASSERT_EQ((*hash)[0], tree.levels()[static_cast<size_t>(id.level)][id.index])
          << "size " << size << " subtree (" << id.level << ", " << id.index << ")";
      ASSERT_EQ(calls.back().size(), 1u);
      ExpectRequestsAreImpliedAndUnique(calls.back(), size);
    }
  }
}

TEST(TileHashReaderTest, RootsAndProofsFromTilesMatchTheDefinition) {
  // How a follower (or a node serving proofs from stored tiles) uses it: merkle.h computes roots
  // and proofs from any HashReader.
  const NaiveTree tree(1000);
  for (uint64_t size : {1, 5, 8, 255, 256, 257, 999, 1000}) {
    std::vector<std::vector<TileId>> calls;
    const TileHashReader reader(size, RecordingFetcher{&tree, &calls});
    absl::StatusOr<MerkleHash> root = TreeHash(size, reader);
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(*root, tree.Root(0, size)) << size;

    for (uint64_t index : {uint64_t{0}, size / 2, size - 1}) {
      absl::StatusOr<std::vector<MerkleHash>> proof = InclusionProof(index, size, reader);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_TRUE(VerifyInclusion(index, size, tree.levels()[0][index], *proof, *root).ok())
          << index << " in " << size;
    }
    for (uint64_t old_size : {uint64_t{1}, size / 2 + 1, size}) {
      absl::StatusOr<std::vector<MerkleHash>> proof = ConsistencyProof(old_size, size, reader);
      ASSERT_TRUE(proof.ok()) << proof.status();
      EXPECT_TRUE(VerifyConsistency(old_size, size, tree.Root(0, old_size), *root, *proof).ok())
          << old_size << " -> " << size;
    }
    // Seven reads, at most one fetch each (none when no stored hash is needed).
    EXPECT_LE(calls.size(), 7u) << size;
    for (const std::vector<TileId>& call : calls) ExpectRequestsAreImpliedAndUnique(call, size);
  }
}

TEST(TileHashReaderTest, EightLeafTestTreeRoot) {
  // RFC 6962 test tree (reference section 8, row 2): its size-8 root, read through tiles.
  const std::vector<std::string> leaves_hex = {"",
                                               "00",
                                               "10",
                                               "2021",
                                               "3031",
                                               "40414243",
                                               "5051525354555657",
                                               "606162636465666768696a6b6c6d6e6f"};
  std::string tile;
  for (const std::string& hex : leaves_hex) {
    const std::vector<uint8_t> bytes = *HexDecode(hex);
    const MerkleHash h = LeafHash(std::string(bytes.begin(), bytes.end()));
    tile.append(reinterpret_cast<const char*>(h.data()), h.size());
  }
  const TileHashReader reader(
      8, [&](std::span<const TileId> tiles) -> absl::StatusOr<std::vector<std::string>> {
        EXPECT_EQ(tiles.size(), 1u);
        EXPECT_EQ(tiles[0], Partial(0, 0, 8));
        return std::vector<std::string>{tile};
      });
  const SubtreeId root_id{3, 0};
  absl::StatusOr<std::vector<MerkleHash>> root = reader.ReadHashes(std::span(&root_id, 1));
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(HexEncode((*root)[0]),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
}

TEST(TileHashReaderTest, Errors) {
  const NaiveTree tree(300);
  std::vector<std::vector<TileId>> calls;
  const TileHashReader reader(300, RecordingFetcher{&tree, &calls});

  // Subtrees that are not complete within the tree.
  for (SubtreeId id : {SubtreeId{0, 300}, SubtreeId{8, 1}, SubtreeId{9, 0}, SubtreeId{2, 75},
                       SubtreeId{-1, 0}, SubtreeId{64, 0}, SubtreeId{0, UINT64_MAX}}) {
    absl::StatusOr<std::vector<MerkleHash>> r = reader.ReadHashes(std::span(&id, 1));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << id.level << " " << id.index;
  }
  EXPECT_TRUE(calls.empty()) << "nothing is fetched for a request that cannot be answered";

  // No ids, no fetch.
  absl::StatusOr<std::vector<MerkleHash>> none = reader.ReadHashes({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_TRUE(calls.empty());

  const SubtreeId leaf{0, 299};
  // Fetch errors pass through unchanged.
  const TileHashReader unavailable(
      300, [](std::span<const TileId>) -> absl::StatusOr<std::vector<std::string>> {
        return absl::UnavailableError("peer down");
      });
  absl::StatusOr<std::vector<MerkleHash>> down = unavailable.ReadHashes(std::span(&leaf, 1));
  EXPECT_EQ(down.status(), absl::UnavailableError("peer down"));

  // A fetcher returning the wrong number of tiles is a bug.
  const TileHashReader miscounted(
      300, [](std::span<const TileId>) -> absl::StatusOr<std::vector<std::string>> {
        return std::vector<std::string>{};
      });
  EXPECT_EQ(miscounted.ReadHashes(std::span(&leaf, 1)).status().code(),
            absl::StatusCode::kInternal);

  // A tile of the wrong length (a peer serving the full tile, or a truncated one).
  for (size_t length : {size_t{0}, size_t{44 * 32 - 1}, size_t{44 * 32 + 1}, size_t{256 * 32}}) {
    const TileHashReader wrong(
        300, [&](std::span<const TileId> tiles) -> absl::StatusOr<std::vector<std::string>> {
          EXPECT_EQ(tiles[0], Partial(0, 1, 44));
          return std::vector<std::string>{std::string(length, 'h')};
        });
    absl::StatusOr<std::vector<MerkleHash>> r = wrong.ReadHashes(std::span(&leaf, 1));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << length;
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr(Cat("tile tile/0/001.p/44 has ", length, " bytes; expected 1408")));
  }
}

}  // namespace
}  // namespace attest::consensus
