// The stored blob of a path's row (storage::DecodePathRecord): what the node reads back from its
// database, which may be damaged. Decoding never crashes, and what decodes encodes to bytes that
// decode to the same record.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "storage/path_record.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::storage;
  absl::StatusOr<PathRecord> record = DecodePathRecord(std::span<const uint8_t>(data, size));
  if (!record.ok()) return 0;
  std::vector<uint8_t> encoded;
  EncodePathRecord(*record, encoded);
  absl::StatusOr<PathRecord> again = DecodePathRecord(encoded);
  FUZZ_CHECK(again.ok(), again.status().ToString());
  FUZZ_CHECK(*again == *record, "re-encoded record decodes differently");
  return 0;
}
