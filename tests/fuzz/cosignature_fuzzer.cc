// Witness cosignatures (C2SP tlog-cosignature): cosigned checkpoint notes checked with a witness key
// (VerifyCosignature) and witness verifier keys (ParseCosignatureVerifierKey; written again with
// CosignatureVerifierKey they parse to the same key).
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
    // Not byte for byte: the key id's hex may be upper case, as Go's parser allows.
    absl::StatusOr<PublicKey> again = ParseCosignatureVerifierKey(CosignatureVerifierKey(*vkey));
    FUZZ_CHECK(again.ok() && *again == *vkey, CosignatureVerifierKey(*vkey));
  }
  return 0;
}
