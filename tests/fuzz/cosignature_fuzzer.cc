// Witness cosignatures (C2SP tlog-cosignature): cosigned checkpoint notes checked with a witness key
// (VerifyCosignature) and witness verifier keys (ParseCosignatureVerifierKey, which must give back
// the same text through CosignatureVerifierKey).
#include <cstddef>
#include <cstdint>

#include "consensus/checkpoint.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  static const PublicKey witness = attest::fuzz::FuzzKey("witness-1").public_key();
  const std::string_view input = attest::fuzz::AsText(data, size);
  if (absl::StatusOr<SignedNote> note = SignedNote::Parse(input); note.ok()) {
    absl::StatusOr<uint64_t> timestamp = VerifyCosignature(*note, witness);
    if (timestamp.ok()) FUZZ_CHECK(*timestamp <= kMaxCosignatureTimestamp, input);
  }
  absl::StatusOr<PublicKey> vkey = ParseCosignatureVerifierKey(input);
  if (vkey.ok()) {
    FUZZ_CHECK(CosignatureVerifierKey(*vkey) == input, CosignatureVerifierKey(*vkey));
  }
  return 0;
}
