// Hash tile contents from a peer (consensus::TileHashReader): a tree size, then tile bytes handed
// out in the order the reader asks for them. Tree hashes and proofs computed from whatever the tiles
// hold must come back as values or errors (DATA_LOSS for a tile of the wrong length), never crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "consensus/merkle.h"
#include "consensus/tlog_tiles.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  FuzzedDataProvider input(data, size);
  // Mostly small trees (a few tiles), sometimes any size: tiles come from the input either way.
  const uint64_t tree_size = input.ConsumeBool() ? input.ConsumeIntegralInRange<uint64_t>(0, 70000)
                                                 : input.ConsumeIntegral<uint64_t>();
  const uint64_t index = input.ConsumeIntegral<uint64_t>();
  const uint64_t old_size = input.ConsumeIntegralInRange<uint64_t>(0, tree_size);
  int fetches = 0;
  TileHashReader reader(tree_size, [&](std::span<const TileId> tiles) -> absl::StatusOr<std::vector<std::string>> {
    if (++fetches > 8) return absl::UnavailableError("enough");
    std::vector<std::string> out;
    for (const TileId& tile : tiles) {
      FUZZ_CHECK(!tile.entries && tile.width >= 1 && tile.width <= kFullTileWidth, TilePath(tile));
      // Usually the right length, so the hashing is reached; sometimes any length.
      const size_t want = static_cast<size_t>(tile.width) * kTileHashBytes;
      const size_t length = input.ConsumeBool() ? want : input.ConsumeIntegralInRange<size_t>(0, want + 64);
      std::string bytes = input.ConsumeBytesAsString(length);
      bytes.resize(length, '\0');
      out.push_back(std::move(bytes));
    }
    return out;
  });
  (void)TreeHash(tree_size, reader);
  if (tree_size > 0) (void)InclusionProof(index % tree_size, tree_size, reader);
  (void)ConsistencyProof(old_size, tree_size, reader);
  return 0;
}
