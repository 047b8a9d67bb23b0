// Spool record files (client::ParseSpoolRecord): what `attest push` reads back from the builder's
// spool directory, which a crash or another program may have left torn or foreign. Failures are
// DATA_LOSS or FAILED_PRECONDITION (another version), and an accepted record written again parses
// back to itself.
#include <cstddef>
#include <cstdint>

#include "client/spool.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::client;
  absl::StatusOr<SpoolRecord> record = ParseSpoolRecord(attest::fuzz::AsText(data, size));
  if (!record.ok()) {
    FUZZ_CHECK(record.status().code() == absl::StatusCode::kDataLoss ||
                   record.status().code() == absl::StatusCode::kFailedPrecondition,
               record.status().ToString());
    return 0;
  }
  const std::string written = SerialiseSpoolRecord(*record);
  absl::StatusOr<SpoolRecord> again = ParseSpoolRecord(written);
  FUZZ_CHECK(again.ok(), again.status().ToString() + "\n" + written);
  FUZZ_CHECK(*again == *record, written);
  FUZZ_CHECK(SerialiseSpoolRecord(*again) == written, written);
  return 0;
}
