// The small Nix text forms every other parser builds on: store paths, fingerprints, NAR hashes,
// signatures and keys ("name:base64"), nix32 / hex / base64, key names and build metadata. Each
// strict parser must give back its input through the matching formatter.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/signed_note.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  const std::string_view input = attest::fuzz::AsText(data, size);
  if (auto path = StorePath::Parse(input); path.ok()) {
    FUZZ_CHECK(path->full() == input, path->full());
  }
  if (auto path = StorePath::ParseBaseName(input); path.ok()) {
    FUZZ_CHECK(path->full().ends_with(input), path->full());
  }
  if (auto info = PathInfo::ParseFingerprint(input); info.ok()) {
    FUZZ_CHECK(info->Fingerprint() == input, info->Fingerprint());
  }
  (void)NarHash::Parse(input);
  if (auto signature = Signature::Parse(input); signature.ok()) {
    (void)signature->ToString();
  }
  if (auto key = PublicKey::Parse(input); key.ok()) {
    auto again = PublicKey::Parse(key->ToString());
    FUZZ_CHECK(again.ok() && again->ToString() == key->ToString(), key->ToString());
  }
  (void)SecretKey::Parse(input);
  if (auto bytes = Nix32Decode(input, 32); bytes.ok()) {
    FUZZ_CHECK(Nix32Encode(*bytes) == input, Nix32Encode(*bytes));
  }
  if (auto bytes = Base64Decode(input); bytes.ok()) {
    FUZZ_CHECK(Base64Encode(*bytes) == input, Base64Encode(*bytes));
  }
  if (auto bytes = HexDecode(input); bytes.ok()) {
    auto again = HexDecode(HexEncode(*bytes));
    FUZZ_CHECK(again.ok() && *again == *bytes, HexEncode(*bytes));
  }
  (void)ValidateKeyName(input);
  (void)ValidateNoteKeyName(input);
  BuildMetadata metadata;
  metadata.system = std::string(input);
  metadata.output_name = std::string(input);
  (void)ValidateBuildMetadata(metadata);
  (void)QuoteForError(input);
  return 0;
}
