// .drv files (consensus::ParseDerivation), as builders send them and the node serves them.
#include <cstddef>
#include <cstdint>

#include "consensus/derivation.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  absl::StatusOr<Derivation> drv = ParseDerivation(attest::fuzz::AsText(data, size), "fuzz.drv");
  if (!drv.ok()) {
    FUZZ_CHECK(drv.status().code() == absl::StatusCode::kInvalidArgument, drv.status().ToString());
    return 0;
  }
  for (const DerivationOutput& output : drv->outputs) {
    FUZZ_CHECK(drv->FindOutput(output.name) == &output, output.name);
    (void)output.kind();
    (void)drv->OutputPathName(output.name);
  }
  (void)drv->name();
  return 0;
}
