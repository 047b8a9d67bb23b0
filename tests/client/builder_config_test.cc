#include "client/builder_config.h"

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::string_view kGood =
    "# a builder\n"
    "key = \"/etc/nix/attest-builder.sec\"\n"
    "spool = \"spool\"\n"
    "nodes = [\"node1.example:7700\", \"127.0.0.1:7701\", \"[::1]:7702\"]\n";

// Expects INVALID_ARGUMENT starting with "<file>:<line>:" (or "<file>: " when line is 0) and containing
// every fragment.
void ExpectRejected(std::string_view text, int line, std::initializer_list<std::string_view> fragments) {
  absl::StatusOr<BuilderConfig> config = ParseBuilderConfig(text, "/etc/attest/builder.toml");
  ASSERT_FALSE(config.ok()) << "accepted:\n" << text;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  const std::string where =
      line == 0 ? std::string("/etc/attest/builder.toml: ") : "/etc/attest/builder.toml:" + std::to_string(line) + ":";
  EXPECT_THAT(message, StartsWith(where)) << text;
  for (std::string_view fragment : fragments) EXPECT_THAT(message, HasSubstr(std::string(fragment))) << text;
}

TEST(BuilderConfigTest, RefusesInvalidUtf8BeforeParsingToml) {
  // toml++ 3.3 misbehaves on some invalid UTF-8: it must never see it.
  ExpectRejected(std::string(kGood) + "# \xE9t\xE9\n", 5, {":5:3: byte 0xE9", "not valid UTF-8"});
  ExpectRejected("spool = \"sp\xC0\x80ol\"\n", 1, {":1:12: byte 0xC0", "not valid UTF-8"});
  ExpectRejected("key = \"k\"\n\xBF = 1", 2, {":2:1: byte 0xBF"});
}

TEST(BuilderConfigTest, ParsesAndResolvesRelativePathsAgainstTheFilesDirectory) {
  absl::StatusOr<BuilderConfig> config = ParseBuilderConfig(kGood, "/etc/attest/builder.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->key_file, "/etc/nix/attest-builder.sec");
  EXPECT_EQ(config->spool_dir, "/etc/attest/spool");
  EXPECT_THAT(config->nodes, ElementsAre("node1.example:7700", "127.0.0.1:7701", "[::1]:7702"));
  EXPECT_EQ(config->source, "/etc/attest/builder.toml");

  absl::StatusOr<BuilderConfig> dotted = ParseBuilderConfig(
      "key = \"../keys/./b.sec\"\nspool = \"/var/spool/attest/\"\nnodes = [\"n:1\"]\n", "/etc/attest/builder.toml");
  ASSERT_TRUE(dotted.ok()) << dotted.status();
  EXPECT_EQ(dotted->key_file, "/etc/keys/b.sec");
  EXPECT_EQ(dotted->spool_dir, "/var/spool/attest/");
}

TEST(BuilderConfigTest, RejectsProblemsWithFileLineAndAHint) {
  ExpectRejected("key = \"k\"\nspool = \"s\"\nnodes = [\"a:1\"\n", 3, {"TOML syntax error"});
  ExpectRejected("key = \"k\"\nspool = \"s\"\nnodes = [\"a:1\"]\nnode = \"b:2\"\n", 4,
                 {"unknown key 'node'", "key, spool and nodes"});
  ExpectRejected("key = \"k\"\nspool = \"s\"\nnodes = [\"a:1\"]\n[push]\nretries = 3\n", 4, {"unknown table [push]"});
  ExpectRejected("key = 1\nspool = \"s\"\nnodes = [\"a:1\"]\n", 1, {"key is an integer, not a string"});
  ExpectRejected("key = \"k\"\nspool = \"\"\nnodes = [\"a:1\"]\n", 2, {"spool is empty"});
  ExpectRejected("key = \"k\"\nspool = \"s\"\nnodes = \"a:1\"\n", 3, {"nodes is a string, not a list"});
  ExpectRejected("key = \"k\"\nspool = \"s\"\nnodes = []\n", 3, {"nodes is empty"});
  ExpectRejected("key = \"k\"\nspool = \"s\"\nnodes = [\"a:1\", 7]\n", 3, {"node 2 of nodes is an integer"});
  ExpectRejected("spool = \"s\"\nnodes = [\"a:1\"]\n", 0, {"key is missing", "secret key"});
  ExpectRejected("key = \"k\"\nnodes = [\"a:1\"]\n", 0, {"spool is missing"});
  ExpectRejected("key = \"k\"\nspool = \"s\"\n", 0, {"nodes is missing"});
  // Node addresses: what a gRPC client could not dial.
  for (auto [address, fragment] : {std::pair{"", "is empty"},
                                   {"node1.example", "has no port"},
                                   {":7700", "has no host"},
                                   {"node1:0", "from 1 to 65535"},
                                   {"node1:65536", "from 1 to 65535"},
                                   {"node1:http", "from 1 to 65535"},
                                   {"::1:7700", "IPv6"},
                                   {"[nope]:7700", "not an IPv6 address"},
                                   {"[::1]7700", "[IPv6 address]:port"},
                                   {"no de:7700", "not a host name"},
                                   {"grpc://node1:7700", "unknown scheme"}}) {
    ExpectRejected(std::string("key = \"k\"\nspool = \"s\"\nnodes = [\n  \"") + address + "\"]\n", 4,
                   {"node address", fragment});
  }
  ExpectRejected("key = \"k\"\nspool = \"s\"\nnodes = [\"a:1\",\n  \"a:1\"]\n", 4, {"listed twice"});
}

TEST(BuilderConfigTest, LoadReadsTheFileAndAnchorsRelativePathsAtItsDirectory) {
  testing::TempDir dir;
  const std::string file = dir.File("builder.toml");
  testing::WriteFileOrDie(file, kGood);
  absl::StatusOr<BuilderConfig> config = LoadBuilderConfig(file);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->spool_dir, dir.File("spool"));
  EXPECT_EQ(config->source, file);

  absl::StatusOr<BuilderConfig> missing = LoadBuilderConfig(dir.File("nope.toml"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr(dir.File("nope.toml")));

  absl::StatusOr<BuilderConfig> directory = LoadBuilderConfig(dir.path());
  EXPECT_FALSE(directory.ok());
  EXPECT_THAT(std::string(directory.status().message()), HasSubstr(dir.path()));

  testing::WriteFileOrDie(file, "key = \"k\"\nspool = 3\nnodes = [\"a:1\"]\n");
  absl::StatusOr<BuilderConfig> bad = LoadBuilderConfig(file);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), StartsWith(file + ":2:"));
}

TEST(BuilderConfigTest, PathComesFromTheFlagThenTheEnvironment) {
  EXPECT_EQ(*BuilderConfigPath("/a.toml", "/b.toml"), "/a.toml");
  EXPECT_EQ(*BuilderConfigPath("", "/b.toml"), "/b.toml");
  absl::StatusOr<std::string> none = BuilderConfigPath("", "");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("--config FILE"));
  EXPECT_THAT(std::string(none.status().message()), HasSubstr("ATTEST_BUILDER_CONFIG"));
}

}  // namespace
}  // namespace attest::client
