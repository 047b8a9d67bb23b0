// How the CLI reaches a node that serves TLS: node addresses (https://, http://, host:port), --tls-ca
// and $ATTEST_TLS_CA, the CA file's errors, and the builder config's https:// nodes and tls_ca.
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/builder_config.h"
#include "client/cli_args.h"
#include "client/command.h"
#include "client/node_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(NodeAddressTest, SchemeDecidesTls) {
  auto https = ParseNodeAddress("https://node.example:7700", "");
  ASSERT_TRUE(https.ok()) << https.status();
  EXPECT_EQ(https->target, "node.example:7700");
  EXPECT_TRUE(https->tls);

  auto http = ParseNodeAddress("http://127.0.0.1:7700/", "");
  ASSERT_TRUE(http.ok()) << http.status();
  EXPECT_EQ(http->target, "127.0.0.1:7700");
  EXPECT_FALSE(http->tls);

  auto plain = ParseNodeAddress("[::1]:7700", "");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->target, "[::1]:7700");
  EXPECT_FALSE(plain->tls);
}

TEST(NodeAddressTest, CaFileMakesAPlainAddressTls) {
  auto target = ParseNodeAddress("127.0.0.1:7700", "/etc/attest/ca.crt");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_TRUE(target->tls);
}

TEST(NodeAddressTest, ContradictionsAndUnknownSchemesAreRefused) {
  auto contradiction = ParseNodeAddress("http://127.0.0.1:7700", "ca.crt");
  EXPECT_EQ(contradiction.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(contradiction.status().message()),
              AllOf(HasSubstr("--tls-ca"), HasSubstr("https://127.0.0.1:7700")));
  auto unknown = ParseNodeAddress("grpcs://127.0.0.1:7700", "");
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("unknown scheme"));
  EXPECT_FALSE(ParseNodeAddress("https://", "").ok());
  EXPECT_FALSE(ParseNodeAddress("", "").ok());
}

TEST(NodeChannelTest, UnreadableOrNonPemCaIsAnErrorNamingTheOption) {
  testing::TempDir dir;
  auto missing = NodeChannel(NodeOptions{.address = "https://127.0.0.1:1", .tls_ca_file = dir.File("absent.pem")});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), AllOf(HasSubstr("--tls-ca"), HasSubstr("absent.pem")));

  testing::WriteFileOrDie(dir.File("key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  auto not_ca = NodeChannel(NodeOptions{.address = "https://127.0.0.1:1", .tls_ca_file = dir.File("key.pem")});
  EXPECT_EQ(not_ca.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(not_ca.status().message()), HasSubstr("no PEM certificate"));

  // Plaintext needs no file; connecting is lazy.
  EXPECT_TRUE(NodeChannel(NodeOptions{.address = "127.0.0.1:1"}).ok());
}

class NodeOptionsTest : public ::testing::Test {
 protected:
  absl::StatusOr<NodeOptions> FromArgs(const std::vector<std::string>& args) {
    const std::vector<OptionSpec> specs = NodeOptionSpecs();
    absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, specs);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    if (!parsed.ok()) return parsed.status();
    CommandEnv env{.in = in_,
                   .out = out_,
                   .err = err_,
                   .connect_node = nullptr,
                   .random_bytes = nullptr,
                   .default_node = "",
                   .env_var = [this](std::string_view name) -> std::optional<std::string> {
                     auto it = environment_.find(std::string(name));
                     if (it == environment_.end()) return std::nullopt;
                     return it->second;
                   }};
    return NodeOptionsFromArgs(*parsed, env);
  }

  std::istringstream in_;
  std::ostringstream out_, err_;
  std::map<std::string, std::string> environment_;
};

TEST_F(NodeOptionsTest, TlsCaFromTheOptionOrTheEnvironment) {
  auto options = FromArgs({"--node", "https://n:7700", "--tls-ca", "/etc/attest/ca.crt"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->address, "https://n:7700");
  EXPECT_EQ(options->tls_ca_file, "/etc/attest/ca.crt");

  environment_["ATTEST_TLS_CA"] = "/env/ca.crt";
  options = FromArgs({"--node", "https://n:7700"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->tls_ca_file, "/env/ca.crt");
  options = FromArgs({"--node", "https://n:7700", "--tls-ca", "/flag/ca.crt"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->tls_ca_file, "/flag/ca.crt");
}

TEST_F(NodeOptionsTest, MalformedAddressIsAUsageError) {
  auto options = FromArgs({"--node", "http://n:7700", "--tls-ca", "ca.crt"});
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BuilderConfigTlsTest, HttpsNodesAndTlsCa) {
  auto config = ParseBuilderConfig(
      "key = \"k.sec\"\nspool = \"s\"\nnodes = [\"https://node1.example:7700\", \"127.0.0.1:7701\"]\n"
      "tls_ca = \"federation-ca.crt\"\n",
      "/etc/attest/builder.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->nodes[0], "https://node1.example:7700");
  EXPECT_EQ(config->tls_ca_file, "/etc/attest/federation-ca.crt");

  auto empty = ParseBuilderConfig("key = \"k\"\nspool = \"s\"\nnodes = [\"a:1\"]\ntls_ca = \"\"\n", "b.toml");
  EXPECT_THAT(std::string(empty.status().message()), AllOf(HasSubstr("b.toml:4:"), HasSubstr("tls_ca is empty")));
  auto bad = ParseBuilderConfig("key = \"k\"\nspool = \"s\"\nnodes = [\"https://a\"]\n", "b.toml");
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("has no port"));
}

}  // namespace
}  // namespace attest::client
