// The stored blob of a path's row (storage::DecodePathRecord): what the node reads back from its
// database, which may be damaged. Decoding never crashes, and what decodes encodes to bytes that
// decode to the same record. Records are bound to kFuzzRecordPath (the seeds are written for it), so
// mutations of a format-3 seed mostly exercise the checksum; the format-1 and format-2 seeds, which
// carry none, exercise the structure.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "storage/path_record.h"
#include "tests/fuzz/fuzz_support.h"

namespace {
// The store path every seed record is bound to (tests/fuzz/make_seeds.cc writes them for it).
constexpr std::string_view kFuzzRecordPath = "/nix/store/00000000000000000000000000000000-fuzz-record";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::storage;
  absl::StatusOr<PathRecord> record = DecodePathRecord(std::span<const uint8_t>(data, size), kFuzzRecordPath);
  if (!record.ok()) return 0;
  std::vector<uint8_t> encoded;
  EncodePathRecord(*record, kFuzzRecordPath, encoded);
  absl::StatusOr<PathRecord> again = DecodePathRecord(encoded, kFuzzRecordPath);
  FUZZ_CHECK(again.ok(), again.status().ToString());
  FUZZ_CHECK(*again == *record, "re-encoded record decodes differently");
  return 0;
}
