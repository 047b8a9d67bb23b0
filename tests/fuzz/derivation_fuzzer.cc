// .drv files (consensus::ParseDerivation), as builders send them and the node serves them, and what the
// node computes from them before storing one (consensus/derivation_paths.h): a parsed file unparses to
// the same bytes; its text-addressed path verifies it; its output paths are computed or refused with a
// specific code, never a crash.
#include <cstddef>
#include <cstdint>

#include "consensus/derivation.h"
#include "consensus/derivation_paths.h"
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

  const std::string_view text = attest::fuzz::AsText(data, size);
  FUZZ_CHECK(UnparseDerivation(*drv) == text, "a parsed .drv unparses to other bytes");
  absl::StatusOr<StorePath> path = TextStorePath("fuzz.drv", text, DerivationReferences(*drv));
  if (!path.ok() || size > kMaxDerivationBytes) return 0;
  absl::StatusOr<Derivation> verified = VerifyDerivationFile(*path, text);
  FUZZ_CHECK(verified.ok(), verified.status().ToString());
  DerivationGraph graph;
  graph.Add(*path, *std::move(verified));
  const absl::Status outputs = graph.CheckOutputPaths(*path);
  FUZZ_CHECK(outputs.ok() || outputs.code() == absl::StatusCode::kInvalidArgument ||
                 outputs.code() == absl::StatusCode::kNotFound ||
                 outputs.code() == absl::StatusCode::kFailedPrecondition,
             outputs.ToString());
  return 0;
}
