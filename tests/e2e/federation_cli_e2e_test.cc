// End-to-end: two real attestd, node-a following node-b's log ([[peer]]); the real attest CLI reports
// it (`attest federation status`): the peer FOLLOWING with its cursor at the peer's log size, the
// replicated attestations counting on node-a, and a peer that goes away reported with its error.
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/node_harness.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

constexpr auto kDeadline = std::chrono::seconds(30);

// `nix path-info --json` output (Nix 2.8 list form), one ultimate path per name.
std::string PathInfoJson(const std::vector<std::string>& names) {
  json list = json::array();
  for (const std::string& name : names) {
    list.push_back({{"path", TestStorePath(name).full()},
                    {"narHash", consensus::NarHash::FromDigest(consensus::Sha256(name)).ToSri()},
                    {"narSize", 100 + name.size()},
                    {"references", json::array()},
                    {"registrationTime", 1795582660},
                    {"ultimate", true}});
  }
  return list.dump();
}

// Gives the node in `dir` the key `name` (the harness would otherwise name every node "node").
void UseNodeKey(const TempDir& dir, const std::string& name) {
  const NixKeyPair key = MakeNixKey(dir, name);
  WriteFileOrDie(dir.File("node.sec"), ReadFileOrDie(key.secret_file));
}

class FederationCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = MakeNixKey(dir_a_, "alice-builder-1");
    policy_ = PolicyToml(1, {{"alice-ci", {alice_.public_text}}});
    UseNodeKey(dir_b_, "node-b");
    node_b_ = std::make_unique<NodeHarness>(dir_b_, policy_, "\n[log]\ncheckpoint_interval = \"50ms\"\n");
    ASSERT_TRUE(node_b_->Start());
  }

  void StartFollower() {
    UseNodeKey(dir_a_, "node-a");
    node_a_ = std::make_unique<NodeHarness>(
        dir_a_, policy_,
        absl::StrCat("\n[log]\ncheckpoint_interval = \"50ms\"\n\n[federation]\npoll_interval = \"50ms\"\n"
                     "max_backoff = \"200ms\"\n\n[[peer]]\ngrpc = \"",
                     node_b_->grpc_address(), "\"\nhttp = \"", node_b_->http_address(), "\"\nkey = \"",
                     node_b_->public_key(), "\"\n"));
    ASSERT_TRUE(node_a_->Start());
  }

  void SubmitToB(const std::vector<std::string>& names) {
    const std::string file = dir_b_.File(absl::StrCat("pathinfo-", submissions_++, ".json"));
    WriteFileOrDie(file, PathInfoJson(names));
    RunResult r = node_b_->Cli({"submit", file, "--node", node_b_->grpc_address(), "--key", alice_.secret_file});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  RunResult Federation(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"federation", "status", "--node", node_a_->grpc_address(), "--timeout", "10"});
    return node_a_->Cli(args);
  }

  // Polls `attest federation status --json` on node-a until `done` holds for its answer; returns the
  // last answer (and its exit code).
  std::pair<int, json> WaitForFederation(const std::function<bool(int, const json&)>& done) {
    int code = -1;
    json latest;
    std::string last;
    const bool reached = PollUntil(
        [&] {
          RunResult r = Federation({"--json"});
          code = r.exit_code;
          last = r.out + r.err;
          if (r.out.empty()) return false;
          latest = json::parse(r.out);
          return done(code, latest);
        },
        kDeadline);
    EXPECT_TRUE(reached) << "last answer (exit " << code << "): " << last;
    return {code, latest};
  }

  TempDir dir_a_;
  TempDir dir_b_;
  NixKeyPair alice_;
  std::string policy_;
  std::unique_ptr<NodeHarness> node_b_;
  std::unique_ptr<NodeHarness> node_a_;
  int submissions_ = 0;
};

TEST_F(FederationCliTest, ReportsAFollowedPeerThenItsAbsence) {
  SubmitToB({"fed-0", "fed-1", "fed-2"});
  StartFollower();

  auto [code, status] = WaitForFederation([](int code, const json& s) {
    return code == 0 && s["peers"].size() == 1 && s["peers"][0]["cursor"] == 3 && s["peers"][0]["peer_size"] == 3;
  });
  EXPECT_EQ(code, 0);
  EXPECT_EQ(status["node"], "node-a");
  EXPECT_EQ(status["healthy"], true);
  EXPECT_THAT(status["policy_hash"].get<std::string>(), HasSubstr("sha256:"));
  ASSERT_EQ(status["peers"].size(), 1u);
  const json& peer = status["peers"][0];
  EXPECT_EQ(peer["name"], "node-b");
  EXPECT_EQ(peer["state"], "FOLLOWING");
  EXPECT_EQ(peer["grpc"], node_b_->grpc_address());
  EXPECT_EQ(peer["http"], node_b_->http_address());
  EXPECT_EQ(peer["public_key"], node_b_->public_key());
  EXPECT_EQ(peer["lag_entries"], 0);
  EXPECT_EQ(peer["rejected_entries"], 0);
  EXPECT_EQ(peer["peer_policy_hash"], status["policy_hash"]);
  EXPECT_GT(peer["last_success_unix"].get<int64_t>(), 0);
  EXPECT_THAT(peer["cosigned_checkpoint"].get<std::string>(), HasSubstr("node-b\n3\n"));
  EXPECT_TRUE(status["forks"].empty());
  EXPECT_TRUE(status["recent_rejections"].empty());

  RunResult text = Federation();
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("node    node-a\n"));
  EXPECT_THAT(text.out, ContainsRegex("node-b +FOLLOWING +3 +3 +0 +0 +[0-9]+s ago +-"));

  // What was replicated counts on node-a.
  RunResult verdict = node_a_->Cli({"status", "--node", node_a_->grpc_address(), TestStorePath("fed-1").full()});
  EXPECT_EQ(verdict.exit_code, 0) << verdict.out << verdict.err;
  EXPECT_THAT(verdict.out, HasSubstr("CONFIRMED"));

  // The peer goes away: reported, with the error, and the exit status says so.
  node_b_->Stop();
  auto [down_code, down] =
      WaitForFederation([](int code, const json& s) { return code == 1 && s["peers"][0]["state"] != "FOLLOWING"; });
  EXPECT_EQ(down_code, 1);
  EXPECT_EQ(down["healthy"], false);
  EXPECT_NE(down["peers"][0]["last_error"], "");
  EXPECT_EQ(down["peers"][0]["cursor"], 3) << "the cursor never goes back";
  RunResult down_text = Federation();
  EXPECT_EQ(down_text.exit_code, 1);
  EXPECT_THAT(down_text.err, HasSubstr("1 of 1 peers not following (node-b "));
}

TEST_F(FederationCliTest, ANodeThatCannotBeReachedIsAFailure) {
  const int port = FreeLoopbackPort();
  RunResult r = node_b_->Cli({"federation", "status", "--node", absl::StrCat("127.0.0.1:", port), "--timeout", "2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_THAT(r.err, HasSubstr("GetFederationStatus"));
}

}  // namespace
}  // namespace attest::testing
