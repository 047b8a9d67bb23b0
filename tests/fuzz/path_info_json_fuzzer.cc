// `nix path-info --json` output (client::ParsePathInfoJson), in both the list and the map form.
// Every accepted claim's fingerprint parses back to the same claim.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "client/path_info_json.h"
#include "consensus/path_info.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest;
  absl::StatusOr<std::vector<client::NixPathInfo>> infos = client::ParsePathInfoJson(fuzz::AsText(data, size));
  if (!infos.ok()) {
    FUZZ_CHECK(infos.status().code() == absl::StatusCode::kInvalidArgument, infos.status().ToString());
    return 0;
  }
  for (const client::NixPathInfo& info : *infos) {
    const std::string fingerprint = info.claim.Fingerprint();
    absl::StatusOr<consensus::PathInfo> again = consensus::PathInfo::ParseFingerprint(fingerprint);
    FUZZ_CHECK(again.ok() && *again == info.claim, fingerprint);
    if (info.deriver) (void)client::GuessOutputName(info.claim.path, *info.deriver);
  }
  return 0;
}
