// Policy files (consensus::Policy::ParseToml, TOML through toml++). An accepted policy rebuilt with
// Policy::Create from its parts has the same canonical text and hash.
#include <cstddef>
#include <cstdint>

#include "consensus/policy.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  absl::StatusOr<Policy> policy = Policy::ParseToml(attest::fuzz::AsText(data, size), "policy.toml");
  if (!policy.ok()) {
    FUZZ_CHECK(policy.status().code() == absl::StatusCode::kInvalidArgument, policy.status().ToString());
    return 0;
  }
  absl::StatusOr<Policy> rebuilt = Policy::Create(policy->quorum(), policy->operators(), policy->maintainers());
  FUZZ_CHECK(rebuilt.ok(), rebuilt.status().ToString());
  FUZZ_CHECK(rebuilt->CanonicalText() == policy->CanonicalText(), policy->CanonicalText());
  FUZZ_CHECK(rebuilt->Hash() == policy->Hash(), policy->Hash());
  return 0;
}
