#include "consensus/tlog_tiles.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "consensus/strict_decimal.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr std::string_view kTilePrefix = "tile/";
constexpr std::string_view kEntriesElement = "entries";
constexpr std::string_view kPartialSuffix = ".p";
// The longest canonical path ("tile/entries/x018/x446/x744/x073/x709/x551/615.p/255") has 52
// bytes; anything much longer is refused before it is split.
constexpr size_t kMaxTilePathLength = 64;
// 2^64 - 1 has 20 digits, so an index has at most 7 groups of 3.
constexpr int kMaxIndexGroups = 7;

// Number of hashes at Merkle level 8 * tile_level in a tree of `tree_size` leaves.
uint64_t HashesAtTileLevel(int tile_level, uint64_t tree_size) {
  const int shift = kTileHeight * tile_level;
  return shift >= 64 ? 0 : tree_size >> shift;
}

// Width of tile `index` at a level holding `count` hashes; 0 when the tile does not exist.
int WidthOf(uint64_t index, uint64_t count) {
  const uint64_t tiles = count / kFullTileWidth;
  if (index < tiles) return kFullTileWidth;
  if (index == tiles) return static_cast<int>(count % kFullTileWidth);
  return 0;
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

absl::Status PathError(std::string_view path, std::string_view problem) {
  return absl::InvalidArgumentError(Cat("tile path ", QuoteForError(path), ": ", problem));
}

}  // namespace

std::string TilePath(const TileId& tile) {
  std::string out(kTilePrefix);
  if (tile.entries) {
    out += Cat(kEntriesElement, "/");
  } else {
    out += Cat(tile.level, "/");
  }
  std::vector<int> groups;
  uint64_t n = tile.index;
  do {
    groups.push_back(static_cast<int>(n % 1000));
    n /= 1000;
  } while (n > 0);
  for (size_t i = groups.size(); i-- > 0;) {
    const int g = groups[i];
    if (i > 0) out.push_back('x');
    out.push_back(static_cast<char>('0' + g / 100));
    out.push_back(static_cast<char>('0' + g / 10 % 10));
    out.push_back(static_cast<char>('0' + g % 10));
    if (i > 0) out.push_back('/');
  }
  if (!tile.full()) out += Cat(kPartialSuffix, "/", tile.width);
  return out;
}

absl::StatusOr<TileId> ParseTilePath(std::string_view path) {
  if (path.size() > kMaxTilePathLength) {
    return PathError(
        path, Cat("is ", path.size(), " bytes long; no tile path exceeds ", kMaxTilePathLength));
  }
  if (path.substr(0, kTilePrefix.size()) != kTilePrefix) {
    return PathError(path, "does not start with 'tile/'");
  }
  std::vector<std::string_view> elements;
  for (std::string_view rest = path.substr(kTilePrefix.size());;) {
    const size_t slash = rest.find('/');
    elements.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }

  TileId tile;
  const std::string_view level = elements[0];
  if (level == kEntriesElement) {
    tile.entries = true;
  } else {
    const std::optional<uint64_t> value =
        level.size() <= 2 ? ParseStrictDecimal(level) : std::nullopt;
    if (!value.has_value() || *value > kMaxTileLevel) {
      return PathError(path, Cat("level ", QuoteForError(level),
                                 " is not 'entries' or a number 0..63 without leading zeros"));
    }
    tile.level = static_cast<int>(*value);
  }

  // Index groups: "x" + 3 digits, ..., then 3 digits, optionally followed by ".p" and a width.
  size_t i = 1;
  uint64_t index = 0;
  int groups = 0;
  auto add_group = [&](std::string_view digits) -> absl::Status {
    if (digits.size() != 3 || !AllDigits(digits)) {
      return PathError(path,
                       Cat("index element ", QuoteForError(digits),
                           " must be exactly 3 digits (with an 'x' before all but the last)"));
    }
    if (++groups > kMaxIndexGroups) {
      return PathError(path, Cat("index has more than ", kMaxIndexGroups, " groups"));
    }
    const uint64_t g =
        static_cast<uint64_t>((digits[0] - '0') * 100 + (digits[1] - '0') * 10 + (digits[2] - '0'));
    if (index > (UINT64_MAX - g) / 1000) return PathError(path, "index does not fit in 64 bits");
    index = index * 1000 + g;
    return absl::OkStatus();
  };
  for (; i < elements.size() && !elements[i].empty() && elements[i][0] == 'x'; ++i) {
    if (groups == 0 && elements[i] == "x000") {
      return PathError(path, "index starts with 'x000' (a leading zero group is not canonical)");
    }
    if (absl::Status s = add_group(elements[i].substr(1)); !s.ok()) return s;
  }
  if (i >= elements.size()) {
    return PathError(path, "has no final index element (3 digits without 'x')");
  }
  std::string_view last = elements[i];
  const bool partial = last.size() > kPartialSuffix.size() &&
                       last.substr(last.size() - kPartialSuffix.size()) == kPartialSuffix;
  if (partial) last.remove_suffix(kPartialSuffix.size());
  if (absl::Status s = add_group(last); !s.ok()) return s;
  ++i;
  tile.index = index;

  if (partial) {
    if (i >= elements.size()) return PathError(path, "has '.p' but no width after it");
    const std::string_view width = elements[i];
    const std::optional<uint64_t> value =
        width.size() <= 3 ? ParseStrictDecimal(width) : std::nullopt;
    if (!value.has_value() || *value < 1 || *value >= kFullTileWidth) {
      return PathError(path, Cat("width ", QuoteForError(width),
                                 " is not a number 1..255 without leading zeros"));
    }
    tile.width = static_cast<int>(*value);
    ++i;
  }
  if (i != elements.size()) {
    return PathError(path,
                     Cat("has ", QuoteForError(elements[i]), " after the end of a tile path"));
  }
  return tile;
}

std::optional<TileId> TileForSize(int level, uint64_t index, uint64_t tree_size) {
  if (level < 0 || level > kMaxTileLevel) return std::nullopt;
  const int width = WidthOf(index, HashesAtTileLevel(level, tree_size));
  if (width == 0) return std::nullopt;
  return TileId{.level = level, .index = index, .width = width};
}

std::vector<TileId> NewTilesForSize(uint64_t old_size, uint64_t new_size) {
  std::vector<TileId> tiles;
  if (new_size <= old_size) return tiles;
  for (int level = 0; HashesAtTileLevel(level, new_size) > 0; ++level) {
    const uint64_t old_count = HashesAtTileLevel(level, old_size);
    const uint64_t new_count = HashesAtTileLevel(level, new_size);
    // Tiles before old_count's last tile are full in both trees.
    for (uint64_t n = old_count / kFullTileWidth;; ++n) {
      const int width = WidthOf(n, new_count);
      if (width == 0) break;
      if (width != WidthOf(n, old_count)) {
        tiles.push_back(TileId{.level = level, .index = n, .width = width});
      }
    }
  }
  return tiles;
}

std::vector<TileId> TilesForSize(uint64_t size) { return NewTilesForSize(0, size); }

std::vector<SubtreeId> TileSubtrees(const TileId& tile) {
  std::vector<SubtreeId> ids;
  ids.reserve(static_cast<size_t>(tile.width));
  for (int i = 0; i < tile.width; ++i) {
    ids.push_back(SubtreeId{.level = kTileHeight * tile.level,
                            .index = tile.index * kFullTileWidth + static_cast<uint64_t>(i)});
  }
  return ids;
}

absl::StatusOr<std::string> EncodeEntryBundle(std::span<const std::string> entries) {
  if (entries.size() > static_cast<size_t>(kFullTileWidth)) {
    return absl::InvalidArgumentError(
        Cat("entry bundle of ", entries.size(), " entries; a bundle holds at most 256"));
  }
  size_t total = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].size() > kMaxLogEntrySize) {
      return absl::InvalidArgumentError(Cat("entry ", i, " of the bundle has ", entries[i].size(),
                                            " bytes; log entries are limited to 65535"));
    }
    total += 2 + entries[i].size();
  }
  std::string out;
  out.reserve(total);
  for (const std::string& entry : entries) {
    out.push_back(static_cast<char>(entry.size() >> 8));
    out.push_back(static_cast<char>(entry.size() & 0xFF));
    out += entry;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> DecodeEntryBundle(std::string_view bundle) {
  if (bundle.empty()) {
    return absl::InvalidArgumentError("entry bundle is empty; a bundle holds at least one entry");
  }
  std::vector<std::string> entries;
  size_t pos = 0;
  while (pos < bundle.size()) {
    if (entries.size() == static_cast<size_t>(kFullTileWidth)) {
      return absl::InvalidArgumentError(
          Cat("entry bundle has bytes after its 256th entry, at byte offset ", pos,
              "; a bundle holds at most 256 entries"));
    }
    if (bundle.size() - pos < 2) {
      return absl::InvalidArgumentError(Cat("entry bundle ends inside the length prefix of entry ",
                                            entries.size(), " (byte offset ", pos,
                                            "); was it truncated?"));
    }
    const size_t length = static_cast<size_t>(static_cast<unsigned char>(bundle[pos])) << 8 |
                          static_cast<unsigned char>(bundle[pos + 1]);
    pos += 2;
    if (bundle.size() - pos < length) {
      return absl::InvalidArgumentError(Cat("entry ", entries.size(), " of the bundle has length ",
                                            length, " but only ", bundle.size() - pos,
                                            " bytes follow; was it truncated?"));
    }
    entries.emplace_back(bundle.substr(pos, length));
    pos += length;
  }
  return entries;
}

TileHashReader::TileHashReader(uint64_t tree_size, TileFetcher fetch_tiles)
    : tree_size_(tree_size), fetch_tiles_(std::move(fetch_tiles)) {}

absl::StatusOr<std::vector<MerkleHash>> TileHashReader::ReadHashes(
    std::span<const SubtreeId> ids) const {
  // Where each requested hash comes from: a tile (by position in `tiles`) and the run of tile
  // hashes [first, first + 2^(level mod 8)) that hash up to it.
  struct Source {
    size_t tile = 0;
    uint64_t first = 0;
    int height = 0;
  };
  std::vector<TileId> tiles;
  std::map<std::pair<int, uint64_t>, size_t> tile_position;
  std::vector<Source> sources;
  sources.reserve(ids.size());
  for (const SubtreeId& id : ids) {
    if (id.level < 0 || id.level >= 64 || id.index >= (tree_size_ >> id.level)) {
      return absl::NotFoundError(Cat("subtree (level ", id.level, ", index ", id.index,
                                     ") is not a complete subtree of the tree of size ",
                                     tree_size_));
    }
    const int tile_level = id.level / kTileHeight;
    const int height = id.level % kTileHeight;
    // A complete subtree's 2^height hashes at the tile level lie in one tile, since 2^height
    // divides 256 and they are aligned.
    const uint64_t first = id.index << height;
    const uint64_t tile_index = first / kFullTileWidth;
    auto [it, inserted] = tile_position.try_emplace({tile_level, tile_index}, tiles.size());
    if (inserted) {
      // Exists, since the subtree is complete: HashesAtTileLevel > first + 2^height - 1.
      tiles.push_back(*TileForSize(tile_level, tile_index, tree_size_));
    }
    sources.push_back(Source{it->second, first % kFullTileWidth, height});
  }
  if (ids.empty()) return std::vector<MerkleHash>{};

  absl::StatusOr<std::vector<std::string>> data = fetch_tiles_(tiles);
  if (!data.ok()) return data.status();
  if (data->size() != tiles.size()) {
    return absl::InternalError(
        Cat("tile fetcher returned ", data->size(), " tiles for ", tiles.size(), " requested"));
  }
  for (size_t t = 0; t < tiles.size(); ++t) {
    const size_t want = static_cast<size_t>(tiles[t].width) * kTileHashBytes;
    if ((*data)[t].size() != want) {
      return absl::DataLossError(Cat("tile ", TilePath(tiles[t]), " has ", (*data)[t].size(),
                                     " bytes; expected ", want, " (", tiles[t].width,
                                     " hashes of 32 bytes)"));
    }
  }

  std::vector<MerkleHash> out;
  out.reserve(ids.size());
  std::vector<MerkleHash> level;
  for (const Source& source : sources) {
    const std::string& tile = (*data)[source.tile];
    const size_t count = size_t{1} << source.height;
    level.resize(count);
    for (size_t i = 0; i < count; ++i) {
      std::copy_n(tile.data() + (source.first + i) * kTileHashBytes, kTileHashBytes,
                  level[i].begin());
    }
    for (size_t n = count; n > 1; n /= 2) {
      for (size_t i = 0; i < n / 2; ++i) level[i] = NodeHash(level[2 * i], level[2 * i + 1]);
    }
    out.push_back(level[0]);
  }
  return out;
}

}  // namespace attest::consensus
