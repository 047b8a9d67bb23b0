#include "storage/log_tree.h"

#include "absl/status/status.h"
#include "consensus/text.h"

namespace attest::storage {

using consensus::kFullTileWidth;
using consensus::kTileHashBytes;
using consensus::kTileHeight;

int64_t TileRowId(const TileKey& key) {
  return static_cast<int64_t>((static_cast<uint64_t>(key.level) << 56) | key.index);
}

absl::StatusOr<LogTree> LogTree::Resume(uint64_t size, const consensus::TileFetcher& fetch) {
  LogTree tree;
  consensus::TileHashReader reader(size, fetch);
  auto range = consensus::CompactRange::FromStored(size, reader);
  if (!range.ok()) return range.status();
  tree.range_ = std::move(*range);
  // The growing tile of each level: the partial tile the size implies (none where it is full).
  std::vector<consensus::TileId> partial;
  for (int level = 0; level <= consensus::kMaxTileLevel; ++level) {
    const uint64_t shift = static_cast<uint64_t>(kTileHeight) * level;
    if (shift >= 64 || (size >> shift) == 0) break;  // no subtree of this level yet
    // The tile holding the next hash of this level; it exists (partial) unless that is 0 mod 256.
    auto tile = consensus::TileForSize(level, (size >> shift) / kFullTileWidth, size);
    if (tile.has_value() && !tile->full()) partial.push_back(*tile);
  }
  auto fetched = fetch(partial);
  if (!fetched.ok()) return fetched.status();
  if (fetched->size() != partial.size()) {
    return absl::InternalError("the tile reader returned a different number of tiles");
  }
  for (size_t i = 0; i < partial.size(); ++i) {
    const int level = partial[i].level;
    if (tree.growing_.size() <= static_cast<size_t>(level)) tree.growing_.resize(level + 1);
    tree.growing_[level] = std::move((*fetched)[i]);
  }
  return tree;
}

void LogTree::Append(const consensus::MerkleHash& leaf_hash) {
  std::vector<std::pair<consensus::SubtreeId, consensus::MerkleHash>> completed;
  range_.Append(leaf_hash, &completed);
  for (const auto& [id, hash] : completed) {
    if (id.level % kTileHeight != 0) continue;
    const int level = id.level / kTileHeight;
    if (growing_.size() <= static_cast<size_t>(level)) growing_.resize(level + 1);
    std::string& tile = growing_[level];
    tile.append(reinterpret_cast<const char*>(hash.data()), hash.size());
    const TileKey key{.level = level, .index = id.index / kFullTileWidth};
    changed_[key] = tile;
    if (tile.size() == kFullTileWidth * kTileHashBytes) tile.clear();  // stored full; the next starts
  }
}

std::vector<std::pair<TileKey, std::string>> LogTree::TakeChangedTiles() {
  std::vector<std::pair<TileKey, std::string>> out(std::make_move_iterator(changed_.begin()),
                                                   std::make_move_iterator(changed_.end()));
  changed_.clear();
  return out;
}

absl::StatusOr<std::string> TilePrefix(const consensus::TileId& tile, std::string_view stored) {
  const size_t bytes = static_cast<size_t>(tile.width) * kTileHashBytes;
  if (stored.size() < bytes) {
    return absl::OutOfRangeError(consensus::Cat("tile ", consensus::TilePath(tile),
                                                " is not in the log yet (it holds ",
                                                stored.size() / kTileHashBytes, " hashes)"));
  }
  return std::string(stored.substr(0, bytes));
}

}  // namespace attest::storage
