#include "consensus/closure.h"

#include <string>
#include <vector>

#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::TestClaim;
using ::attest::testing::TestStorePath;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A side whose fingerprint is `path` referencing `references` (and whatever TestClaim puts in).
FingerprintTally SideOf(const StorePath& path, std::vector<StorePath> references, std::string_view content) {
  PathInfo claim = TestClaim(path.name(), content);
  absl::StatusOr<PathInfo> info = PathInfo::Create(path, claim.nar_hash, claim.nar_size, std::move(references));
  EXPECT_TRUE(info.ok()) << info.status();
  return FingerprintTally{.fingerprint = info->Fingerprint(), .operators = {"a"}, .builders = {"a-1"},
                          .attestations = {0}};
}

TEST(AttestedReferencesTest, UnionOfEverySideWithoutTheSelfReference) {
  const StorePath root = TestStorePath("root");
  const StorePath lib = TestStorePath("lib");
  const StorePath other = TestStorePath("other");
  TallyResult result;
  result.verdict = Verdict::kDisputed;
  result.fingerprints.push_back(SideOf(root, {root, lib}, "one"));
  result.fingerprints.push_back(SideOf(root, {lib, other}, "two"));
  absl::StatusOr<std::vector<StorePath>> references = AttestedReferences(root, result);
  ASSERT_TRUE(references.ok()) << references.status();
  std::vector<StorePath> expected = {lib, other};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*references, expected);
}

TEST(AttestedReferencesTest, UnknownPathHasNone) {
  absl::StatusOr<std::vector<StorePath>> references = AttestedReferences(TestStorePath("x"), TallyResult{});
  ASSERT_TRUE(references.ok());
  EXPECT_THAT(*references, IsEmpty());
}

TEST(AttestedReferencesTest, AFingerprintThatDoesNotParseIsAnError) {
  TallyResult result;
  result.fingerprints.push_back(FingerprintTally{.fingerprint = "1;not a fingerprint", .operators = {},
                                                 .builders = {}, .attestations = {}});
  absl::StatusOr<std::vector<StorePath>> references = AttestedReferences(TestStorePath("x"), result);
  EXPECT_EQ(references.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(references.status().message()), ::testing::HasSubstr("does not parse"));
}

TEST(ClosureVerdictTest, Table) {
  constexpr Verdict U = Verdict::kUnknown, P = Verdict::kPending, C = Verdict::kConfirmed,
                    D = Verdict::kDisputed;
  struct Case {
    std::vector<Verdict> members;  // root first
    Verdict expected;
  };
  const std::vector<Case> cases = {
      {{}, U},
      {{C}, C},
      {{C, C, C}, C},
      {{C, P, C}, P},
      {{C, U}, P},       // a member nobody attested keeps the closure from CONFIRMED
      {{U}, U},
      {{U, C}, U},
      {{P}, P},
      {{C, C, D}, D},    // a dispute anywhere is the answer
      {{U, D}, D},
      {{D, C}, D},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ClosureVerdict(c.members), c.expected) << "members " << c.members.size();
  }
}

}  // namespace
}  // namespace attest::consensus
