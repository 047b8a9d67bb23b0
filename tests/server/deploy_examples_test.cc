// The documented examples in deploy/ must stay valid.
#include <string>

#include "consensus/policy.h"
#include "gtest/gtest.h"
#include "server/node_config.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

TEST(DeployExamplesTest, NodeExampleParses) {
  const std::string file = std::string(ATTEST_SOURCE_DIR) + "/deploy/node.example.toml";
  auto config = ParseNodeConfig(testing::ReadFileOrDie(file), file);
  ASSERT_TRUE(config.ok()) << config.status();
}

TEST(DeployExamplesTest, PolicyExampleParses) {
  const std::string file = std::string(ATTEST_SOURCE_DIR) + "/deploy/policy.example.toml";
  auto policy = consensus::Policy::ParseToml(testing::ReadFileOrDie(file), file);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->quorum(), 2);
  ASSERT_EQ(policy->operators().size(), 2u);
  EXPECT_EQ(policy->operators()[0].caches.size(), 2u);  // alice-ci publishes its builds
  EXPECT_EQ(policy->maintainers().size(), 1u);
}

}  // namespace
}  // namespace attest::server
