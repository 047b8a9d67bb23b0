// The policy the fuzz targets check statements against: three operators with one builder each and
// one maintainer, all with FuzzKey keys, so seeds signed with those keys verify.
#ifndef ATTEST_TESTS_FUZZ_FUZZ_POLICY_H_
#define ATTEST_TESTS_FUZZ_FUZZ_POLICY_H_

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "consensus/policy.h"
#include "tests/fuzz/fuzz_support.h"

namespace attest::fuzz {

inline std::string FuzzPolicyToml() {
  return absl::StrCat("quorum = 2\n",
                      "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", FuzzKey("alice-builder-1").public_key().ToString(),
                      "\"]\n", "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"",
                      FuzzKey("bob-builder-1").public_key().ToString(), "\"]\n",
                      "[[operator]]\nname = \"carol-home\"\nbuilders = [\"",
                      FuzzKey("carol-builder-1").public_key().ToString(), "\"]\n", "[[maintainer]]\nkey = \"",
                      FuzzKey("maintainer-1").public_key().ToString(), "\"\n");
}

inline consensus::Policy FuzzPolicy() {
  auto policy = consensus::Policy::ParseToml(FuzzPolicyToml(), "policy.toml");
  if (!policy.ok()) std::abort();
  return *std::move(policy);
}

}  // namespace attest::fuzz

#endif  // ATTEST_TESTS_FUZZ_FUZZ_POLICY_H_
