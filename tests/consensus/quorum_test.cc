#include "consensus/quorum.h"

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "consensus/keys.h"
#include "consensus/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::TestKey;

Operator OperatorWithKey(std::string name) {
  PublicKey key = TestKey(name + "-1").public_key();
  return Operator{.name = std::move(name), .builders = {std::move(key)}};
}

std::vector<Operator> Operators(const std::vector<std::string>& names) {
  std::vector<Operator> out;
  for (const std::string& name : names) out.push_back(OperatorWithKey(name));
  return out;
}

Quorum Any(int k) { return Quorum{.any = k, .of = std::nullopt}; }

Quorum Of(int threshold, std::vector<std::string> members) {
  return Quorum{.any = 0, .of = Threshold{.threshold = threshold, .members = std::move(members)}};
}

Group GroupOf(std::string name, int threshold, std::vector<std::string> members) {
  return Group{.name = std::move(name), .threshold = {.threshold = threshold, .members = std::move(members)}};
}

Policy MustCreate(PolicySpec spec) {
  absl::StatusOr<Policy> policy = Policy::Create(std::move(spec));
  EXPECT_TRUE(policy.ok()) << policy.status();
  if (!policy.ok()) std::abort();
  return *std::move(policy);
}

// The example: Hydra and two of three independent rebuilders.
Policy HydraAndIndependent() {
  return MustCreate(PolicySpec{
      .quorum = Of(2, {"nixos-hydra", "independent"}),
      .operators = Operators({"nixos-hydra", "org-b", "org-c", "org-d", "org-e"}),
      .maintainers = {},
      .groups = {GroupOf("independent", 2, {"org-b", "org-c", "org-d"})},
  });
}

struct Case {
  std::vector<std::string> operators;  // sorted
  bool satisfied;
  std::string explanation;
};

void ExpectCases(const Policy& policy, const Quorum& quorum, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    QuorumReport report = EvaluateQuorum(policy, quorum, c.operators);
    EXPECT_EQ(report.satisfied, c.satisfied) << ::testing::PrintToString(c.operators);
    EXPECT_EQ(report.explanation, c.explanation) << ::testing::PrintToString(c.operators);
  }
}

TEST(QuorumTest, FlatQuorumCountsOperators) {
  const Policy policy =
      MustCreate(PolicySpec{.quorum = Any(2), .operators = Operators({"a", "b", "c"}), .maintainers = {}});
  ExpectCases(policy, policy.default_quorum(),
              {
                  {{}, false, "0 of 2 operators needed"},
                  {{"b"}, false, "1 of 2 operators needed (b)"},
                  {{"a", "c"}, true, "2 operators (a, c)"},
                  {{"a", "b", "c"}, true, "3 operators (a, b, c)"},
              });
  const Quorum one = Any(1);
  EXPECT_EQ(EvaluateQuorum(policy, one, std::vector<std::string>{"c"}).explanation, "1 operator (c)");
}

TEST(QuorumTest, NestedGroupTable) {
  const Policy policy = HydraAndIndependent();
  ExpectCases(
      policy, policy.default_quorum(),
      {
          {{}, false, "0 of 2 needed: nixos-hydra missing; independent: 0 of 2 needed: org-b, org-c, org-d missing"},
          {{"nixos-hydra"},
           false,
           "1 of 2 needed (nixos-hydra); independent: 0 of 2 needed: org-b, org-c, org-d missing"},
          {{"org-b"},
           false,
           "0 of 2 needed: nixos-hydra missing; independent: 1 of 2 needed (org-b): org-c, org-d missing"},
          {{"nixos-hydra", "org-c"},
           false,
           "1 of 2 needed (nixos-hydra); independent: 1 of 2 needed (org-c): org-b, org-d missing"},
          // The group is satisfied and so not explained; only the operator is missing.
          {{"org-b", "org-d"}, false, "1 of 2 needed (independent): nixos-hydra missing"},
          {{"org-b", "org-c", "org-d", "org-e"}, false, "1 of 2 needed (independent): nixos-hydra missing"},
          // An operator of the policy that is no member of the quorum adds nothing.
          {{"nixos-hydra", "org-b", "org-e"},
           false,
           "1 of 2 needed (nixos-hydra); independent: 1 of 2 needed (org-b): org-c, org-d missing"},
          {{"nixos-hydra", "org-b", "org-c"}, true, "2 of 2 members (nixos-hydra, independent)"},
          {{"nixos-hydra", "org-b", "org-c", "org-d"}, true, "2 of 2 members (nixos-hydra, independent)"},
      });
}

TEST(QuorumTest, GroupsWithinGroupsAreExplainedOutermostFirst) {
  // quorum: 1 of (core); core = 2 of (nixos-hydra, outer); outer = 1 of (inner, org-e);
  // inner = 2 of (org-b, org-c).
  const Policy policy = MustCreate(PolicySpec{
      .quorum = Of(1, {"core"}),
      .operators = Operators({"nixos-hydra", "org-b", "org-c", "org-e"}),
      .maintainers = {},
      .groups = {GroupOf("core", 2, {"nixos-hydra", "outer"}), GroupOf("outer", 1, {"inner", "org-e"}),
                 GroupOf("inner", 2, {"org-b", "org-c"})},
  });
  ExpectCases(policy, policy.default_quorum(),
              {
                  {{"nixos-hydra", "org-b"},
                   false,
                   "0 of 1 needed; core: 1 of 2 needed (nixos-hydra); outer: 0 of 1 needed: org-e missing; "
                   "inner: 1 of 2 needed (org-b): org-c missing"},
                  {{"nixos-hydra", "org-e"}, true, "1 of 1 members (core)"},
                  {{"nixos-hydra", "org-b", "org-c"}, true, "1 of 1 members (core)"},
                  {{"org-b", "org-c", "org-e"},
                   false,
                   "0 of 1 needed; core: 1 of 2 needed (outer): nixos-hydra missing"},
              });
}

TEST(QuorumTest, SharedGroupIsExplainedOnce) {
  // Two groups both need `shared`; when it fails, it is explained once, after both.
  const Policy policy = MustCreate(PolicySpec{
      .quorum = Of(2, {"left", "right"}),
      .operators = Operators({"org-b", "org-c", "org-d", "org-e"}),
      .maintainers = {},
      .groups = {GroupOf("left", 1, {"shared", "org-d"}), GroupOf("right", 1, {"shared", "org-e"}),
                 GroupOf("shared", 2, {"org-b", "org-c"})},
  });
  ExpectCases(policy, policy.default_quorum(),
              {
                  {{"org-b", "org-d"},
                   false,
                   "1 of 2 needed (left); right: 0 of 1 needed: org-e missing; shared: 1 of 2 needed (org-b): "
                   "org-c missing"},
                  {{"org-b"},
                   false,
                   "0 of 2 needed; left: 0 of 1 needed: org-d missing; right: 0 of 1 needed: org-e missing; "
                   "shared: 1 of 2 needed (org-b): org-c missing"},
                  {{"org-b", "org-c"}, true, "2 of 2 members (left, right)"},
                  {{"org-d", "org-e"}, true, "2 of 2 members (left, right)"},
              });
  EXPECT_EQ(DescribeQuorum(policy, policy.default_quorum()),
            "2 of (left, right); left = 1 of (shared, org-d); right = 1 of (shared, org-e); "
            "shared = 2 of (org-b, org-c)");
}

TEST(QuorumTest, EvaluationIsMemoisedPerGroup) {
  // g0 = 2 of (g1, h1); g1 and h1 = 2 of (g2, h2); ... down to level 40: a group of level k is
  // reached along 2^k paths. Without memoisation this would take 2^40 steps; with it, a few hundred.
  constexpr int kLevels = 40;
  std::vector<Group> groups;
  for (int level = 0; level < kLevels; ++level) {
    const std::string next_g = "g" + std::to_string(level + 1);
    const std::string next_h = "h" + std::to_string(level + 1);
    groups.push_back(GroupOf("g" + std::to_string(level), 2, {next_g, next_h}));
    if (level > 0) groups.push_back(GroupOf("h" + std::to_string(level), 2, {next_g, next_h}));
  }
  groups.push_back(GroupOf("g" + std::to_string(kLevels), 1, {"org-b"}));
  groups.push_back(GroupOf("h" + std::to_string(kLevels), 1, {"org-b", "org-c"}));
  const Policy policy = MustCreate(PolicySpec{.quorum = Of(1, {"g0"}),
                                              .operators = Operators({"org-b", "org-c"}),
                                              .maintainers = {},
                                              .groups = std::move(groups)});
  EXPECT_TRUE(EvaluateQuorum(policy, policy.default_quorum(), std::vector<std::string>{"org-b"}).satisfied);
  const QuorumReport missing = EvaluateQuorum(policy, policy.default_quorum(), std::vector<std::string>{"org-c"});
  EXPECT_FALSE(missing.satisfied);
  // Each group is explained once: the quorum, g0, g1 and h1 ... g39 and h39, g40 (h40 is satisfied).
  EXPECT_THAT(missing.explanation, ::testing::HasSubstr("g40: 0 of 1 needed: org-b missing"));
  EXPECT_THAT(missing.explanation, ::testing::Not(::testing::HasSubstr("h40:")));  // h40 is satisfied
  EXPECT_EQ(std::count(missing.explanation.begin(), missing.explanation.end(), ';'), 2 * kLevels);
}

TEST(QuorumTest, UnsortedOperatorsStillEvaluateCorrectly) {
  const Policy policy = HydraAndIndependent();
  const std::vector<std::string> unsorted = {"org-c", "nixos-hydra", "org-b"};
  EXPECT_TRUE(EvaluateQuorum(policy, policy.default_quorum(), unsorted).satisfied);
}

TEST(QuorumTest, RuleQuorumsEvaluateLikeTheDefault) {
  // A rule's quorum may name groups too; EvaluateQuorum takes it as it takes the default.
  PolicySpec spec{.quorum = Any(1),
                  .operators = Operators({"nixos-hydra", "org-b", "org-c", "org-d"}),
                  .maintainers = {},
                  .groups = {GroupOf("independent", 2, {"org-b", "org-c", "org-d"})},
                  .rules = {Rule{.names = {"openssl-*"}, .quorum = Of(2, {"nixos-hydra", "independent"})}}};
  const Policy policy = MustCreate(std::move(spec));
  const Quorum& strict = policy.rules().at(0).quorum;
  const std::vector<std::string> two = {"nixos-hydra", "org-b"};
  EXPECT_TRUE(EvaluateQuorum(policy, policy.default_quorum(), two).satisfied);
  QuorumReport report = EvaluateQuorum(policy, strict, two);
  EXPECT_FALSE(report.satisfied);
  EXPECT_EQ(report.explanation,
            "1 of 2 needed (nixos-hydra); independent: 1 of 2 needed (org-b): org-c, org-d missing");
}

TEST(QuorumTest, Describe) {
  const Policy flat =
      MustCreate(PolicySpec{.quorum = Any(2), .operators = Operators({"a", "b", "c"}), .maintainers = {}});
  EXPECT_EQ(DescribeQuorum(flat, flat.default_quorum()), "any 2 operators");
  EXPECT_EQ(DescribeQuorum(flat, Any(1)), "any 1 operator");
  const Policy nested = HydraAndIndependent();
  EXPECT_EQ(DescribeQuorum(nested, nested.default_quorum()),
            "2 of (nixos-hydra, independent); independent = 2 of (org-b, org-c, org-d)");
}

}  // namespace
}  // namespace attest::consensus
