// The subcommands run in-process through RunCli, against a fake node that stores attestations and
// tallies them with the real consensus code.
#include "client/cli.h"

#include <sys/stat.h>

#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/attestation.h"
#include "consensus/dispute.h"
#include "consensus/nar_hash.h"
#include "consensus/policy.h"
#include "consensus/sha256.h"
#include "consensus/tally.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TempDir;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::attest::testing::WriteFileOrDie;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kCacheNixosOrgKey =
    "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

// A node in miniature: verifies and stores attestations by policy keys, tallies with consensus::Tally.
class FakeNode final {
 public:
  explicit FakeNode(consensus::Policy policy) : policy_(std::move(policy)) {}

  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request) {
    ++submit_calls;
    if (!fail_with.ok()) return fail_with;
    v1::SubmitResponse response;
    for (const v1::Attestation& message : request.attestations()) {
      v1::SubmitResult* result = response.add_results();
      auto attestation = proto::FromProto(message);
      if (!attestation.ok()) {
        result->set_outcome(v1::SubmitResult::REJECTED);
        result->set_code(3);
        result->set_message(std::string(attestation.status().message()));
        continue;
      }
      const consensus::PublicKey* key = policy_.FindBuilder(attestation->key_name());
      if (key == nullptr) {
        result->set_outcome(v1::SubmitResult::REJECTED);
        result->set_code(16);
        result->set_message("key " + attestation->key_name() + " is not a builder key in the policy");
        continue;
      }
      if (!consensus::VerifyAttestation(*attestation, *key).ok()) {
        result->set_outcome(v1::SubmitResult::REJECTED);
        result->set_code(16);
        result->set_message("signature does not verify");
        continue;
      }
      bool present = false;
      for (const auto& stored : stored_) present = present || stored.signature == attestation->signature;
      if (present) {
        result->set_outcome(v1::SubmitResult::ALREADY_PRESENT);
        continue;
      }
      stored_.push_back(*attestation);
      result->set_outcome(v1::SubmitResult::ACCEPTED);
    }
    return response;
  }

  absl::StatusOr<v1::StatusResponse> Status(const v1::StatusRequest& request) {
    status_requests.push_back(request.store_paths_size());
    if (!fail_with.ok()) return fail_with;
    if (request.store_paths_size() > max_status_answers) {
      return absl::ResourceExhaustedError("the answer for these paths would be too large; ask for fewer paths");
    }
    v1::StatusResponse response;
    std::map<std::string, int> first_position;
    for (const std::string& path : request.store_paths()) {
      // Like the node: a repeated path is answered by reference to its first position.
      auto [first, inserted] = first_position.try_emplace(path, response.statuses_size());
      if (!inserted) {
        v1::PathStatus* reference = response.add_statuses();
        reference->set_store_path(path);
        reference->set_verdict(response.statuses(first->second).verdict());
        reference->set_repeat_of(first->second);
        continue;
      }
      std::vector<consensus::Attestation> about;
      for (const auto& a : stored_) {
        if (a.claim.path.full() == path) about.push_back(a);
      }
      const consensus::TallyResult tally = consensus::Tally(policy_, about);
      v1::PathStatus* status = response.add_statuses();
      status->set_store_path(path);
      status->set_verdict(proto::ToProto(tally.verdict));
      for (size_t f = 0; f < tally.fingerprints.size(); ++f) {
        const consensus::FingerprintTally& t = tally.fingerprints[f];
        v1::FingerprintTally* out = status->add_fingerprints();
        out->set_fingerprint(t.fingerprint);
        for (const auto& op : t.operators) out->add_operators(op);
        for (const auto& b : t.builders) out->add_builders(b);
        for (size_t i : t.attestations) {
          v1::CountedAttestation* counted = status->add_attestations();
          counted->set_signature(about[i].signature.ToString());
          counted->set_fingerprint_index(static_cast<int32_t>(f));
          *counted->mutable_metadata() = proto::ToProto(about[i].metadata);
        }
      }
      for (const auto& f : tally.flagged_builders) status->add_flagged_builders(f);
      if (tally.verdict == consensus::Verdict::kDisputed) {
        status->set_dispute_id(consensus::DisputeId(*consensus::StorePath::Parse(path)));
      }
      status->set_quorum(policy_.quorum());
      status->set_policy_hash(policy_.Hash());
    }
    return response;
  }

  absl::StatusOr<v1::ListDisputesResponse> ListDisputes(const v1::ListDisputesRequest& request) {
    ++list_calls;
    v1::ListDisputesResponse response;
    const size_t start = request.page_token().empty() ? 0 : std::stoul(request.page_token());
    const size_t size =
        page_size_override > 0 ? page_size_override : static_cast<size_t>(request.page_size());
    for (size_t i = start; i < disputes.size() && i < start + size; ++i)
      *response.add_disputes() = disputes[i];
    if (start + size < disputes.size()) response.set_next_page_token(std::to_string(start + size));
    return response;
  }

  absl::StatusOr<v1::Dispute> GetDispute(const v1::GetDisputeRequest& request) {
    for (const auto& d : disputes) {
      if (d.id() == request.id() || d.store_path() == request.id()) return d;
    }
    return absl::NotFoundError("no dispute " + request.id());
  }

  const std::vector<consensus::Attestation>& stored() const { return stored_; }

  int submit_calls = 0;
  int list_calls = 0;
  std::vector<int> status_requests;  // paths per Status request, in order
  int max_status_answers = 1000000;  // more paths per request: RESOURCE_EXHAUSTED
  size_t page_size_override = 0;
  absl::Status fail_with;
  std::vector<v1::Dispute> disputes;
  NodeOptions last_options;

 private:
  consensus::Policy policy_;
  std::vector<consensus::Attestation> stored_;
};

class FakeNodeApi final : public NodeApi {
 public:
  explicit FakeNodeApi(FakeNode* node) : node_(node) {}
  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& r) override { return node_->Submit(r); }
  absl::StatusOr<v1::StatusResponse> Status(const v1::StatusRequest& r) override { return node_->Status(r); }
  absl::StatusOr<v1::ListDisputesResponse> ListDisputes(const v1::ListDisputesRequest& r) override {
    return node_->ListDisputes(r);
  }
  absl::StatusOr<v1::Dispute> GetDispute(const v1::GetDisputeRequest& r) override {
    return node_->GetDispute(r);
  }
  absl::StatusOr<v1::PolicyInfo> GetPolicy(const v1::GetPolicyRequest&) override {
    return absl::UnimplementedError("not faked");
  }

 private:
  FakeNode* node_;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

// Three operators, quorum 2; cache.nixos.org is a fourth operator so imports count.
std::string PolicyToml() {
  return absl::StrCat(
      "quorum = 2\n", "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"",
      TestKey("alice-1").public_key().ToString(), "\", \"", TestKey("alice-2").public_key().ToString(),
      "\"]\n", "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"", TestKey("bob-1").public_key().ToString(),
      "\"]\n", "[[operator]]\nname = \"carol\"\nbuilders = [\"", TestKey("carol-1").public_key().ToString(),
      "\"]\n", "[[operator]]\nname = \"nixos\"\nbuilders = [\"", std::string(kCacheNixosOrgKey), "\"]\n");
}

class CliTest : public ::testing::Test {
 protected:
  CliTest() : node_(*consensus::Policy::ParseToml(PolicyToml(), "policy.toml")) {
    WriteFileOrDie(dir_.File("policy.toml"), PolicyToml());
    for (const char* name : {"alice-1", "bob-1", "carol-1", "mallory-1"}) {
      WriteFileOrDie(dir_.File(std::string(name) + ".sec"), TestKey(name).ExportText());
    }
  }

  Result Cli(std::vector<std::string> args, const std::string& input = "") {
    std::istringstream in(input);
    std::ostringstream out, err;
    CommandEnv env{
        .in = in,
        .out = out,
        .err = err,
        .connect_node = [this](const NodeOptions& options) -> absl::StatusOr<std::unique_ptr<NodeApi>> {
          node_.last_options = options;
          return std::make_unique<FakeNodeApi>(&node_);
        },
        .random_bytes =
            [](std::span<uint8_t> bytes) {
              for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 1);
            },
        .default_node = "",
    };
    Result r;
    r.code = RunCli(args, env);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  // `nix path-info --json` (2.8 list form) for (name, content) outputs.
  static std::string PathInfoJson(const std::vector<std::pair<std::string, std::string>>& outputs,
                                  bool ultimate = true) {
    json list = json::array();
    for (const auto& [name, content] : outputs) {
      json item = {{"path", TestStorePath(name).full()},
                   {"narHash", consensus::NarHash::FromDigest(consensus::Sha256(content)).ToSri()},
                   {"narSize", 100 + content.size()},
                   {"references", json::array()},
                   {"deriver", TestStorePath(name + ".drv").full()},
                   {"registrationTime", 1795582660}};
      if (ultimate) item["ultimate"] = true;
      list.push_back(item);
    }
    return list.dump();
  }

  Result Submit(const std::string& key, const std::string& path_info, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"submit", "-", "--node", "fake:1", "--key", dir_.File(key + ".sec")};
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args, path_info);
  }

  TempDir dir_;
  FakeNode node_;
};

TEST_F(CliTest, EverySubcommandHasHelpWithAnExample) {
  for (std::vector<std::string> command : {std::vector<std::string>{"submit"},
                                           {"import"},
                                           {"status"},
                                           {"disputes", "list"},
                                           {"disputes", "show"},
                                           {"disputes", "diff"},
                                           {"sources"},
                                           {"wanted"},
                                           {"verify"},
                                           {"narinfo", "verify"},
                                           {"key", "generate"},
                                           {"key", "public"}}) {
    std::string name;
    for (const auto& part : command) name += (name.empty() ? "" : " ") + part;
    command.push_back("--help");
    Result r = Cli(command);
    EXPECT_EQ(r.code, 0) << name << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage: attest " + name)) << name;
    const size_t example = r.out.find("\nExample:\n");
    ASSERT_NE(example, std::string::npos) << name;
    EXPECT_THAT(r.out.substr(example), HasSubstr("attest " + name)) << name;
    EXPECT_TRUE(r.err.empty()) << name << ": help goes to stdout";
  }
  Result top = Cli({"--help"});
  EXPECT_EQ(top.code, 0);
  EXPECT_THAT(top.out, HasSubstr("narinfo verify"));
  EXPECT_EQ(Cli({"disputes", "--help"}).code, 0);
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Cli({}).code, 2);
  Result unknown = Cli({"stauts"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("did you mean 'status'"));
  EXPECT_EQ(Cli({"status"}).code, 2);
  EXPECT_EQ(Cli({"status", "--node"}).code, 2);
  EXPECT_EQ(Cli({"status", TestStorePath("x").full()}).code, 2) << "no node";
  Result bad_option = Cli({"status", "--node", "n:1", "--jsn", TestStorePath("x").full()});
  EXPECT_EQ(bad_option.code, 2);
  EXPECT_THAT(bad_option.err, HasSubstr("did you mean --json?"));
  EXPECT_THAT(bad_option.err, HasSubstr("attest status --help"));
  EXPECT_EQ(Cli({"status", "--node", "n:1", "not-a-store-path"}).code, 2);
  EXPECT_EQ(Cli({"disputes"}).code, 2);
  EXPECT_EQ(Cli({"disputes", "frob"}).code, 2);
  EXPECT_EQ(Cli({"submit", "--node", "n:1", "-"}).code, 2) << "no --key";
  EXPECT_EQ(Cli({"submit", "--node", "n:1", "--key", "k", "--batch-size", "0"}).code, 2);
  EXPECT_EQ(Cli({"status", "--node", "n:1", "--timeout", "soon", TestStorePath("x").full()}).code, 2);
  EXPECT_EQ(Cli({"verify"}).code, 2);
  EXPECT_EQ(Cli({"narinfo", "verify", "x.narinfo"}).code, 2) << "no trusted key";
  EXPECT_EQ(Cli({"key", "generate"}).code, 2);
  EXPECT_EQ(Cli({"key", "generate", "--name", "bad name"}).code, 2);
}

TEST_F(CliTest, SubmitSignsAndReportsEachPath) {
  Result r = Submit("alice-1", PathInfoJson({{"hello", "same"}, {"world", "bytes"}}), {"--timeout", "5"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("accepted        " + TestStorePath("hello").full() + " (alice-1)"));
  EXPECT_THAT(r.out, HasSubstr("accepted        " + TestStorePath("world").full()));
  EXPECT_EQ(node_.last_options.address, "fake:1");
  EXPECT_EQ(node_.last_options.timeout, absl::Seconds(5));
  ASSERT_EQ(node_.stored().size(), 2u);
  const consensus::Attestation& first = node_.stored()[0];
  EXPECT_EQ(first.metadata.build_kind, consensus::BuildKind::kFirstBuild);
  EXPECT_EQ(first.metadata.deriver, TestStorePath("hello.drv").full());
  EXPECT_EQ(first.metadata.build_time_unix, 1795582660);

  // Idempotent: the same submission again is "already present" and still a success.
  Result again = Submit("alice-1", PathInfoJson({{"hello", "same"}}));
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("already present"));
}

TEST_F(CliTest, SubmitRefusesSubstitutedPathsUnlessTold) {
  Result refused = Submit("alice-1", PathInfoJson({{"substituted", "y"}}, /*ultimate=*/false));
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err,
              HasSubstr("path " + TestStorePath("substituted").full() +
                        " is not marked ultimate (it was substituted, not built here): an attestation "
                        "must come from an independent rebuild; pass --not-built-here-ok to override"));
  EXPECT_THAT(refused.out, HasSubstr("refused"));
  EXPECT_EQ(node_.submit_calls, 0);
  EXPECT_TRUE(node_.stored().empty());

  Result forced = Submit("alice-1", PathInfoJson({{"substituted", "y"}}, false), {"--not-built-here-ok"});
  EXPECT_EQ(forced.code, 0) << forced.err;
  EXPECT_EQ(node_.stored().size(), 1u);
}

TEST_F(CliTest, SubmitSendsInBatches) {
  Result r =
      Submit("bob-1", PathInfoJson({{"a", "1"}, {"b", "2"}, {"c", "3"}}), {"--batch-size=2", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(node_.submit_calls, 2);
  json results = json::parse(r.out);
  ASSERT_EQ(results.size(), 3u);
  for (const auto& item : results) EXPECT_EQ(item["outcome"], "accepted");
}

TEST_F(CliTest, SubmitByKeyOutsideThePolicyFails) {
  Result r = Submit("mallory-1", PathInfoJson({{"hello", "same"}}));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("rejected"));
  EXPECT_THAT(r.out, HasSubstr("not a builder key"));
}

TEST_F(CliTest, SubmitToAnUnreachableNodeFails) {
  node_.fail_with = absl::UnavailableError("node fake:1: connection refused");
  Result r = Submit("alice-1", PathInfoJson({{"hello", "same"}, {"world", "x"}}));
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("not sent"));
  EXPECT_THAT(r.err, HasSubstr("connection refused"));
}

TEST_F(CliTest, SubmitRejectsBrokenInputAndKeys) {
  EXPECT_EQ(Submit("alice-1", "not json").code, 1);
  Result no_key = Cli({"submit", "--node", "n:1", "--key", dir_.File("missing.sec"), "-"}, "[]");
  EXPECT_EQ(no_key.code, 1);
  EXPECT_THAT(no_key.err, HasSubstr("missing.sec"));
  WriteFileOrDie(dir_.File("public.key"), TestKey("alice-1").public_key().ToString());
  EXPECT_EQ(Cli({"submit", "--node", "n:1", "--key", dir_.File("public.key"), "-"}, "[]").code, 1);
}

TEST_F(CliTest, StatusExitsZeroOnlyWhenEveryPathIsConfirmed) {
  ASSERT_EQ(Submit("alice-1", PathInfoJson({{"hello", "same"}, {"nondet", "1"}, {"lonely", "x"}})).code, 0);
  ASSERT_EQ(Submit("bob-1", PathInfoJson({{"hello", "same"}, {"nondet", "2"}})).code, 0);
  const std::string hello = TestStorePath("hello").full();
  const std::string nondet = TestStorePath("nondet").full();
  const std::string lonely = TestStorePath("lonely").full();

  Result confirmed = Cli({"status", hello, "--node", "fake:1"});
  EXPECT_EQ(confirmed.code, 0) << confirmed.err;
  EXPECT_THAT(confirmed.out,
              HasSubstr("CONFIRMED " + hello + ": 2 operators agree, quorum 2 (alice-ci, bob-labs)"));

  Result mixed =
      Cli({"status", "--node", "fake:1", "--json", hello, nondet, lonely, TestStorePath("never").full()});
  EXPECT_EQ(mixed.code, 1);
  json list = json::parse(mixed.out);
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0]["verdict"], "CONFIRMED");
  EXPECT_EQ(list[1]["verdict"], "DISPUTED");
  EXPECT_EQ(list[2]["verdict"], "PENDING");
  EXPECT_EQ(list[3]["verdict"], "UNKNOWN");
  for (const char* field : {"path", "verdict", "fingerprint", "fingerprints", "flagged_builders",
                            "dispute_id", "quorum", "policy_hash", "attestations"}) {
    EXPECT_TRUE(list[0].contains(field)) << field;
  }
  EXPECT_FALSE(list[1]["dispute_id"].get<std::string>().empty());
  ASSERT_EQ(list[0]["attestations"].size(), 2u);
  const json& att = list[0]["attestations"][0];
  for (const char* field : {"path", "narHash", "narSize", "references", "signature", "deriver", "outputName",
                            "system", "buildKind", "buildTime"}) {
    EXPECT_TRUE(att.contains(field)) << field;
  }
  EXPECT_THAT(att["narHash"].get<std::string>(), ::testing::StartsWith("sha256:"));
  EXPECT_EQ(att["narHash"].get<std::string>().size(), 7u + 52u);
  EXPECT_EQ(att["buildKind"], "build");

  // Paths from stdin, one per line.
  Result from_stdin = Cli({"status", "--node", "fake:1", "-"}, hello + "\n\n" + lonely + "\n");
  EXPECT_EQ(from_stdin.code, 1);
  EXPECT_THAT(from_stdin.out, HasSubstr("PENDING   " + lonely));
}

TEST_F(CliTest, StatusResolvesRepeatsAndSplitsRequestsTheNodeFindsTooLarge) {
  ASSERT_EQ(Submit("alice-1", PathInfoJson({{"hello", "same"}, {"lonely", "x"}})).code, 0);
  ASSERT_EQ(Submit("bob-1", PathInfoJson({{"hello", "same"}})).code, 0);
  const std::string hello = TestStorePath("hello").full();
  const std::string lonely = TestStorePath("lonely").full();
  // The node takes at most 2 paths at a time: 5 paths are asked as 2 + 3, then 3 as 1 + 2.
  node_.max_status_answers = 2;
  Result r = Cli({"status", "--node", "fake:1", "--json", hello, lonely, hello, TestStorePath("never").full(), hello});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_THAT(node_.status_requests, ElementsAre(5, 2, 3, 1, 2));
  json list = json::parse(r.out);
  ASSERT_EQ(list.size(), 5u);
  // A repeat answered by reference is printed in full, like the first answer for its path.
  EXPECT_EQ(list[2], list[0]);
  EXPECT_EQ(list[4], list[0]);
  EXPECT_EQ(list[0]["verdict"], "CONFIRMED");
  EXPECT_EQ(list[0]["attestations"].size(), 2u);
  EXPECT_EQ(list[1]["verdict"], "PENDING");
  EXPECT_EQ(list[3]["verdict"], "UNKNOWN");
  Result verify = Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, r.out);
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;

  // One path the node cannot answer within its limit: its message, exit 1.
  node_.max_status_answers = 0;
  Result refused = Cli({"status", "--node", "fake:1", hello});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("ask for fewer paths"));
}

TEST_F(CliTest, StatusAnswerVerifiesOfflineAndLiesAreCaught) {
  ASSERT_EQ(Submit("alice-1", PathInfoJson({{"hello", "same"}, {"nondet", "1"}})).code, 0);
  ASSERT_EQ(Submit("bob-1", PathInfoJson({{"hello", "same"}, {"nondet", "2"}})).code, 0);
  Result status = Cli({"status", "--json", "--node", "fake:1", TestStorePath("hello").full(),
                       TestStorePath("nondet").full()});
  ASSERT_EQ(status.code, 1);

  Result verify = Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, status.out);
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
  EXPECT_THAT(verify.out, HasSubstr("ok    CONFIRMED " + TestStorePath("hello").full()));
  EXPECT_THAT(verify.out, HasSubstr("ok    DISPUTED " + TestStorePath("nondet").full()));

  WriteFileOrDie(dir_.File("status.json"), status.out);
  EXPECT_EQ(Cli({"verify", dir_.File("status.json"), "--policy=" + dir_.File("policy.toml")}).code, 0);

  json lie = json::parse(status.out);
  lie[1]["verdict"] = "CONFIRMED";
  Result caught = Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, lie.dump());
  EXPECT_EQ(caught.code, 1);
  EXPECT_THAT(caught.out, HasSubstr("FAIL  " + TestStorePath("nondet").full()));
  EXPECT_THAT(caught.out, HasSubstr("the node claims CONFIRMED but the attestations give DISPUTED"));

  json forged = json::parse(status.out);
  std::string sig = forged[0]["attestations"][0]["signature"];
  sig[sig.size() - 5] = sig[sig.size() - 5] == 'A' ? 'B' : 'A';
  forged[0]["attestations"][0]["signature"] = sig;
  caught = Cli({"verify", "--policy", dir_.File("policy.toml"), "--json", "-"}, forged.dump());
  EXPECT_EQ(caught.code, 1);
  json report = json::parse(caught.out);
  EXPECT_FALSE(report[0]["ok"].get<bool>());
  EXPECT_TRUE(report[1]["ok"].get<bool>());

  EXPECT_EQ(Cli({"verify", "--policy", dir_.File("missing.toml"), "-"}, status.out).code, 1);
  EXPECT_EQ(Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, "not json").code, 1);
}

TEST_F(CliTest, ImportTurnsSigLinesIntoAttestationsAndSkipsMalformedOnes) {
  const std::string narinfo =
      ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) + "/narinfo/syd87l2rxw8cbsxmxl853h0r6pdwhwjr.narinfo");
  Result r = Cli({"import", "--node", "fake:1", "-"}, narinfo);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("accepted        /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin "
                               "(cache.nixos.org-1)"));
  ASSERT_EQ(node_.stored().size(), 1u);
  EXPECT_EQ(node_.stored()[0].metadata.build_kind, consensus::BuildKind::kImported);
  EXPECT_EQ(node_.stored()[0].metadata.deriver,
            "/nix/store/5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0.drv");

  WriteFileOrDie(dir_.File("curl.narinfo"), narinfo + "Sig: broken\n");
  Result skipped = Cli({"import", dir_.File("curl.narinfo"), "--node", "fake:1"});
  EXPECT_EQ(skipped.code, 1) << "a skipped signature is not a clean import";
  EXPECT_THAT(skipped.err, HasSubstr("skipping malformed Sig line"));
  EXPECT_THAT(skipped.out, HasSubstr("already present"));
  EXPECT_THAT(skipped.out, HasSubstr("skipped"));

  Result bad = Cli({"import", "--node", "fake:1", "-"}, "StorePath: nonsense\n");
  EXPECT_EQ(bad.code, 1);
}

TEST_F(CliTest, DisputesListPagesThroughAndShowFindsByPath) {
  for (int i = 0; i < 5; ++i) {
    v1::Dispute d;
    d.set_id(absl::StrCat("d-", i));
    d.set_store_path(TestStorePath(absl::StrCat("p", i)).full());
    d.set_state("open");
    d.set_opened_unix(1700000000 + i);
    d.set_updated_unix(1700000100 + i);
    d.set_signed_record("attest/dispute/v1\nid d-x\n");
    v1::FingerprintTally* t = d.add_fingerprints();
    t->set_fingerprint("1;x");
    t->add_operators("alice-ci");
    node_.disputes.push_back(d);
  }
  node_.page_size_override = 2;
  Result list = Cli({"disputes", "list", "--json", "--node", "fake:1"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(node_.list_calls, 3);
  json disputes = json::parse(list.out);
  ASSERT_EQ(disputes.size(), 5u);
  for (const char* field : {"id", "path", "state", "opened", "updated", "fingerprints"}) {
    EXPECT_TRUE(disputes[0].contains(field)) << field;
  }
  EXPECT_FALSE(disputes[0].contains("signed_record"));

  Result text = Cli({"disputes", "list", "--node", "fake:1"});
  EXPECT_THAT(text.out, HasSubstr("d-0  open  " + TestStorePath("p0").full()));
  EXPECT_THAT(text.out, HasSubstr("2023-11-14T22:13:20Z"));

  Result show = Cli({"disputes", "show", TestStorePath("p3").full(), "--json", "--node", "fake:1"});
  ASSERT_EQ(show.code, 0) << show.err;
  json dispute = json::parse(show.out);
  EXPECT_EQ(dispute["id"], "d-3");
  EXPECT_THAT(dispute["signed_record"].get<std::string>(), HasSubstr("attest/dispute/v1\n"));
  EXPECT_TRUE(dispute.contains("attestations"));

  Result missing = Cli({"disputes", "show", "d-nope", "--node", "fake:1"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("no dispute d-nope"));
  EXPECT_EQ(Cli({"disputes", "show", "--node", "fake:1"}).code, 2);
}

TEST_F(CliTest, NarInfoVerifyChecksAgainstTrustedKeys) {
  const std::string file =
      std::string(ATTEST_TESTDATA_DIR) + "/narinfo/syd87l2rxw8cbsxmxl853h0r6pdwhwjr.narinfo";
  Result ok = Cli({"narinfo", "verify", "--trusted-key", std::string(kCacheNixosOrgKey), file});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_THAT(ok.out,
              HasSubstr("ok    /nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin: signed by "
                        "cache.nixos.org-1"));

  Result from_stdin = Cli({"narinfo", "verify", "-", "--trusted-key=" + std::string(kCacheNixosOrgKey),
                           "--trusted-key", TestKey("other").public_key().ToString()},
                          ReadFileOrDie(file));
  EXPECT_EQ(from_stdin.code, 0) << from_stdin.err;

  Result wrong = Cli({"narinfo", "verify", "--trusted-key", TestKey("other").public_key().ToString(), file});
  EXPECT_EQ(wrong.code, 1);
  EXPECT_THAT(wrong.out, HasSubstr("FAIL"));
  EXPECT_THAT(wrong.out, HasSubstr("no trusted key is named 'cache.nixos.org-1'"));

  Result renamed = Cli({"narinfo", "verify", "--trusted-key",
                        "cache.nixos.org-2:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=", file});
  EXPECT_EQ(renamed.code, 1) << "a signature counts only under the key of its own name";

  Result json_out = Cli({"narinfo", "verify", "--json", "--trusted-key", std::string(kCacheNixosOrgKey), file,
                         dir_.File("missing.narinfo")});
  EXPECT_EQ(json_out.code, 1);
  json results = json::parse(json_out.out);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0]["ok"].get<bool>());
  EXPECT_FALSE(results[1]["ok"].get<bool>());
}

TEST_F(CliTest, KeyGenerateAndPublicMatchNixFormat) {
  Result secret = Cli({"key", "generate", "--name", "builder-eu-1"});
  ASSERT_EQ(secret.code, 0) << secret.err;
  EXPECT_THAT(secret.out, Not(HasSubstr("\n"))) << "like nix key generate-secret: no trailing newline";
  auto parsed = consensus::SecretKey::Parse(secret.out);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->name(), "builder-eu-1");
  EXPECT_EQ(secret.out.size(), std::string("builder-eu-1:").size() + 88);

  Result pub = Cli({"key", "public"}, secret.out);
  ASSERT_EQ(pub.code, 0) << pub.err;
  EXPECT_EQ(pub.out, parsed->public_key().ToString());

  // A secret key made by real Nix 2.8, and its public key as Nix printed it (tests/testdata/policy).
  Result nix =
      Cli({"key", "public", std::string(ATTEST_TESTDATA_DIR) + "/policy/nix-alice-builder-1.secret"});
  ASSERT_EQ(nix.code, 0) << nix.err;
  EXPECT_EQ(nix.out, "alice-builder-1:1DGlt7s1ECc+BT6SBJUc/Cm1v2AtecC+Pqc8xPtCJQY=");

  const std::string file = dir_.File("new.sec");
  Result to_file = Cli({"key", "generate", "--name", "builder-eu-2", "--out", file});
  ASSERT_EQ(to_file.code, 0) << to_file.err;
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  auto written = consensus::SecretKey::Parse(ReadFileOrDie(file));
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(to_file.out, written->public_key().ToString() + "\n");
  Result again = Cli({"key", "generate", "--name", "builder-eu-2", "--out", file});
  EXPECT_EQ(again.code, 1);
  EXPECT_THAT(again.err, HasSubstr("already exists"));

  EXPECT_EQ(Cli({"key", "public"}, "garbage").code, 1);
}

}  // namespace
}  // namespace attest::client
