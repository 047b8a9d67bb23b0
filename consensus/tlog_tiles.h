// Tiled transparency logs (C2SP tlog-tiles@v0.1.0): tile paths, which tiles a tree size implies,
// entry bundles, and a HashReader that answers from tiles.
//
// A tile is 8 levels of the RFC 6962 tree. Hash tile N at tile level L of width W (1..256; 256 =
// full) holds the hashes of SubtreeId{8 * L, N * 256 + i} for i < W, 32 bytes each, concatenated.
// Entry bundle N holds entries [N * 256, N * 256 + W), each as uint16 big-endian length || bytes;
// its entries hash (LeafHash) to level-0 tile N. The width of the tile at level L for a tree of
// size s is 256 for all tiles but the last, which has floor(s / 256^L) mod 256 hashes (and does not
// exist when that is 0). Partial tiles are never hashed into the level above.
//
// Paths (what follows the log's URL prefix; every node serves them under "/log/"):
//   tile/<L>/<N>[.p/<W>]        hash tiles, L in 0..63
//   tile/entries/<N>[.p/<W>]    entry bundles
// N is written in 3-digit groups, all but the last prefixed with 'x': 1234067 -> x001/x234/067.
//
// Pure functions and value types; thread-safe. TileHashReader is as thread-safe as its fetcher.
#ifndef ATTEST_CONSENSUS_TLOG_TILES_H_
#define ATTEST_CONSENSUS_TLOG_TILES_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/merkle.h"

namespace attest::consensus {

inline constexpr int kTileHeight = 8;
inline constexpr int kFullTileWidth = 256;  // hashes (or entries) in a full tile
inline constexpr int kMaxTileLevel = 63;
inline constexpr size_t kTileHashBytes = 32;
// Entries are length-prefixed with a uint16 in bundles.
inline constexpr size_t kMaxLogEntrySize = 65535;

struct TileId final {
  int level = 0;       // tile level, 0..63 (a tile level L holds Merkle level 8 * L); 0 for entries
  uint64_t index = 0;  // N
  int width = kFullTileWidth;  // 1..256; below 256 = a partial tile (".p/<W>")
  bool entries = false;        // an entry bundle (tile/entries/...) rather than a hash tile

  bool full() const { return width == kFullTileWidth; }
  friend bool operator==(const TileId&, const TileId&) = default;
};

// "tile/<L>/<N>[.p/<W>]" or "tile/entries/<N>[.p/<W>]". Precondition: level in 0..63, width in
// 1..256 (TileForSize, TilesForSize and ParseTilePath only produce such ids).
std::string TilePath(const TileId& tile);

// Strict inverse of TilePath, for request paths from the network. INVALID_ARGUMENT, saying which
// element is wrong, unless `path` is exactly a canonical tile path: no leading zeros in L or W, L
// in 0..63, W in 1..255, every index group exactly 3 digits with 'x' on all but the last, no
// leading "x000" group, an index that fits in 64 bits, no empty, "." or ".." elements, nothing
// after W.
absl::StatusOr<TileId> ParseTilePath(std::string_view path);

// The hash tile at tile `level` (0..63) holding tile `index`, with the width it has in a tree of
// `tree_size` leaves; nullopt when that tree has no such tile (the level or index is beyond it).
std::optional<TileId> TileForSize(int level, uint64_t index, uint64_t tree_size);

// Every hash tile a tree of `size` leaves implies, full and partial, level by level, by index. The
// list has about size / 255 entries: meant for tests and small trees; followers want
// NewTilesForSize.
std::vector<TileId> TilesForSize(uint64_t size);
// The hash tiles of a tree of `new_size` leaves that a tree of `old_size` leaves does not have (new
// tiles, or tiles that grew wider): what a follower fetches after verifying a larger checkpoint.
// Empty when new_size <= old_size.
std::vector<TileId> NewTilesForSize(uint64_t old_size, uint64_t new_size);

// The subtrees whose hashes make up a hash tile, in order: SubtreeId{8 * level, index * 256 + i}
// for i < width. A node serves a tile by reading these from its stored hashes and concatenating
// them. Precondition: !tile.entries and a valid level and width.
std::vector<SubtreeId> TileSubtrees(const TileId& tile);

// uint16 big-endian length || entry, for each entry. INVALID_ARGUMENT when an entry exceeds
// kMaxLogEntrySize (the message gives its position) or there are more than 256 entries.
absl::StatusOr<std::string> EncodeEntryBundle(std::span<const std::string> entries);
// Strict inverse of EncodeEntryBundle: INVALID_ARGUMENT when the bundle is empty (empty tiles do
// not exist), a length prefix or an entry is truncated, or it holds more than 256 entries. Empty
// entries (length 0) are valid, as in the spec. The caller compares the count with the width it
// asked for.
absl::StatusOr<std::vector<std::string>> DecodeEntryBundle(std::string_view bundle);

// Fetches the bytes of the given tiles, in order (from local storage, or from a peer over HTTP).
// Errors are passed through unchanged.
using TileFetcher =
    std::function<absl::StatusOr<std::vector<std::string>>(std::span<const TileId> tiles)>;

// Answers ReadHashes for complete subtrees of a tree of `tree_size` leaves from that tree's tiles:
// the hash of SubtreeId{level, index} is computed from the tile at tile level floor(level / 8) by
// hashing up the remaining level mod 8 levels. Only tiles implied by `tree_size` are requested,
// each at the width that size gives it, and each ReadHashes call makes one fetcher call (each tile
// once). The tiles are not checked against a root hash: a caller reading from an untrusted peer
// must check what it derives from them (a root, a proof) against a verified checkpoint of
// `tree_size`.
//
// ReadHashes returns NOT_FOUND for a subtree that is not complete within the tree (or has a level
// outside 0..63), INTERNAL when the fetcher returns a different number of tiles than asked for,
// DATA_LOSS when a tile does not have exactly width * 32 bytes, and fetcher errors unchanged.
class TileHashReader final : public HashReader {
 public:
  TileHashReader(uint64_t tree_size, TileFetcher fetch_tiles);

  absl::StatusOr<std::vector<MerkleHash>> ReadHashes(std::span<const SubtreeId> ids) const override;

  uint64_t tree_size() const { return tree_size_; }

 private:
  uint64_t tree_size_;
  TileFetcher fetch_tiles_;
};

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_TLOG_TILES_H_
