// attest policy sign / submit / show / diff, run in-process through RunCli: offline against policy
// files, and against a real node (server::Node on 127.0.0.1) for submit and show --node.
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/cli.h"
#include "client/node_client.h"
#include "consensus/attestation.h"
#include "consensus/policy.h"
#include "consensus/policy_update.h"
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
using ::attest::testing::TestKey;
using ::attest::testing::WriteFileOrDie;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

Result Cli(std::vector<std::string> args) {
  std::istringstream in;
  std::ostringstream out, err;
  CommandEnv env{
      .in = in,
      .out = out,
      .err = err,
      .connect_node = ConnectGrpcNode,
      .random_bytes = [](std::span<uint8_t>) {},
      .default_node = "",
  };
  Result r;
  r.code = RunCli(args, env);
  r.out = out.str();
  r.err = err.str();
  return r;
}

std::string Pub(std::string_view name) { return TestKey(name).public_key().ToString(); }

// The first policy of a chain: any 2 of three operators, three maintainers of whom 2 must approve.
std::string FirstPolicyToml() {
  return Cat("# the federation's first policy\n"
                      "update_threshold = 2\n"
                      "quorum = 2\n"
                      "[[operator]]\nname = \"nixos-hydra\"\nbuilders = [\"", Pub("hydra-1"), "\"]\n",
                      "[[operator]]\nname = \"org-b\"\nbuilders = [\"", Pub("org-b-1"), "\", \"", Pub("org-b-old"),
                      "\"]\n",
                      "[[operator]]\nname = \"org-c\"\nbuilders = [\"", Pub("org-c-1"), "\"]\n",
                      "[[maintainer]]\nkey = \"", Pub("maint-1"), "\"\n",
                      "[[maintainer]]\nkey = \"", Pub("maint-2"), "\"\n",
                      "[[maintainer]]\nkey = \"", Pub("maint-3"), "\"\n");
}

// Its successor: org-d joins, "nixos-hydra AND two independent", a stricter rule for openssl, org-b's
// old key retired, org-d's lost key revoked.
std::string SecondPolicyToml(std::string_view parent_hash, int version = 2) {
  return Cat("version = ", version, "\n",
                      "parent = \"", parent_hash, "\"\n",
                      "update_threshold = 2\n"
                      "[quorum]\nthreshold = 2\nmembers = [\"nixos-hydra\", \"independent\"]\n"
                      "[[group]]\nname = \"independent\"\nthreshold = 2\nmembers = [\"org-b\", \"org-c\", \"org-d\"]\n"
                      "[[rule]]\nnames = [\"openssl-*\"]\nquorum = 3\n"
                      "[[operator]]\nname = \"nixos-hydra\"\nbuilders = [\"", Pub("hydra-1"), "\"]\n",
                      "[[operator]]\nname = \"org-b\"\nbuilders = [\"", Pub("org-b-1"), "\", {key = \"",
                      Pub("org-b-old"), "\", retired = \"2026-12-01T00:00:00Z\"}]\n",
                      "[[operator]]\nname = \"org-c\"\nbuilders = [\"", Pub("org-c-1"), "\"]\n",
                      "[[operator]]\nname = \"org-d\"\nbuilders = [\"", Pub("org-d-1"), "\", {key = \"",
                      Pub("org-d-lost"), "\", revoked = \"compromised\"}]\n",
                      "[[maintainer]]\nkey = \"", Pub("maint-1"), "\"\n",
                      "[[maintainer]]\nkey = \"", Pub("maint-2"), "\"\n",
                      "[[maintainer]]\nkey = \"", Pub("maint-3"), "\"\n");
}

consensus::Policy Parse(const std::string& toml) {
  auto policy = consensus::Policy::ParseToml(toml, "policy.toml");
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *std::move(policy);
}

class PolicyFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    first_ = dir_.File("policy-v1.toml");
    second_ = dir_.File("policy-v2.toml");
    WriteFileOrDie(first_, FirstPolicyToml());
    first_hash_ = Parse(FirstPolicyToml()).Hash();
    WriteFileOrDie(second_, SecondPolicyToml(first_hash_));
    for (const char* name : {"maint-1", "maint-2", "maint-3", "outsider"}) {
      WriteFileOrDie(dir_.File(Cat(name, ".sec")), TestKey(name).ExportText());
    }
  }
  std::string Key(std::string_view name) const { return dir_.File(Cat(name, ".sec")); }

  // `attest policy sign` into NAME.sig; the approval line.
  std::string Sign(std::string_view maintainer, const std::string& policy_file) {
    Result r = Cli({"policy", "sign", "--key", Key(maintainer), policy_file});
    EXPECT_EQ(r.code, 0) << r.err;
    WriteFileOrDie(dir_.File(Cat(maintainer, ".sig")), r.out);
    return r.out;
  }

  TempDir dir_;
  std::string first_, second_, first_hash_;
};

TEST_F(PolicyFilesTest, SignPrintsOneApprovalThatVerifiesWithTheMaintainersPublicKey) {
  Result r = Cli({"policy", "sign", "--key", Key("maint-1"), second_});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << r.out;
  EXPECT_THAT(r.out, ::testing::StartsWith("maint-1:"));
  EXPECT_EQ(r.out.back(), '\n');

  auto approvals = consensus::ParseApprovals(r.out, "maint-1.sig");
  ASSERT_TRUE(approvals.ok()) << approvals.status();
  ASSERT_EQ(approvals->size(), 1u);
  const consensus::Policy successor = Parse(SecondPolicyToml(first_hash_));
  EXPECT_TRUE(TestKey("maint-1")
                  .public_key()
                  .Verify(consensus::PolicyApprovalMessage(successor.Hash()), approvals->front())
                  .ok());
  // Over this policy only: the parent's hash is another message.
  EXPECT_FALSE(TestKey("maint-1")
                   .public_key()
                   .Verify(consensus::PolicyApprovalMessage(first_hash_), approvals->front())
                   .ok());
  EXPECT_THAT(r.err, HasSubstr(successor.Hash()));
}

TEST_F(PolicyFilesTest, TwoSignedApprovalsMakeAValidLink) {
  const std::string one = Sign("maint-1", second_);
  const std::string two = Sign("maint-3", second_);
  auto approvals = consensus::ParseApprovals(one + two, "both");
  ASSERT_TRUE(approvals.ok()) << approvals.status();
  consensus::PolicyLink link{.toml = SecondPolicyToml(first_hash_), .approvals = *approvals};
  auto adopted = consensus::VerifyPolicyLink(Parse(FirstPolicyToml()), link, 1700000000);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_EQ(adopted->version(), 2);
}

TEST_F(PolicyFilesTest, SignRefusesAFileThatIsNotAPolicyAndSignsNothing) {
  WriteFileOrDie(dir_.File("broken.toml"), "version = 2\n[quorum]\nthreshold = 2\nmembers = [\"nobody\"]\n");
  Result r = Cli({"policy", "sign", "--key", Key("maint-1"), dir_.File("broken.toml")});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_THAT(r.err, HasSubstr("attest policy sign: "));
  EXPECT_THAT(r.err, HasSubstr("broken.toml"));
}

TEST_F(PolicyFilesTest, SignWarnsWhenThePolicyNamesNoParent) {
  Result r = Cli({"policy", "sign", "--key", Key("maint-1"), first_});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::StartsWith("maint-1:"));
  EXPECT_THAT(r.err, HasSubstr("names no parent"));
}

TEST_F(PolicyFilesTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Cli({"policy", "sign", second_}).code, 2);                                       // no --key
  EXPECT_EQ(Cli({"policy", "sign", "--key", Key("maint-1")}).code, 2);                       // no file
  EXPECT_EQ(Cli({"policy", "diff", first_}).code, 2);                                        // one file
  EXPECT_EQ(Cli({"policy", "submit", "--node", "127.0.0.1:1", "--policy", second_}).code, 2);  // no --signature
  EXPECT_EQ(Cli({"policy", "show", "--node", "127.0.0.1:1", first_}).code, 2);                // both
  Result help = Cli({"policy", "--help"});
  EXPECT_EQ(help.code, 0);
  for (const char* sub : {"policy sign", "policy submit", "policy show", "policy diff"}) {
    EXPECT_THAT(help.out, HasSubstr(Cat("attest ", sub)));
  }
  Result sub_help = Cli({"policy", "submit", "--help"});
  EXPECT_EQ(sub_help.code, 0);
  EXPECT_THAT(sub_help.out, HasSubstr("Example:\n  attest policy submit --node"));
}

TEST_F(PolicyFilesTest, DiffPrintsTheChangesAndThatNewIsAValidSuccessor) {
  Result r = Cli({"policy", "diff", first_, second_});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<std::string> expected =
      consensus::DiffPolicies(Parse(FirstPolicyToml()), Parse(SecondPolicyToml(first_hash_)));
  ASSERT_FALSE(expected.empty());
  for (const std::string& line : expected) EXPECT_THAT(r.out, HasSubstr(line + "\n"));
  EXPECT_THAT(r.out, HasSubstr("operator org-d"));
  EXPECT_THAT(r.out, HasSubstr(second_ + " is a valid successor of " + first_));
  EXPECT_THAT(r.out, HasSubstr("version 1 -> 2"));
  EXPECT_THAT(r.out, HasSubstr("needs 2 approval(s)"));
  EXPECT_THAT(r.out, Not(HasSubstr("no change")));
}

TEST_F(PolicyFilesTest, DiffOfTheSamePolicyInAnotherLayoutSaysNoChange) {
  WriteFileOrDie(dir_.File("again.toml"), "# reformatted\n\n" + FirstPolicyToml());
  Result r = Cli({"policy", "diff", first_, dir_.File("again.toml")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("no change: both are " + first_hash_));
  EXPECT_THAT(r.out, HasSubstr("is not a successor"));
}

TEST_F(PolicyFilesTest, DiffSaysWhyNewIsNotASuccessor) {
  const std::string skipping = dir_.File("policy-v3.toml");
  WriteFileOrDie(skipping, SecondPolicyToml(first_hash_, 3));
  Result r = Cli({"policy", "diff", first_, skipping});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("is not a successor of " + first_ + ": its version is 3, not 2"));

  const std::string elsewhere = dir_.File("other-parent.toml");
  const std::string other_hash = "sha256:" + std::string(64, 'a');
  WriteFileOrDie(elsewhere, SecondPolicyToml(other_hash));
  Result other = Cli({"policy", "diff", first_, elsewhere});
  EXPECT_EQ(other.code, 0) << other.err;
  EXPECT_THAT(other.out, HasSubstr("its parent is " + other_hash + ", but " + first_ + " is " + first_hash_));

  // Backwards is not a successor either: v1 names no parent.
  Result backwards = Cli({"policy", "diff", "--json", second_, first_});
  EXPECT_EQ(backwards.code, 0) << backwards.err;
  const json answer = json::parse(backwards.out);
  EXPECT_EQ(answer["successor"], false);
  EXPECT_EQ(answer["changed"], true);
}

TEST_F(PolicyFilesTest, ShowFilePrintsTheChainGroupsRulesAndKeyLifecycles) {
  const consensus::Policy second = Parse(SecondPolicyToml(first_hash_));
  Result r = Cli({"policy", "show", second_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(second.Hash()));
  EXPECT_THAT(r.out, HasSubstr(first_hash_));
  EXPECT_THAT(r.out, HasSubstr("need 2 of its maintainers' approvals"));
  EXPECT_THAT(r.out, HasSubstr("2 of (independent, nixos-hydra)"));
  EXPECT_THAT(r.out, HasSubstr("independent = 2 of (org-b, org-c, org-d)"));
  EXPECT_THAT(r.out, HasSubstr("openssl-*: any 3 operators"));
  EXPECT_THAT(r.out, HasSubstr("org-b-old (retired 2026-12-01 00:00:00Z)"));
  EXPECT_THAT(r.out, HasSubstr("org-d-lost (revoked: compromised)"));
  EXPECT_THAT(r.out, HasSubstr("maint-1, maint-2, maint-3"));

  Result j = Cli({"policy", "show", "--json", second_});
  ASSERT_EQ(j.code, 0) << j.err;
  const json view = json::parse(j.out);
  EXPECT_EQ(view["hash"], second.Hash());
  EXPECT_EQ(view["version"], 2);
  EXPECT_EQ(view["parent"], first_hash_);
  EXPECT_EQ(view["update_threshold"], 2);
  ASSERT_EQ(view["groups"].size(), 1u);
  EXPECT_EQ(view["groups"][0]["members"], json({"org-b", "org-c", "org-d"}));
  ASSERT_EQ(view["rules"].size(), 1u);
  EXPECT_EQ(view["rules"][0]["names"], json({"openssl-*"}));
  ASSERT_EQ(view["operators"].size(), 4u);
  EXPECT_EQ(view["operators"][1]["name"], "org-b");
  json states;
  for (const json& key : view["operators"][1]["builders"]) states[key["name"].get<std::string>()] = key["state"];
  EXPECT_EQ(states, json({{"org-b-1", "active"}, {"org-b-old", "retired"}}));
  EXPECT_FALSE(view.contains("approvals"));  // only a node has them

  // A first policy: flat quorum, no parent.
  Result first = Cli({"policy", "show", first_});
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_THAT(first.out, HasSubstr("any 2 operators"));
  EXPECT_THAT(first.out, HasSubstr("none (the first policy of its chain)"));
}

TEST_F(PolicyFilesTest, ShowOfABrokenFileFails) {
  WriteFileOrDie(dir_.File("broken.toml"), "quorum = 5\n");
  Result r = Cli({"policy", "show", dir_.File("broken.toml")});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_THAT(r.err, HasSubstr("broken.toml"));
}

TEST_F(PolicyFilesTest, SubmitAndShowToAnUnreachableNodeFailClearly) {
  const std::string sig = dir_.File("maint-1.sig");
  Sign("maint-1", second_);
  // Port 1 on loopback: nothing listens there.
  Result submit = Cli({"policy", "submit", "--node", "127.0.0.1:1", "--timeout", "1", "--policy", second_,
                       "--signature", sig});
  EXPECT_EQ(submit.code, 1);
  EXPECT_THAT(submit.out, IsEmpty());
  EXPECT_THAT(submit.err, HasSubstr("attest policy submit: node 127.0.0.1:1: SubmitPolicy: "));
  Result show = Cli({"policy", "show", "--node", "127.0.0.1:1", "--timeout", "1"});
  EXPECT_EQ(show.code, 1);
  EXPECT_THAT(show.err, HasSubstr("attest policy show: node 127.0.0.1:1: GetPolicy: "));
}

TEST_F(PolicyFilesTest, SubmitRefusesConflictingApprovalsOfOneMaintainerBeforeSending) {
  Sign("maint-1", second_);
  // maint-1's approval of another policy, in another file.
  Result other = Cli({"policy", "sign", "--key", Key("maint-1"), first_});
  ASSERT_EQ(other.code, 0);
  WriteFileOrDie(dir_.File("maint-1-old.sig"), other.out);
  Result r = Cli({"policy", "submit", "--node", "127.0.0.1:1", "--timeout", "1", "--policy", second_, "--signature",
                  dir_.File("maint-1.sig"), "--signature", dir_.File("maint-1-old.sig")});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("maintainer maint-1 has different approvals in"));
  EXPECT_THAT(r.err, Not(HasSubstr("SubmitPolicy")));  // never sent

  WriteFileOrDie(dir_.File("garbage.sig"), "not an approval\n");
  Result garbage = Cli({"policy", "submit", "--node", "127.0.0.1:1", "--timeout", "1", "--policy", second_,
                        "--signature", dir_.File("garbage.sig")});
  EXPECT_EQ(garbage.code, 1);
  EXPECT_THAT(garbage.err, HasSubstr("garbage.sig"));
}

// ---------------------------------------------------------------------------------------------------
// Against a real node started on the first policy.

class PolicyNodeTest : public PolicyFilesTest {
 protected:
  void SetUp() override {
    PolicyFilesTest::SetUp();
    WriteFileOrDie(dir_.File("policy.toml"), FirstPolicyToml());
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

  Result Submit(std::vector<std::string> signers) {
    std::vector<std::string> args{"policy", "submit", "--node", address_, "--timeout", "10", "--policy", second_};
    for (const std::string& signer : signers) {
      args.push_back("--signature");
      args.push_back(dir_.File(signer + ".sig"));
    }
    return Cli(args);
  }

  json ShowJson() {
    Result r = Cli({"policy", "show", "--node", address_, "--json"});
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  std::unique_ptr<server::Node> node_;
  std::string address_;
};

TEST_F(PolicyNodeTest, ShowNodeBeforeAnyUpdateIsThePolicyFile) {
  Result r = Cli({"policy", "show", "--node", address_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(first_hash_));
  EXPECT_THAT(r.out, HasSubstr("from the node's policy file"));
  const json view = ShowJson();
  EXPECT_EQ(view["hash"], first_hash_);
  EXPECT_EQ(view["version"], 1);
  EXPECT_EQ(view["parent"], "");
  EXPECT_EQ(view["approvals"], json::array());
}

TEST_F(PolicyNodeTest, SubmitWithEnoughApprovalsIsAdoptedAndShown) {
  Sign("maint-1", second_);
  Sign("maint-2", second_);
  const std::string second_hash = Parse(SecondPolicyToml(first_hash_)).Hash();
  Result r = Submit({"maint-1", "maint-2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(second_hash));
  EXPECT_THAT(r.out, HasSubstr(first_hash_));
  EXPECT_THAT(r.out, HasSubstr("2 counted (maint-1, maint-2)"));

  const json view = ShowJson();
  EXPECT_EQ(view["hash"], second_hash);
  EXPECT_EQ(view["version"], 2);
  EXPECT_EQ(view["parent"], first_hash_);
  EXPECT_THAT(view["counted_approvals"].get<std::vector<std::string>>(), ElementsAre("maint-1", "maint-2"));
  EXPECT_EQ(view["approvals"].size(), 2u);
  EXPECT_GT(view["adopted_unix"].get<int64_t>(), 0);
  EXPECT_EQ(view["adopted_from"], "");
  EXPECT_EQ(view["groups"].size(), 1u);

  // The same update again: the node says it is current already.
  Result again = Submit({"maint-1", "maint-2"});
  EXPECT_EQ(again.code, 1);
  EXPECT_THAT(again.out, IsEmpty());
  EXPECT_THAT(again.err, HasSubstr("SubmitPolicy: "));
}

TEST_F(PolicyNodeTest, OneApprovalShortIsRefusedWithTheNodesReasonAndNothingChanges) {
  Sign("maint-1", second_);
  Sign("outsider", second_);
  Result r = Submit({"maint-1", "outsider"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_THAT(r.err, HasSubstr("attest policy submit: node " + address_ + ": SubmitPolicy: "));
  EXPECT_THAT(r.err, HasSubstr("outsider"));  // the node says why that approval did not count
  EXPECT_EQ(ShowJson()["hash"], first_hash_);
}

TEST_F(PolicyNodeTest, StatusAndVerifyAfterAnUpdateNameTheRuleAndTheVersion) {
  Sign("maint-1", second_);
  Sign("maint-2", second_);
  ASSERT_EQ(Submit({"maint-1", "maint-2"}).code, 0);
  const std::string second_hash = Parse(SecondPolicyToml(first_hash_)).Hash();

  // nixos-hydra and org-b agree: the hydra half of the quorum is met, the independent half is not.
  const consensus::PathInfo hello = ::attest::testing::TestClaim("hello", "same bytes");
  auto node = ConnectGrpcNode(NodeOptions{.address = address_});
  ASSERT_TRUE(node.ok()) << node.status();
  v1::SubmitRequest request;
  for (const char* key : {"hydra-1", "org-b-1"}) {
    consensus::BuildMetadata metadata;
    metadata.build_kind = consensus::BuildKind::kFirstBuild;
    *request.add_attestations() = proto::ToProto(consensus::SignAttestation(hello, TestKey(key), metadata));
  }
  auto submitted = (*node)->Submit(request);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  for (const v1::SubmitResult& result : submitted->results()) {
    EXPECT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.message();
  }

  Result text = Cli({"status", "--node", address_, hello.path.full()});
  EXPECT_EQ(text.code, 1);  // not CONFIRMED
  EXPECT_THAT(text.out, HasSubstr("PENDING   " + hello.path.full() + "  rule default: "));
  EXPECT_THAT(text.out, HasSubstr("independent: 1 of 2 needed"));
  EXPECT_THAT(text.err, HasSubstr("answered under policy version 2 (" + second_hash + ")"));

  Result status = Cli({"status", "--node", address_, "--json", hello.path.full()});
  EXPECT_EQ(status.code, 1);
  const json answer = json::parse(status.out, nullptr, false);
  ASSERT_TRUE(answer.is_array() && answer.size() == 1) << status.out;
  EXPECT_EQ(answer[0]["policy_version"], 2);
  EXPECT_EQ(answer[0]["rule"], "default");
  EXPECT_EQ(answer[0]["quorum_text"].get<std::string>().empty(), false);
  EXPECT_THAT(answer[0]["quorum_explanation"].get<std::string>(), HasSubstr("independent: 1 of 2 needed"));
  for (const json& attestation : answer[0]["attestations"]) EXPECT_GT(attestation["receivedTime"], 0);
  const std::string answer_file = dir_.File("status.json");
  WriteFileOrDie(answer_file, status.out);

  Result verified = Cli({"verify", "--policy", second_, answer_file});
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;
  EXPECT_THAT(verified.out, HasSubstr("ok    PENDING " + hello.path.full()));
  EXPECT_THAT(verified.out, HasSubstr("rule default: "));
  EXPECT_THAT(verified.out, HasSubstr("independent: 1 of 2 needed"));

  // Checked with the policy it replaced: the answer says which one it was computed under.
  Result stale = Cli({"verify", "--policy", first_, answer_file});
  EXPECT_EQ(stale.code, 1);
  EXPECT_THAT(stale.out, HasSubstr("the node answered under policy " + second_hash + " (version 2) but " + first_ +
                                   " is " + first_hash_ + " (version 1)"));
}

}  // namespace
}  // namespace attest::client
