// End-to-end: a real attestd with [tls] (certificates made by the `openssl` command) driven by the real
// attest CLI: submit and status work over TLS with the CA, and fail with a clear message without it or
// over plaintext. A non-loopback address without TLS or the plaintext opt-in stops attestd at start.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/node_harness.h"
#include "tests/support/test_certificates.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string PathInfoJson(const std::string& name, const std::string& content) {
  json item = {{"path", TestStorePath(name).full()},
               {"narHash", consensus::NarHash::FromDigest(consensus::Sha256(content)).ToSri()},
               {"narSize", 100 + content.size()},
               {"references", json::array()},
               {"registrationTime", 1795582660},
               {"ultimate", true}};
  return json::array({item}).dump();
}

class TlsCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeTestCa(dir_, "ca");
    MakeTestCertificate(dir_, "node", ca_);
    alice_ = MakeNixKey(dir_, "alice-builder-1");
    bob_ = MakeNixKey(dir_, "bob-builder-1");
    node_ = std::make_unique<NodeHarness>(
        dir_, PolicyToml(2, {{"alice-ci", {alice_.public_text}}, {"bob-labs", {bob_.public_text}}}),
        "[tls]\ncert = \"node.crt\"\nkey = \"node.key\"\n");
    ASSERT_TRUE(node_->Start());
    https_ = "https://" + node_->grpc_address();
  }

  RunResult Submit(const NixKeyPair& key, const std::string& name, const std::string& content) {
    const std::string file = dir_.File(key.name + "-" + name + ".json");
    WriteFileOrDie(file, PathInfoJson(name, content));
    return node_->Cli({"submit", file, "--node", https_, "--tls-ca", ca_.cert, "--key", key.secret_file});
  }

  TempDir dir_;
  CertificateFiles ca_;
  NixKeyPair alice_, bob_;
  std::unique_ptr<NodeHarness> node_;
  std::string https_;
};

TEST_F(TlsCliTest, StatusWorksWithTheCaAndFailsClearlyWithoutIt) {
  RunResult a = Submit(alice_, "hello", "same bytes");
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  RunResult b = Submit(bob_, "hello", "same bytes");
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  const std::string hello = TestStorePath("hello").full();

  RunResult status = node_->Cli({"status", "--json", "--node", https_, "--tls-ca", ca_.cert, hello});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out)[0]["verdict"], "CONFIRMED");

  // --tls-ca alone makes host:port a TLS address; $ATTEST_TLS_CA stands in for it.
  RunResult ca_only = node_->Cli({"status", "--node", node_->grpc_address(), "--tls-ca", ca_.cert, hello});
  EXPECT_EQ(ca_only.exit_code, 0) << ca_only.err;
  RunResult from_env = testing::Run({ATTEST_BIN, "status", "--node", https_, hello}, "", std::chrono::seconds(60),
                                     {{"ATTEST_TLS_CA", ca_.cert}});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.err;

  // Without the CA the node's certificate is not trusted.
  RunResult untrusted = node_->Cli({"status", "--timeout", "5", "--node", https_, hello});
  EXPECT_EQ(untrusted.exit_code, 1) << untrusted.out;
  EXPECT_THAT(untrusted.err, AllOf(HasSubstr("node " + https_), HasSubstr("--tls-ca")));

  // Plaintext to a TLS node.
  RunResult plaintext = node_->Cli({"status", "--timeout", "5", "--node", node_->grpc_address(), hello});
  EXPECT_EQ(plaintext.exit_code, 1) << plaintext.out;
  EXPECT_THAT(plaintext.err, HasSubstr("https://HOST:PORT"));

  RunResult missing_ca = node_->Cli({"status", "--node", https_, "--tls-ca", dir_.File("absent.crt"), hello});
  EXPECT_EQ(missing_ca.exit_code, 1);
  EXPECT_THAT(missing_ca.err, AllOf(HasSubstr("--tls-ca"), HasSubstr("absent.crt")));
}

TEST_F(TlsCliTest, LogCheckpointOverTls) {
  RunResult checkpoint = node_->Cli({"log", "checkpoint", "--node", https_, "--tls-ca", ca_.cert});
  EXPECT_EQ(checkpoint.exit_code, 0) << checkpoint.err;
}

TEST(TlsStartupTest, NonLoopbackWithoutTlsOrOptInStopsAttestd) {
  TempDir dir;
  NodeHarness node(dir, PolicyToml(1, {{"alice-ci", {MakeNixKey(dir, "alice-builder-1").public_text}}}));
  // The harness wrote loopback addresses; bind every interface instead.
  std::string config = ReadFileOrDie(node.config_path());
  config.replace(config.find("grpc = \"127.0.0.1:"), std::string("grpc = \"127.0.0.1").size(), "grpc = \"0.0.0.0");
  WriteFileOrDie(node.config_path(), config);
  RunResult result = testing::Run({ATTESTD_BIN, "--config", node.config_path()}, "", std::chrono::seconds(60));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, AllOf(HasSubstr(node.config_path() + ":2:"), HasSubstr("not a loopback address"),
                                HasSubstr("[tls]"), HasSubstr("allow_non_loopback = true")));
}

}  // namespace
}  // namespace attest::testing
