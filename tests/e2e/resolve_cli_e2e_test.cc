// End-to-end: a maintainer resolves a dispute with the real attest CLI against a real attestd. Keys
// come from real `nix key generate-secret`: three builders of three operators (quorum 2) and one
// maintainer listed in the policy's [[maintainer]] table. Two builders agree on a path, the third
// signs other bytes; the maintainer names the third malicious, which makes the path CONFIRMED on the
// two honest operators, with the statement carried in the answer so a client re-checks it offline.
#include <sys/wait.h>

#include <csignal>
#include <ctime>
#include <memory>
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

constexpr char kPathName[] = "contested";

// `nix path-info --json` output (Nix 2.8 list form) for one synthetic output with these NAR bytes.
// Not marked "ultimate", as a substituted path would not be: the submissions pass --not-built-here-ok.
std::string PathInfoJson(const std::string& name, const std::string& content) {
  json item = {{"path", TestStorePath(name).full()},
               {"narHash", consensus::NarHash::FromDigest(consensus::Sha256(content)).ToSri()},
               {"narSize", 100 + content.size()},
               {"references", json::array()},
               {"registrationTime", 1795582660}};
  return json::array({item}).dump();
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class ResolveCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = MakeNixKey(dir_, "alice-builder-1");
    bob_ = MakeNixKey(dir_, "bob-builder-1");
    evil_ = MakeNixKey(dir_, "carol-builder-1");
    maintainer_ = MakeNixKey(dir_, "maint-1");
    const std::string policy = absl::StrCat(PolicyToml(2, {{"alice-ci", {alice_.public_text}},
                                                           {"bob-labs", {bob_.public_text}},
                                                           {"carol-home", {evil_.public_text}}}),
                                            "\n[[maintainer]]\nkey = \"", maintainer_.public_text, "\"\n");
    node_ = std::make_unique<NodeHarness>(dir_, policy);
    ASSERT_TRUE(node_->Start());

    // alice and carol disagree (a dispute opens), then bob agrees with alice.
    ASSERT_EQ(Submit(alice_, "honest bytes").exit_code, 0);
    ASSERT_EQ(Submit(evil_, "patched bytes").exit_code, 0);
    ASSERT_EQ(Submit(bob_, "honest bytes").exit_code, 0);
    json status = StatusJson();
    ASSERT_EQ(status[0]["verdict"], "DISPUTED") << status.dump(2);
    dispute_id_ = status[0]["dispute_id"];
    ASSERT_FALSE(dispute_id_.empty());
  }

  RunResult Submit(const NixKeyPair& key, const std::string& content) {
    const std::string file = dir_.File(key.name + "-pathinfo.json");
    WriteFileOrDie(file, PathInfoJson(kPathName, content));
    RunResult r = node_->Cli(
        {"submit", file, "--node", node_->grpc_address(), "--key", key.secret_file, "--not-built-here-ok"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    return r;
  }

  // `attest status --json` for the contested path; the raw text goes to *text when given.
  json StatusJson(std::string* text = nullptr) {
    RunResult r = node_->Cli({"status", "--json", "--node", node_->grpc_address(), path_});
    EXPECT_NE(r.exit_code, 2) << r.err;
    if (text != nullptr) *text = r.out;
    return json::parse(r.out);
  }

  // `attest disputes resolve` with `args` after the node address.
  RunResult Resolve(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"disputes", "resolve", "--node", node_->grpc_address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return node_->Cli(argv);
  }

  RunResult Verify(const std::string& status_text) {
    return node_->Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, status_text);
  }

  TempDir dir_;
  NixKeyPair alice_, bob_, evil_, maintainer_;
  std::unique_ptr<NodeHarness> node_;
  const std::string path_ = TestStorePath(kPathName).full();
  std::string dispute_id_;
  // Statement times: a little in the past, so the node's clock-skew bound never matters.
  const int64_t t0_ = static_cast<int64_t>(std::time(nullptr)) - 600;
};

TEST_F(ResolveCliTest, MaliciousBuilderStopsCountingAndTheStatementSurvivesSigkill) {
  RunResult resolved = Resolve({"--key", maintainer_.secret_file, "--as", "malicious", "--builder", evil_.name,
                                "--note", "carol-builder-1 served a patched binary", "--time",
                                std::to_string(t0_), dispute_id_});
  ASSERT_EQ(resolved.exit_code, 0) << resolved.out << resolved.err;
  EXPECT_TRUE(Contains(resolved.out, dispute_id_)) << resolved.out;
  EXPECT_TRUE(Contains(resolved.out, "as malicious by maint-1")) << resolved.out;
  EXPECT_TRUE(Contains(resolved.out, "state now malicious")) << resolved.out;

  // A later statement, by store path, with --json: the history grows, the state stays.
  const std::vector<std::string> second{"--key", maintainer_.secret_file, "--as", "malicious", "--builder",
                                        evil_.name, "--note", "confirmed by a third rebuild", "--time",
                                        std::to_string(t0_ + 1), "--json", path_};
  RunResult json_run = Resolve(second);
  ASSERT_EQ(json_run.exit_code, 0) << json_run.out << json_run.err;
  json answer = json::parse(json_run.out);
  EXPECT_EQ(answer["id"], dispute_id_);
  EXPECT_EQ(answer["state"], "malicious");
  EXPECT_EQ(answer["already_present"], false);
  ASSERT_EQ(answer["resolutions"].size(), 2u) << answer.dump(2);
  EXPECT_EQ(answer["resolutions"][1]["maintainer"], "maint-1");
  EXPECT_EQ(answer["resolutions"][1]["builders"], json::array({evil_.name}));
  // Ed25519 is deterministic: the same inputs sign the same statement, which the node already holds.
  RunResult again = Resolve(second);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(json::parse(again.out)["already_present"], true);

  // The path is now CONFIRMED on alice and bob; carol's signature no longer counts, and the answer
  // carries the statement that excludes it.
  std::string status_text;
  json status = StatusJson(&status_text);
  ASSERT_EQ(status[0]["verdict"], "CONFIRMED") << status.dump(2);
  ASSERT_EQ(status[0]["exclusions"].size(), 1u) << status.dump(2);
  const std::string exclusion = status[0]["exclusions"][0];
  EXPECT_TRUE(Contains(exclusion, "attest/resolution/v1\n")) << exclusion;
  EXPECT_TRUE(Contains(exclusion, "builder carol-builder-1\n")) << exclusion;
  for (const auto& attestation : status[0]["attestations"]) {
    EXPECT_FALSE(Contains(attestation["signature"], "carol-builder-1:")) << attestation.dump();
  }

  // The answer re-checks offline against the policy alone ...
  RunResult verified = Verify(status_text);
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
  // ... and an altered statement does not.
  json tampered = json::parse(status_text);
  std::string altered = exclusion;
  const size_t note_at = altered.find("note confirmed");
  ASSERT_NE(note_at, std::string::npos) << altered;
  altered.replace(note_at, std::string("note confirmed").size(), "note retracted");
  tampered[0]["exclusions"][0] = altered;
  RunResult caught = Verify(tampered.dump());
  EXPECT_EQ(caught.exit_code, 1) << caught.out << caught.err;
  EXPECT_TRUE(Contains(caught.out + caught.err, "exclusion 1 of 1")) << caught.out << caught.err;

  // The history, oldest first, with the maintainer and the notes.
  RunResult show = node_->Cli({"disputes", "show", "--node", node_->grpc_address(), dispute_id_});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_TRUE(Contains(show.out, "state    malicious")) << show.out;
  const size_t history = show.out.find("resolutions (oldest first):");
  ASSERT_NE(history, std::string::npos) << show.out;
  const size_t first = show.out.find("malicious  by maint-1  builders: carol-builder-1", history);
  ASSERT_NE(first, std::string::npos) << show.out;
  const size_t first_note = show.out.find("carol-builder-1 served a patched binary", first);
  const size_t second_note = show.out.find("confirmed by a third rebuild", first);
  ASSERT_NE(first_note, std::string::npos) << show.out;
  ASSERT_NE(second_note, std::string::npos) << show.out;
  EXPECT_LT(first_note, second_note) << "oldest first:\n" << show.out;

  // Listing filters by state.
  auto listed = [&](const std::string& state) {
    RunResult list = node_->Cli({"disputes", "list", "--json", "--state", state, "--node", node_->grpc_address()});
    EXPECT_EQ(list.exit_code, 0) << list.err;
    return list.exit_code == 0 ? json::parse(list.out) : json::array();
  };
  EXPECT_EQ(listed("open").size(), 0u);
  ASSERT_EQ(listed("malicious").size(), 1u);
  EXPECT_EQ(listed("malicious")[0]["id"], dispute_id_);
  EXPECT_EQ(node_->Cli({"disputes", "list", "--state", "closed", "--node", node_->grpc_address()}).exit_code, 2);

  // SIGKILL leaves no chance to flush: what was acknowledged must already be durable.
  auto killed = node_->Stop(SIGKILL);
  ASSERT_TRUE(killed.has_value());
  EXPECT_TRUE(WIFSIGNALED(*killed) && WTERMSIG(*killed) == SIGKILL) << "status " << *killed;
  ASSERT_TRUE(node_->Start());
  status = StatusJson(&status_text);
  EXPECT_EQ(status[0]["verdict"], "CONFIRMED") << status.dump(2);
  EXPECT_EQ(status[0]["exclusions"].size(), 1u);
  EXPECT_EQ(Verify(status_text).exit_code, 0);
  RunResult shown = node_->Cli({"disputes", "show", "--json", "--node", node_->grpc_address(), dispute_id_});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  json dispute = json::parse(shown.out);
  EXPECT_EQ(dispute["state"], "malicious");
  EXPECT_EQ(dispute["resolutions"].size(), 2u);
}

TEST_F(ResolveCliTest, RefusalsExitOneWithAClearMessage) {
  const std::string time = std::to_string(t0_);
  // A builder key is not a maintainer key.
  RunResult builder_key = Resolve({"--key", alice_.secret_file, "--as", "nondeterministic", "--note", "n",
                                   "--time", time, dispute_id_});
  EXPECT_EQ(builder_key.exit_code, 1) << builder_key.out;
  EXPECT_TRUE(Contains(builder_key.err, "not signed by a maintainer key of the policy")) << builder_key.err;
  EXPECT_TRUE(Contains(builder_key.err, "alice-builder-1")) << builder_key.err;

  // An unknown dispute.
  const std::string unknown = "d-" + std::string(32, '0');
  RunResult no_dispute = Resolve({"--key", maintainer_.secret_file, "--as", "resolved", "--note", "n", unknown});
  EXPECT_EQ(no_dispute.exit_code, 1) << no_dispute.out;
  EXPECT_TRUE(Contains(no_dispute.err, "no dispute " + unknown)) << no_dispute.err;

  // A builder outside the policy.
  RunResult stranger = Resolve({"--key", maintainer_.secret_file, "--as", "malicious", "--builder", "nobody-1",
                                "--note", "n", "--time", time, dispute_id_});
  EXPECT_EQ(stranger.exit_code, 1) << stranger.out;
  EXPECT_TRUE(Contains(stranger.err, "nobody-1")) << stranger.err;

  // A statement not newer than the one held.
  RunResult first = Resolve({"--key", maintainer_.secret_file, "--as", "nondeterministic", "--note",
                             "embeds the build time", "--time", time, dispute_id_});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_TRUE(Contains(first.out, "state now nondeterministic")) << first.out;
  RunResult older = Resolve({"--key", maintainer_.secret_file, "--as", "resolved", "--note", "fixed upstream",
                             "--time", std::to_string(t0_ - 3600), dispute_id_});
  EXPECT_EQ(older.exit_code, 1) << older.out;
  EXPECT_TRUE(Contains(older.err, "not after the latest this node holds")) << older.err;
  EXPECT_TRUE(Contains(older.err, "sign a new statement")) << older.err;

  // Nothing refused changed the dispute.
  RunResult shown = node_->Cli({"disputes", "show", "--json", "--node", node_->grpc_address(), dispute_id_});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  json dispute = json::parse(shown.out);
  EXPECT_EQ(dispute["state"], "nondeterministic");
  ASSERT_EQ(dispute["resolutions"].size(), 1u);
  EXPECT_EQ(dispute["resolutions"][0]["note"], "embeds the build time");
  EXPECT_EQ(StatusJson()[0]["verdict"], "DISPUTED");
}

TEST_F(ResolveCliTest, UsageErrorsExitTwo) {
  const std::string key = maintainer_.secret_file;
  RunResult no_builder = Resolve({"--key", key, "--as", "malicious", "--note", "n", dispute_id_});
  EXPECT_EQ(no_builder.exit_code, 2);
  EXPECT_TRUE(Contains(no_builder.err, "--builder KEYNAME")) << no_builder.err;

  RunResult stray_builder =
      Resolve({"--key", key, "--as", "resolved", "--builder", evil_.name, "--note", "n", dispute_id_});
  EXPECT_EQ(stray_builder.exit_code, 2);
  EXPECT_TRUE(Contains(stray_builder.err, "--builder goes only with --as malicious")) << stray_builder.err;

  RunResult bad_outcome = Resolve({"--key", key, "--as", "innocent", "--note", "n", dispute_id_});
  EXPECT_EQ(bad_outcome.exit_code, 2);
  EXPECT_TRUE(Contains(bad_outcome.err, "--as")) << bad_outcome.err;
  EXPECT_TRUE(Contains(bad_outcome.err, "nondeterministic")) << bad_outcome.err;

  RunResult help = node_->Cli({"disputes", "resolve", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(Contains(help.out, "attest disputes resolve")) << help.out;

  // None of them reached the node.
  RunResult shown = node_->Cli({"disputes", "show", "--json", "--node", node_->grpc_address(), dispute_id_});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_EQ(json::parse(shown.out)["resolutions"].size(), 0u);
}

}  // namespace
}  // namespace attest::testing
