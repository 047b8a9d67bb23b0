// The documented builder config example in deploy/ must stay valid.
#include "client/builder_config.h"
#include "gtest/gtest.h"

namespace attest::client {
namespace {

TEST(DeployBuilderExampleTest, ParsesAsDocumented) {
  auto config = LoadBuilderConfig(std::string(ATTEST_SOURCE_DIR) + "/deploy/builder.example.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->key_file, "/etc/attest/builder.sec");
  EXPECT_EQ(config->spool_dir, "/var/spool/attest");
  ASSERT_EQ(config->nodes.size(), 1u);
  EXPECT_EQ(config->nodes[0], "127.0.0.1:7700");
}

}  // namespace
}  // namespace attest::client
