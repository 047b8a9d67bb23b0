// End-to-end: a real attestd driven by the real attest CLI, with builder and node keys made by real
// `nix key generate-secret`. Three operators, quorum 2.
#include <sys/wait.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/node_harness.h"

namespace attest::testing {
namespace {

using nlohmann::json;

std::string Sri(std::string_view content) {
  return consensus::NarHash::FromDigest(consensus::Sha256(content)).ToSri();
}

// `nix path-info --json` output (Nix 2.8 list form) for the given (name, content) outputs.
std::string PathInfoJson(const std::vector<std::pair<std::string, std::string>>& outputs, bool ultimate = true) {
  json list = json::array();
  for (const auto& [name, content] : outputs) {
    json item = {{"path", TestStorePath(name).full()},
                 {"narHash", Sri(content)},
                 {"narSize", 100 + content.size()},
                 {"references", json::array()},
                 {"registrationTime", 1795582660}};
    if (ultimate) item["ultimate"] = true;
    list.push_back(item);
  }
  return list.dump();
}

class CliNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = MakeNixKey(dir_, "alice-builder-1");
    bob_ = MakeNixKey(dir_, "bob-builder-1");
    carol_ = MakeNixKey(dir_, "carol-builder-1");
    node_ = std::make_unique<NodeHarness>(
        dir_, PolicyToml(2, {{"alice-ci", {alice_.public_text}},
                             {"bob-labs", {bob_.public_text}},
                             {"carol-home", {carol_.public_text}}}));
    ASSERT_TRUE(node_->Start());
  }

  RunResult Submit(const NixKeyPair& key, const std::string& path_info_json,
                   std::vector<std::string> extra = {}) {
    std::string file = dir_.File(key.name + "-pathinfo.json");
    WriteFileOrDie(file, path_info_json);
    std::vector<std::string> args{"submit", file, "--node", node_->grpc_address(), "--key", key.secret_file};
    args.insert(args.end(), extra.begin(), extra.end());
    return node_->Cli(args);
  }

  json StatusJson(const std::vector<std::string>& paths, int* exit_code = nullptr) {
    std::vector<std::string> args{"status", "--json", "--node", node_->grpc_address()};
    args.insert(args.end(), paths.begin(), paths.end());
    RunResult r = node_->Cli(args);
    if (exit_code) *exit_code = r.exit_code;
    EXPECT_NE(r.exit_code, 2) << r.err;
    return json::parse(r.out);
  }

  TempDir dir_;
  NixKeyPair alice_, bob_, carol_;
  std::unique_ptr<NodeHarness> node_;
};

TEST_F(CliNodeTest, QuorumIsReachedAndDisagreementBecomesASignedDispute) {
  const std::string hello = TestStorePath("hello").full();
  const std::string nondet = TestStorePath("nondet").full();

  RunResult a = Submit(alice_, PathInfoJson({{"hello", "same bytes"}, {"nondet", "built at 1"}}));
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;

  int code = -1;
  json status = StatusJson({hello, nondet}, &code);
  EXPECT_EQ(code, 1) << "not every path is CONFIRMED, so status must exit 1";
  ASSERT_EQ(status.size(), 2u);
  EXPECT_EQ(status[0]["path"], hello);
  EXPECT_EQ(status[0]["verdict"], "PENDING");
  EXPECT_EQ(status[1]["verdict"], "PENDING");

  RunResult b = Submit(bob_, PathInfoJson({{"hello", "same bytes"}, {"nondet", "built at 2"}}));
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;

  status = StatusJson({hello}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(status[0]["verdict"], "CONFIRMED");
  ASSERT_EQ(status[0]["attestations"].size(), 2u);
  for (const auto& att : status[0]["attestations"]) {
    std::string sig = att["signature"];
    EXPECT_TRUE(sig.rfind("alice-builder-1:", 0) == 0 || sig.rfind("bob-builder-1:", 0) == 0) << sig;
  }

  status = StatusJson({nondet}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(status[0]["verdict"], "DISPUTED");
  std::string dispute_id = status[0]["dispute_id"];
  EXPECT_FALSE(dispute_id.empty());

  RunResult list = node_->Cli({"disputes", "list", "--json", "--node", node_->grpc_address()});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json disputes = json::parse(list.out);
  ASSERT_EQ(disputes.size(), 1u);
  EXPECT_EQ(disputes[0]["id"], dispute_id);
  EXPECT_EQ(disputes[0]["path"], nondet);

  RunResult show = node_->Cli({"disputes", "show", dispute_id, "--json", "--node", node_->grpc_address()});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  json dispute = json::parse(show.out);
  std::string record = dispute["signed_record"];
  EXPECT_NE(record.find("attest/dispute/v1\n"), std::string::npos) << record;
  EXPECT_NE(record.find("alice-ci"), std::string::npos);
  EXPECT_NE(record.find("bob-labs"), std::string::npos);

  // The answer re-checks offline against the policy alone.
  RunResult full = node_->Cli({"status", "--json", "--node", node_->grpc_address(), hello, nondet});
  RunResult verify = node_->Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, full.out);
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;

  // A node that lies about a verdict is caught.
  json lie = json::parse(full.out);
  lie[1]["verdict"] = "CONFIRMED";
  RunResult caught = node_->Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, lie.dump());
  EXPECT_EQ(caught.exit_code, 1) << caught.out;

  // ... and so is a forged signature.
  json forged = json::parse(full.out);
  std::string sig = forged[0]["attestations"][0]["signature"];
  sig[sig.size() - 5] = sig[sig.size() - 5] == 'A' ? 'B' : 'A';
  forged[0]["attestations"][0]["signature"] = sig;
  caught = node_->Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, forged.dump());
  EXPECT_EQ(caught.exit_code, 1) << caught.out;
}

TEST_F(CliNodeTest, ResubmissionIsIdempotent) {
  const std::string json_text = PathInfoJson({{"idem", "x"}});
  ASSERT_EQ(Submit(alice_, json_text).exit_code, 0);
  RunResult again = Submit(alice_, json_text);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  json status = StatusJson({TestStorePath("idem").full()});
  EXPECT_EQ(status[0]["attestations"].size(), 1u);
}

TEST_F(CliNodeTest, SubstitutedPathsAreNotPresentedAsRebuilds) {
  const std::string path = TestStorePath("substituted").full();
  RunResult refused = Submit(alice_, PathInfoJson({{"substituted", "y"}}, /*ultimate=*/false));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE((refused.out + refused.err).find("ultimate"), std::string::npos) << refused.out << refused.err;
  EXPECT_EQ(StatusJson({path})[0]["verdict"], "UNKNOWN");

  RunResult forced = Submit(alice_, PathInfoJson({{"substituted", "y"}}, false), {"--not-built-here-ok"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(StatusJson({path})[0]["verdict"], "PENDING");
}

TEST_F(CliNodeTest, UsageErrorsExitTwo) {
  EXPECT_EQ(node_->Cli({"status"}).exit_code, 2);
  EXPECT_EQ(node_->Cli({"status", "--node"}).exit_code, 2);
  EXPECT_EQ(node_->Cli({"no-such-command"}).exit_code, 2);
  RunResult help = node_->Cli({"status", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("attest status"), std::string::npos);
}

// This node runs no [gateway]: `attest sources` gets an empty answer from the real node and says so,
// which is no failure, even with --check.
TEST_F(CliNodeTest, SourcesOfANodeWithoutAGateway) {
  RunResult text = node_->Cli({"sources", "--node", node_->grpc_address(), "--check"});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("this node has no NAR sources"), std::string::npos) << text.out;
  RunResult as_json = node_->Cli({"sources", "--json", "--node", node_->grpc_address()});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  const json answer = json::parse(as_json.out);
  EXPECT_EQ(answer["healthy"], true);
  EXPECT_TRUE(answer["sources"].empty());
}

TEST_F(CliNodeTest, SigtermDrainsAndExitsWithinTenSeconds) {
  ASSERT_EQ(Submit(alice_, PathInfoJson({{"before-stop", "z"}})).exit_code, 0);
  auto status = node_->Stop(SIGTERM);
  ASSERT_TRUE(status.has_value()) << "attestd did not exit within 10 s of SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "status " << *status;
  // Restarted on the same database, the acknowledged attestation is still there.
  ASSERT_TRUE(node_->Start());
  EXPECT_EQ(StatusJson({TestStorePath("before-stop").full()})[0]["verdict"], "PENDING");
}

}  // namespace
}  // namespace attest::testing
