// Tile paths from HTTP requests and peers' URLs (consensus::ParseTilePath): strict, so an accepted
// path is the canonical TilePath of what it parsed to, and the id is within the documented ranges.
#include <cstddef>
#include <cstdint>

#include "consensus/tlog_tiles.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  const std::string_view input = attest::fuzz::AsText(data, size);
  absl::StatusOr<TileId> tile = ParseTilePath(input);
  if (!tile.ok()) return 0;
  FUZZ_CHECK(tile->level >= 0 && tile->level <= kMaxTileLevel, input);
  FUZZ_CHECK(tile->width >= 1 && tile->width <= kFullTileWidth, input);
  FUZZ_CHECK(!tile->entries || tile->level == 0, input);
  FUZZ_CHECK(TilePath(*tile) == input, TilePath(*tile));
  if (!tile->entries) FUZZ_CHECK(TileSubtrees(*tile).size() == static_cast<size_t>(tile->width), input);
  return 0;
}
