// C2SP tlog-tiles entry bundles (consensus::DecodeEntryBundle), as a follower fetches them from a
// peer, and the log entries inside. A decoded bundle encodes back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "consensus/log_entry.h"
#include "consensus/tlog_tiles.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  const std::string_view input = attest::fuzz::AsText(data, size);
  absl::StatusOr<std::vector<std::string>> entries = DecodeEntryBundle(input);
  if (!entries.ok()) return 0;
  FUZZ_CHECK(!entries->empty() && entries->size() <= kFullTileWidth, "bundle size out of range");
  absl::StatusOr<std::string> encoded = EncodeEntryBundle(*entries);
  FUZZ_CHECK(encoded.ok(), encoded.status().ToString());
  FUZZ_CHECK(*encoded == input, "bundle does not encode back to its bytes");
  for (const std::string& entry : *entries) {
    (void)LeafHash(entry);
    (void)ParseLogEntry(entry);
  }
  return 0;
}
