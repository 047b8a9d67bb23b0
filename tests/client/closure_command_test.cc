// attest status --closure against a real node (server::Node on 127.0.0.1), and attest verify of the
// closure answer: re-walked from the attested references, tampering caught.
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "client/cli.h"
#include "client/node_client.h"
#include "consensus/attestation.h"
#include "consensus/path_info.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "server/node.h"
#include "server/node_config.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::consensus::Cat;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::attest::testing::WriteFileOrDie;
using nlohmann::json;
using ::testing::HasSubstr;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

Result Cli(std::vector<std::string> args) {
  std::istringstream in;
  std::ostringstream out, err;
  CommandEnv env{.in = in,
                 .out = out,
                 .err = err,
                 .connect_node = ConnectGrpcNode,
                 .random_bytes = [](std::span<uint8_t>) {},
                 .default_node = ""};
  Result r;
  r.code = RunCli(args, env);
  r.out = out.str();
  r.err = err.str();
  return r;
}

std::string Pub(std::string_view name) { return TestKey(name).public_key().ToString(); }

std::string PolicyToml() {
  return Cat("quorum = 2\n", "[[operator]]\nname = \"org-a\"\nbuilders = [\"", Pub("org-a-1"), "\"]\n",
             "[[operator]]\nname = \"org-b\"\nbuilders = [\"", Pub("org-b-1"), "\"]\n",
             "[[operator]]\nname = \"org-c\"\nbuilders = [\"", Pub("org-c-1"), "\"]\n");
}

// The claim of `name` referencing `references` (by name).
consensus::PathInfo Claim(std::string_view name, const std::vector<std::string>& references) {
  consensus::PathInfo base = TestClaim(name, "bytes");
  std::vector<consensus::StorePath> paths;
  for (const std::string& r : references) paths.push_back(TestStorePath(r));
  auto info = consensus::PathInfo::Create(base.path, base.nar_hash, base.nar_size, std::move(paths));
  EXPECT_TRUE(info.ok()) << info.status();
  return *info;
}

class ClosureCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(dir_.File("policy.toml"), PolicyToml());
    WriteFileOrDie(dir_.File("node.sec"), TestKey("node-1").ExportText() + "\n");
    WriteFileOrDie(dir_.File("node.toml"), "[node]\n"
                                           "grpc = \"127.0.0.1:0\"\n"
                                           "http = \"\"\n"
                                           "database = \"attest.db\"\n"
                                           "key = \"node.sec\"\n"
                                           "policy = \"policy.toml\"\n");
    auto config = server::LoadNodeConfig(dir_.File("node.toml"));
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = server::Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    address_ = node_->grpc_address();
  }
  void TearDown() override {
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
  }

  void Attest(const consensus::PathInfo& claim, const std::vector<std::string>& keys) {
    auto node = ConnectGrpcNode(NodeOptions{.address = address_});
    ASSERT_TRUE(node.ok()) << node.status();
    v1::SubmitRequest request;
    for (const std::string& key : keys) {
      *request.add_attestations() = proto::ToProto(consensus::SignAttestation(claim, TestKey(key), {}));
    }
    auto submitted = (*node)->Submit(request);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    for (const v1::SubmitResult& result : submitted->results()) {
      ASSERT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.message();
    }
  }

  Result Verify(const json& document) {
    const std::string file = dir_.File("closure.json");
    WriteFileOrDie(file, document.dump());
    return Cli({"verify", "--policy", dir_.File("policy.toml"), file});
  }

  TempDir dir_;
  std::unique_ptr<server::Node> node_;
  std::string address_;
};

TEST_F(ClosureCommandTest, OneMemberShortIsPendingAndNamedAndTheAnswerVerifiesUntilTamperedWith) {
  const consensus::PathInfo app = Claim("app", {"app", "lib"});
  Attest(app, {"org-a-1", "org-b-1"});
  Attest(Claim("lib", {"libc"}), {"org-a-1", "org-b-1"});
  Attest(Claim("libc", {}), {"org-a-1"});  // one operator only

  Result text = Cli({"status", "--node", address_, "--closure", app.path.full()});
  EXPECT_EQ(text.code, 1) << text.err;
  EXPECT_THAT(text.out, HasSubstr("PENDING closure of " + app.path.full() + ": 3 paths, 1 not CONFIRMED"));
  EXPECT_THAT(text.out, HasSubstr("PENDING   " + TestStorePath("libc").full()));

  Result answer = Cli({"status", "--node", address_, "--closure", "--json", app.path.full()});
  EXPECT_EQ(answer.code, 1) << answer.err;
  const json document = json::parse(answer.out, nullptr, false);
  ASSERT_TRUE(document.is_object()) << answer.out;
  EXPECT_EQ(document["closure"], app.path.full());
  EXPECT_EQ(document["verdict"], "PENDING");
  EXPECT_EQ(document["not_confirmed"], json::array({TestStorePath("libc").full()}));
  ASSERT_EQ(document["members"].size(), 3u);

  Result verified = Verify(document);
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("ok    closure of " + app.path.full() + " is PENDING: 3 member(s)"));

  // A member left out (the node hides the path that is short of quorum): caught by the re-walk.
  json hidden = document;
  hidden["members"].erase(2);
  hidden["not_confirmed"] = json::array();
  hidden["verdict"] = "CONFIRMED";
  Result caught = Verify(hidden);
  EXPECT_EQ(caught.code, 1) << caught.out;
  EXPECT_THAT(caught.out, HasSubstr(TestStorePath("libc").full() +
                                    " is referenced in the closure but the answer has no status for it"));

  // The verdict alone changed: caught by recomputing it from the members.
  json upgraded = document;
  upgraded["verdict"] = "CONFIRMED";
  Result wrong = Verify(upgraded);
  EXPECT_EQ(wrong.code, 1) << wrong.out;
  EXPECT_THAT(wrong.out, HasSubstr("the node says the closure is CONFIRMED; its members give PENDING"));

  // Once a second operator attests libc, the whole closure is CONFIRMED.
  Attest(Claim("libc", {}), {"org-c-1"});
  Result confirmed = Cli({"status", "--node", address_, "--closure", app.path.full()});
  EXPECT_EQ(confirmed.code, 0) << confirmed.out << confirmed.err;
  EXPECT_THAT(confirmed.out, HasSubstr("CONFIRMED closure of " + app.path.full() + ": 3 paths, every one CONFIRMED"));
}

TEST_F(ClosureCommandTest, ClosureTakesExactlyOnePath) {
  Result two = Cli({"status", "--node", address_, "--closure", TestStorePath("a").full(), TestStorePath("b").full()});
  EXPECT_EQ(two.code, 2);
  EXPECT_THAT(two.err, HasSubstr("--closure takes exactly one store path"));
}

}  // namespace
}  // namespace attest::client
