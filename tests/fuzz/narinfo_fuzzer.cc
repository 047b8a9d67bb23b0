// .narinfo text as an upstream binary cache serves it (consensus::ParseNarInfo), its Sig: lines, and
// the claim it carries: the claim's fingerprint must parse back to the same claim.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "consensus/narinfo.h"
#include "consensus/path_info.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  static const std::vector<PublicKey> trusted = {attest::fuzz::FuzzKey("cache.example.org-1").public_key()};
  absl::StatusOr<NarInfo> narinfo = ParseNarInfo(attest::fuzz::AsText(data, size), "fuzz.narinfo");
  if (!narinfo.ok()) return 0;
  const std::string fingerprint = narinfo->claim.Fingerprint();
  absl::StatusOr<PathInfo> again = PathInfo::ParseFingerprint(fingerprint);
  FUZZ_CHECK(again.ok(), fingerprint);
  FUZZ_CHECK(*again == narinfo->claim, fingerprint);
  for (const NarInfoSignature& sig : ParseNarInfoSignatures(*narinfo)) {
    FUZZ_CHECK(sig.signature.has_value() != !sig.error.empty(), sig.text);
  }
  NarInfoVerification verification = VerifyNarInfo(*narinfo, trusted);
  FUZZ_CHECK(verification.checks.size() == narinfo->signatures.size(), fingerprint);
  return 0;
}
