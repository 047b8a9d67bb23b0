// End-to-end: a real attestd keeps its transparency log and signs checkpoints; the real attest CLI
// audits it (`attest log checkpoint`, `attest log verify`): key pinning, consistency across runs,
// inclusion of entries, and the evidence when the node's history contradicts what was verified.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/checkpoint.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/merkle.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/node_harness.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr auto kDeadline = std::chrono::seconds(30);

// `nix path-info --json` output (Nix 2.8 list form), one ultimate path per name.
std::string PathInfoJson(const std::vector<std::string>& names) {
  json list = json::array();
  for (const std::string& name : names) {
    json item = {{"path", TestStorePath(name).full()},
                 {"narHash", consensus::NarHash::FromDigest(consensus::Sha256(name)).ToSri()},
                 {"narSize", 100 + name.size()},
                 {"references", json::array()},
                 {"registrationTime", 1795582660},
                 {"ultimate", true}};
    list.push_back(item);
  }
  return list.dump();
}

class LogCliTest : public ::testing::Test {
 protected:
  void SetUp() override { StartNode(NodeBinary::kAttestd); }

  void StartNode(NodeBinary binary) {
    alice_ = MakeNixKey(dir_, "alice-builder-1");
    node_ = std::make_unique<NodeHarness>(dir_, PolicyToml(1, {{"alice-ci", {alice_.public_text}}}),
                                          "\n[log]\ncheckpoint_interval = \"50ms\"\n", NodePorts{}, binary);
    ASSERT_TRUE(node_->Start());
    node_key_ = node_->public_key();
    state_ = dir_.File("audit/node.json");
  }

  void Submit(const std::vector<std::string>& names) {
    const std::string file = dir_.File(absl::StrCat("pathinfo-", submissions_++, ".json"));
    WriteFileOrDie(file, PathInfoJson(names));
    RunResult r = node_->Cli({"submit", file, "--node", node_->grpc_address(), "--key", alice_.secret_file});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  RunResult Log(std::vector<std::string> args) {
    args.insert(args.begin(), "log");
    args.insert(args.end(), {"--node", node_->grpc_address(), "--timeout", "10"});
    return node_->Cli(args);
  }

  // Polls `attest log checkpoint` until the node serves a verified checkpoint of at least `size`
  // entries; returns its JSON.
  json WaitForCheckpoint(uint64_t size) {
    json latest;
    std::string last_error;
    const bool reached = PollUntil(
        [&] {
          RunResult r = Log({"checkpoint", "--json", "--node-key", node_key_});
          if (r.exit_code != 0) {
            last_error = r.err;
            return false;
          }
          latest = json::parse(r.out);
          return latest["size"].get<uint64_t>() >= size;
        },
        kDeadline);
    EXPECT_TRUE(reached) << "no checkpoint of size " << size << " within 30 s; last: " << latest.dump() << " "
                         << last_error;
    return latest;
  }

  // Signs a checkpoint with the node's own secret key: what a misbehaving node could hand out.
  std::string NodeSigned(uint64_t size, const consensus::MerkleHash& root) {
    absl::StatusOr<consensus::SecretKey> key = consensus::SecretKey::Parse(ReadFileOrDie(dir_.File("node.sec")));
    EXPECT_TRUE(key.ok()) << key.status();
    auto note = consensus::SignCheckpoint({.origin = key->name(), .size = size, .root = root}, *key);
    EXPECT_TRUE(note.ok()) << note.status();
    return note->Serialize();
  }

  // Rewrites the state file to remember `note` (a checkpoint of size `size` with root `root`).
  void RememberInState(const std::string& note, uint64_t size, const consensus::MerkleHash& root) {
    json state = json::parse(ReadFileOrDie(state_));
    state["checkpoint"]["note"] = note;
    state["checkpoint"]["size"] = size;
    state["checkpoint"]["root"] = consensus::Base64Encode(root);
    WriteFileOrDie(state_, state.dump(2));
  }

  TempDir dir_;
  NixKeyPair alice_;
  std::unique_ptr<NodeHarness> node_;
  std::string node_key_;
  std::string state_;
  int submissions_ = 0;
};

TEST_F(LogCliTest, CheckpointVerifiesWithThePinnedOrTheReportedKey) {
  Submit({"cp-a", "cp-b"});
  const json checkpoint = WaitForCheckpoint(2);
  EXPECT_EQ(checkpoint["origin"], "node");
  EXPECT_EQ(checkpoint["key_pinned"], true);
  const std::string note = checkpoint["note"];
  EXPECT_THAT(note, HasSubstr(absl::StrCat("node\n", checkpoint["size"].get<uint64_t>(), "\n",
                                           checkpoint["root"].get<std::string>(), "\n\n\xE2\x80\x94 node ")));

  RunResult text = Log({"checkpoint", "--node-key", node_key_});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("origin  node\n"));
  EXPECT_THAT(text.out, HasSubstr("(given with --node-key)"));
  EXPECT_THAT(text.out, HasSubstr("\xE2\x80\x94 node "));

  RunResult unpinned = Log({"checkpoint", "--json"});
  EXPECT_EQ(unpinned.exit_code, 0) << unpinned.err;
  EXPECT_EQ(json::parse(unpinned.out)["key_pinned"], false);
  RunResult unpinned_text = Log({"checkpoint"});
  EXPECT_EQ(unpinned_text.exit_code, 0) << unpinned_text.err;
  EXPECT_THAT(unpinned_text.out, HasSubstr("NOT pinned"));

  // A key of the same name that is not the node's.
  const NixKeyPair impostor = MakeNixKey(dir_, "node");
  RunResult wrong = Log({"checkpoint", "--node-key", impostor.public_text});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out;
  EXPECT_THAT(wrong.err, HasSubstr("does not verify"));

  EXPECT_EQ(Log({"checkpoint", "--node-key", "not-a-key"}).exit_code, 2);
  RunResult help = Log({"checkpoint", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("Example:"));
}

TEST_F(LogCliTest, FirstRunNeedsTheKeyThenPinsItAndLaterRunsCheckConsistencyAndInclusion) {
  Submit({"v-0", "v-1"});
  const uint64_t first_size = WaitForCheckpoint(2)["size"];

  RunResult unpinned = Log({"verify", "--state", state_});
  EXPECT_EQ(unpinned.exit_code, 2) << unpinned.out << unpinned.err;
  EXPECT_THAT(unpinned.err, HasSubstr("pass --node-key KEY the first time"));
  EXPECT_FALSE(std::filesystem::exists(state_));

  const NixKeyPair impostor = MakeNixKey(dir_, "node");
  RunResult wrong = Log({"verify", "--state", state_, "--node-key", impostor.public_text});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.out << wrong.err;
  EXPECT_THAT(wrong.err, HasSubstr("does not verify"));
  EXPECT_FALSE(std::filesystem::exists(state_)) << "nothing is pinned from a failed run";

  RunResult pinned = Log({"verify", "--state", state_, "--node-key", node_key_, "--json"});
  ASSERT_EQ(pinned.exit_code, 0) << pinned.out << pinned.err;
  json result = json::parse(pinned.out);
  EXPECT_EQ(result["origin"], "node");
  EXPECT_GE(result["size"].get<uint64_t>(), first_size);
  EXPECT_TRUE(result["previous_size"].is_null());
  EXPECT_EQ(result["consistent"], true);
  const uint64_t pinned_size = result["size"];
  json state = json::parse(ReadFileOrDie(state_));
  EXPECT_EQ(state["node_key"], node_key_);
  EXPECT_EQ(state["checkpoint"]["size"], pinned_size);

  // The key is remembered: no --node-key needed any more, and another one is refused.
  RunResult again = Log({"verify", "--state", state_});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_THAT(again.out, HasSubstr("previous  "));
  RunResult other_key = Log({"verify", "--state", state_, "--node-key", impostor.public_text});
  EXPECT_EQ(other_key.exit_code, 1);
  EXPECT_THAT(other_key.err, HasSubstr("differs from the key pinned"));

  Submit({"v-2", "v-3", "v-4"});
  const uint64_t grown = WaitForCheckpoint(pinned_size + 3)["size"];
  RunResult consistent = Log({"verify", "--state", state_, "--entry", "0", "--entry", "3", "--json"});
  ASSERT_EQ(consistent.exit_code, 0) << consistent.out << consistent.err;
  result = json::parse(consistent.out);
  EXPECT_GE(result["size"].get<uint64_t>(), grown);
  EXPECT_EQ(result["previous_size"], pinned_size);
  EXPECT_EQ(result["consistent"], true);
  ASSERT_EQ(result["entries"].size(), 2u);
  std::vector<std::string> submitted;
  for (const char* name : {"v-0", "v-1", "v-2", "v-3", "v-4"}) submitted.push_back(TestStorePath(name).full());
  for (const json& entry : result["entries"]) {
    EXPECT_EQ(entry["included"], true) << entry.dump();
    EXPECT_EQ(entry["kind"], "attestation");
    EXPECT_EQ(entry["key"], "alice-builder-1");
    EXPECT_THAT(submitted, ::testing::Contains(entry["path"].get<std::string>()));
  }
  EXPECT_EQ(result["entries"][0]["index"], 0);
  EXPECT_EQ(result["entries"][1]["index"], 3);
  EXPECT_EQ(json::parse(ReadFileOrDie(state_))["checkpoint"]["size"], result["size"]);

  RunResult text = Log({"verify", "--state", state_, "--entry", "1"});
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("entry 1  included  attestation  /nix/store/"));
  EXPECT_THAT(text.out, HasSubstr("alice-builder-1"));

  // An entry beyond the log fails, and the state stays as it was.
  const std::string before = ReadFileOrDie(state_);
  RunResult beyond = Log({"verify", "--state", state_, "--entry", "1000000"});
  EXPECT_EQ(beyond.exit_code, 1) << beyond.out;
  EXPECT_THAT(beyond.out, HasSubstr("NOT INCLUDED"));
  EXPECT_EQ(ReadFileOrDie(state_), before);

  EXPECT_EQ(Log({"verify", "--state", state_, "--entry", "-1"}).exit_code, 2);
  EXPECT_EQ(Log({"verify", "--state", state_, "--entry", "x"}).exit_code, 2);
}

TEST_F(LogCliTest, AnotherRootForTheSameSizeIsCaughtWithBothCheckpointsAsEvidence) {
  Submit({"f-0", "f-1"});
  WaitForCheckpoint(2);
  RunResult pinned = Log({"verify", "--state", state_, "--node-key", node_key_, "--json"});
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err;
  const json result = json::parse(pinned.out);
  const uint64_t size = result["size"];
  const std::string served_note = json::parse(ReadFileOrDie(state_))["checkpoint"]["note"];

  // The state now remembers a checkpoint of the same size with another root, signed by the node key:
  // as if the node had shown this auditor another history before.
  const consensus::MerkleHash other_root = consensus::LeafHash("another history");
  const std::string forged = NodeSigned(size, other_root);
  RememberInState(forged, size, other_root);
  const std::string remembered = ReadFileOrDie(state_);

  RunResult caught = Log({"verify", "--state", state_});
  EXPECT_EQ(caught.exit_code, 1) << caught.out << caught.err;
  EXPECT_THAT(caught.out, HasSubstr("INCONSISTENT"));
  EXPECT_THAT(caught.out, HasSubstr(forged));
  EXPECT_THAT(caught.out, HasSubstr(served_note));
  EXPECT_THAT(caught.err, HasSubstr("two different roots for size"));
  EXPECT_EQ(ReadFileOrDie(state_), remembered) << "the evidence in the state file is kept";

  RunResult as_json = Log({"verify", "--state", state_, "--json"});
  EXPECT_EQ(as_json.exit_code, 1);
  const json evidence = json::parse(as_json.out);
  EXPECT_EQ(evidence["consistent"], false);
  EXPECT_EQ(evidence["previous_size"], size);
  EXPECT_EQ(evidence["evidence"]["previous"], forged);
  EXPECT_EQ(evidence["evidence"]["current"], served_note);

  // A remembered checkpoint larger than what the node serves now: a rollback.
  RememberInState(NodeSigned(size + 10, other_root), size + 10, other_root);
  RunResult rollback = Log({"verify", "--state", state_});
  EXPECT_EQ(rollback.exit_code, 1);
  EXPECT_THAT(rollback.err, HasSubstr("shrank"));
  EXPECT_THAT(rollback.out, HasSubstr("INCONSISTENT"));

  // A smaller remembered checkpoint that the served one does not extend: the proof fails.
  Submit({"f-2"});
  WaitForCheckpoint(size + 1);
  RememberInState(NodeSigned(size, other_root), size, other_root);
  RunResult unproven = Log({"verify", "--state", state_});
  EXPECT_EQ(unproven.exit_code, 1);
  EXPECT_THAT(unproven.err, HasSubstr("cannot prove"));
  EXPECT_THAT(unproven.out, HasSubstr("INCONSISTENT"));

  // Editing the root without a signature over it makes the state file corrupt, not evidence.
  json state = json::parse(ReadFileOrDie(state_));
  state["checkpoint"]["root"] = consensus::Base64Encode(consensus::LeafHash("edited"));
  WriteFileOrDie(state_, state.dump());
  RunResult corrupt = Log({"verify", "--state", state_});
  EXPECT_EQ(corrupt.exit_code, 1);
  EXPECT_THAT(corrupt.err, HasSubstr("corrupt"));
  EXPECT_THAT(corrupt.err, HasSubstr(state_));
}

TEST_F(LogCliTest, TheDefaultStateFileLivesUnderXdgStateHome) {
  Submit({"x-0"});
  WaitForCheckpoint(1);
  const std::string xdg = dir_.File("xdg-state");
  RunResult r = testing::Run({ATTEST_BIN, "log", "verify", "--node", node_->grpc_address(), "--node-key", node_key_}, "",
                    std::chrono::seconds(60), {{"XDG_STATE_HOME", xdg}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(std::filesystem::exists(xdg + "/attest/logs/node.json"));
  r = testing::Run({ATTEST_BIN, "log", "verify", "--node", node_->grpc_address()}, "", std::chrono::seconds(60),
          {{"XDG_STATE_HOME", xdg}});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(LogCliTest, AnUnreachableNodeIsAClearFailure) {
  const int port = FreeLoopbackPort();
  RunResult r = node_->Cli({"log", "verify", "--node", absl::StrCat("127.0.0.1:", port), "--timeout", "2",
                            "--state", state_, "--node-key", node_key_});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.err, HasSubstr("is attestd running"));
  EXPECT_FALSE(std::filesystem::exists(state_));
}

// A node that equivocates (attestd_forking) hands out two checkpoints for each size, alternately: two
// runs of the auditor see both, and the second run has the evidence.
class ForkingNodeTest : public LogCliTest {
 protected:
  void SetUp() override { StartNode(NodeBinary::kForkingAttestd); }
};

TEST_F(ForkingNodeTest, AnEquivocatingNodeIsCaught) {
  Submit({"eq-0", "eq-1"});
  WaitForCheckpoint(2);
  RunResult first = Log({"verify", "--state", state_, "--node-key", node_key_});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  RunResult second = Log({"verify", "--state", state_});
  EXPECT_EQ(second.exit_code, 1) << second.out << second.err;
  EXPECT_THAT(second.out, HasSubstr("INCONSISTENT"));
  EXPECT_THAT(second.err, HasSubstr("two different roots"));
}

}  // namespace
}  // namespace attest::testing
