// LogTree: the writer's view of the node's log as tlog-tiles hash tiles: the frontier (compact
// range) for the root, and the rightmost, still growing tile of each tile level. Appending a leaf
// updates the tiles it completes; the store persists the tiles that changed in the same transaction
// as the entries. Only tiles are stored (about 32 bytes per entry), never every interior node: a
// node hash of a level between two tile levels is recomputed from the tile below when a proof needs
// it (consensus::TileHashReader).
//
// A value type (copy it to roll back a failed transaction); not synchronised.
#ifndef ATTEST_STORAGE_LOG_TREE_H_
#define ATTEST_STORAGE_LOG_TREE_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/merkle.h"
#include "consensus/tlog_tiles.h"

namespace attest::storage {

// Where a tile is stored: its level and index (the width follows from the log's size).
struct TileKey final {
  int level = 0;
  uint64_t index = 0;

  friend auto operator<=>(const TileKey&, const TileKey&) = default;
};

// One integer per tile, for a table keyed by integer: level in the top 8 bits.
int64_t TileRowId(const TileKey& key);

class LogTree final {
 public:
  LogTree() = default;

  // The tree of a log of `size` entries whose tiles `fetch` reads (at the widths `size` implies).
  static absl::StatusOr<LogTree> Resume(uint64_t size, const consensus::TileFetcher& fetch);

  uint64_t size() const { return range_.size(); }
  consensus::MerkleHash Root() const { return range_.Root(); }

  void Append(const consensus::MerkleHash& leaf_hash);

  // The tiles changed since the last call (each with all the hashes it holds now), and forgets
  // them.
  std::vector<std::pair<TileKey, std::string>> TakeChangedTiles();

 private:
  consensus::CompactRange range_;
  // Hashes of the rightmost tile of each tile level (its full ones are stored and done with).
  std::vector<std::string> growing_;  // by tile level
  std::map<TileKey, std::string> changed_;
};

// The bytes of `tile` (tile.width hashes) from a stored tile that holds at least that many.
// OUT_OF_RANGE when it holds fewer.
absl::StatusOr<std::string> TilePrefix(const consensus::TileId& tile, std::string_view stored);

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_LOG_TREE_H_
