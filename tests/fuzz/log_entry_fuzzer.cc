// Log entries (consensus::ParseLogEntry), the bytes a follower reads from a peer's entry bundles.
// The format is canonical: every accepted entry encodes back to the same bytes.
#include <cstddef>
#include <cstdint>

#include "consensus/log_entry.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  static const PublicKey key = attest::fuzz::FuzzKey("alice-builder-1").public_key();
  const std::string_view input = attest::fuzz::AsText(data, size);
  absl::StatusOr<LogEntry> entry = ParseLogEntry(input);
  if (!entry.ok()) return 0;
  FUZZ_CHECK(input.size() <= kMaxLogEntryBytes, "entry over the limit accepted");
  absl::StatusOr<std::string> encoded = EncodeLogEntry(*entry);
  FUZZ_CHECK(encoded.ok(), encoded.status().ToString());
  FUZZ_CHECK(*encoded == input, *encoded);
  if (entry->attestation) (void)VerifyAttestationEntry(*entry->attestation, key);
  return 0;
}
