// Maintainers' resolution statements (consensus::Resolution): the note text (FromNoteText, strict:
// ToNoteText gives back the same bytes, and what it accepts validates), and whole signed notes
// checked against a policy (VerifyResolution).
#include <cstddef>
#include <cstdint>

#include "consensus/resolution.h"
#include "tests/fuzz/fuzz_policy.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  static const Policy policy = attest::fuzz::FuzzPolicy();
  const std::string_view input = attest::fuzz::AsText(data, size);
  absl::StatusOr<Resolution> resolution = Resolution::FromNoteText(input);
  if (resolution.ok()) {
    const absl::Status valid = resolution->Validate();
    FUZZ_CHECK(valid.ok(), valid.ToString());
    FUZZ_CHECK(resolution->ToNoteText() == input, resolution->ToNoteText());
  }
  absl::StatusOr<VerifiedResolution> verified = VerifyResolution(input, policy);
  if (verified.ok()) {
    FUZZ_CHECK(policy.FindMaintainer(verified->maintainer) != nullptr, verified->maintainer);
  }
  return 0;
}
