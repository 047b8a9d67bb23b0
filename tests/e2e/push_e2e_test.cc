// End-to-end: real Nix (Debian's nix-bin 2.8) builds raw derivations in chroot stores with the real
// `attest hook` as post-build-hook, and the real `attest push` ships the spool to a real attestd:
// the node ends up with attestations that re-check offline; with the node stopped, push exits non-zero
// within its 30 s and keeps every record; after a restart it empties the spool; `push --scan` finds
// what was built without the hook, and not what was only copied in.
// Nix is isolated as in the shared reference's common.sh (private NIX_CONF_DIR, caches, HOME, TMPDIR).
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "consensus/nar_hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/node_harness.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr std::string_view kExpression = R"(
let
  system = builtins.currentSystem;
  dep = derivation {
    name = "push-e2e-dep"; inherit system; builder = "/bin/sh";
    args = [ "-c" "echo dep > $out" ];
  };
in {
  inherit dep;
  app = derivation {
    name = "push-e2e-app"; inherit system; builder = "/bin/sh";
    outputs = [ "out" "doc" ];
    args = [ "-c" "echo ${dep} > $out; echo docs > $doc" ];
  };
  later = derivation {
    name = "push-e2e-later"; inherit system; builder = "/bin/sh";
    args = [ "-c" "echo later > $out" ];
  };
  scanned = derivation {
    name = "push-e2e-scanned"; inherit system; builder = "/bin/sh";
    outputs = [ "out" "dev" ];
    args = [ "-c" "echo ${dep} > $out; echo headers > $dev" ];
  };
  copied = derivation {
    name = "push-e2e-copied"; inherit system; builder = "/bin/sh";
    args = [ "-c" "echo copied > $out" ];
  };
}
)";

class PushE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* sub : {"etc", "xdg-cache", "home", "tmp"}) std::filesystem::create_directories(dir_.File(sub));
    WriteFileOrDie(dir_.File("etc/nix.conf"),
                   "experimental-features = nix-command\n"
                   "substituters =\n"
                   "build-users-group =\n"
                   "sandbox = true\n"
                   "extra-sandbox-paths = /bin /usr /lib /lib64?\n");
    WriteFileOrDie(dir_.File("drvs.nix"), kExpression);
    builder_ = MakeNixKey(dir_, "push-e2e-builder-1");
    node_ = std::make_unique<NodeHarness>(dir_, PolicyToml(1, {{"builders-inc", {builder_.public_text}}}));
    ASSERT_TRUE(node_->Start());
    // Pin the port the node got, so a restarted node is the same address the builder config names.
    const std::string config = ReadFileOrDie(node_->config_path());
    WriteFileOrDie(node_->config_path(), absl::StrReplaceAll(config, {{"grpc = \"127.0.0.1:0\"",
                                                                       "grpc = \"" + node_->grpc_address() + "\""}}));
    WriteFileOrDie(dir_.File("builder.toml"), absl::StrCat("key = \"", builder_.secret_file,
                                                           "\"\nspool = \"spool\"\nnodes = [\"",
                                                           node_->grpc_address(), "\"]\n"));
    const std::string hook = dir_.File("hook.sh");
    WriteFileOrDie(hook, absl::StrCat("#!/bin/sh\nexec '", ATTEST_BIN, "' hook --config '", dir_.File("builder.toml"),
                                      "'\n"));
    chmod(hook.c_str(), 0755);
  }

  RunResult Nix(std::vector<std::string> args) {
    std::vector<std::string> argv = {"env"};
    for (const char* var : {"NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR",
                            "ATTEST_BUILDER_CONFIG"}) {
      argv.insert(argv.end(), {"-u", var});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return ::attest::testing::Run(argv, "", std::chrono::seconds(300),
               {{"NIX_CONF_DIR", dir_.File("etc")},
                {"XDG_CACHE_HOME", dir_.File("xdg-cache")},
                {"HOME", dir_.File("home")},
                {"TMPDIR", dir_.File("tmp")}});
  }

  // Builds attribute `attr` into `store`, with the attest hook unless told otherwise; returns the
  // outputs Nix reports for it.
  enum class Hook { kWith, kWithout };
  std::set<std::string> Build(const std::string& store, const std::string& attr, Hook hook) {
    std::vector<std::string> args = {"nix-build", "--store", store, dir_.File("drvs.nix"), "-A", attr, "--no-out-link"};
    if (hook == Hook::kWith) args.insert(args.end(), {"--option", "post-build-hook", dir_.File("hook.sh")});
    RunResult build = Nix(args);
    EXPECT_EQ(build.exit_code, 0) << build.err;
    if (hook == Hook::kWith) {
      EXPECT_THAT(build.err, HasSubstr("post-build-hook: attest hook: queued")) << build.err;
    }
    RunResult drv = Nix({"nix-instantiate", "--store", store, dir_.File("drvs.nix"), "-A", attr});
    EXPECT_EQ(drv.exit_code, 0) << drv.err;
    RunResult outputs = Nix({"nix-store", "--store", store, "--query", "--outputs",
                             std::string(absl::StripTrailingAsciiWhitespace(drv.out))});
    EXPECT_EQ(outputs.exit_code, 0) << outputs.err;
    std::set<std::string> paths;
    for (absl::string_view line : absl::StrSplit(outputs.out, '\n', absl::SkipEmpty())) paths.emplace(line);
    return paths;
  }

  RunResult Push(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {"env", "-u", "ATTEST_BUILDER_CONFIG", ATTEST_BIN, "push", "--config",
                                     dir_.File("builder.toml")};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return ::attest::testing::Run(argv, "", std::chrono::seconds(120));
  }

  // The spool's records, as files (client/spool.h documents the format).
  std::map<std::string, json> Spooled() {
    std::map<std::string, json> records;
    if (!std::filesystem::exists(dir_.File("spool"))) return records;
    for (const auto& file : std::filesystem::directory_iterator(dir_.File("spool"))) {
      const std::string name = file.path().filename().string();
      if (name.front() == '.') continue;  // the ledger and the lock
      json record = json::parse(ReadFileOrDie(file.path().string()), nullptr, false);
      EXPECT_TRUE(record.is_object()) << name;
      if (record.is_object()) records[record.value("storePath", name)] = record;
    }
    return records;
  }

  // `nix path-info --json` of a store, by path.
  std::map<std::string, json> PathInfo(const std::string& store) {
    RunResult info = Nix({"nix", "path-info", "--json", "--all", "--store", store});
    EXPECT_EQ(info.exit_code, 0) << info.err;
    std::map<std::string, json> by_path;
    for (const json& entry : json::parse(info.out)) by_path[entry.at("path").get<std::string>()] = entry;
    return by_path;
  }

  // Checks that the node holds exactly our attestation of each path, with the claim Nix has, and that
  // the answer re-checks offline against the policy.
  void ExpectConfirmed(const std::set<std::string>& paths, const std::string& store) {
    std::vector<std::string> args{"status", "--json", "--node", node_->grpc_address()};
    args.insert(args.end(), paths.begin(), paths.end());
    RunResult status = node_->Cli(args);
    EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
    const std::map<std::string, json> nix = PathInfo(store);
    const json list = json::parse(status.out, nullptr, false);
    ASSERT_TRUE(list.is_array()) << status.out;
    ASSERT_EQ(list.size(), paths.size());
    for (const json& s : list) {
      const std::string path = s.at("path").get<std::string>();
      SCOPED_TRACE(path);
      EXPECT_EQ(s.at("verdict"), "CONFIRMED");
      ASSERT_EQ(s.at("attestations").size(), 1u);
      const json& a = s.at("attestations")[0];
      EXPECT_TRUE(a.at("signature").get<std::string>().starts_with(builder_.name + ":"));
      const json& want = nix.at(path);
      EXPECT_EQ(a.at("narHash"), consensus::NarHash::Parse(want.at("narHash").get<std::string>())->ToNix32());
      EXPECT_EQ(a.at("narSize"), want.at("narSize"));
      EXPECT_EQ(a.at("references"), want.at("references"));
      EXPECT_EQ(a.at("deriver"), want.at("deriver"));
    }
    RunResult verify = node_->Cli({"verify", "--policy", dir_.File("policy.toml"), "-"}, status.out);
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  }

  TempDir dir_;
  NixKeyPair builder_;
  std::unique_ptr<NodeHarness> node_;
};

TEST_F(PushE2eTest, HookRecordsReachTheNodeAndAnOutageLosesNothing) {
  const std::string store = dir_.File("store-A");
  std::set<std::string> built = Build(store, "app", Hook::kWith);
  std::set<std::string> dep = Build(store, "dep", Hook::kWithout);  // already built as app's input
  built.insert(dep.begin(), dep.end());
  ASSERT_EQ(built.size(), 3u);
  std::map<std::string, json> spooled = Spooled();
  ASSERT_EQ(spooled.size(), 3u) << "the hook did not spool every output";

  RunResult push = Push();
  EXPECT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_THAT(push.err, HasSubstr("3 delivered to every node, 0 left in the spool"));
  EXPECT_TRUE(Spooled().empty());
  ExpectConfirmed(built, store);

  // The node goes away; Nix keeps building, the hook keeps spooling.
  ASSERT_TRUE(node_->Stop().has_value());
  const std::set<std::string> later = Build(store, "later", Hook::kWith);
  ASSERT_EQ(Spooled().size(), 1u);
  const auto start = std::chrono::steady_clock::now();
  RunResult down = Push({"--json"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(down.exit_code, 1) << down.out << down.err;
  EXPECT_LT(took, std::chrono::seconds(31)) << "a one-shot push must give up within 30 s";
  const json report = json::parse(down.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << down.out;
  EXPECT_EQ(report["remaining"], 1);
  EXPECT_EQ(report["gaveUp"], true);
  EXPECT_EQ(report["outcomes"][0]["outcome"], "not_sent");
  EXPECT_EQ(report["outcomes"][0]["code"], 14);  // UNAVAILABLE
  const std::map<std::string, json> kept = Spooled();
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept.begin()->first, *later.begin());
  EXPECT_THAT(kept.begin()->second.value("lastError", ""), HasSubstr("UNAVAILABLE"));
  EXPECT_TRUE(kept.begin()->second.value("acknowledgedBy", json::array()).empty());

  // Back on the same address: the next push delivers and empties the spool.
  ASSERT_TRUE(node_->Start());
  RunResult up = Push();
  EXPECT_EQ(up.exit_code, 0) << up.out << up.err;
  EXPECT_TRUE(Spooled().empty());
  ExpectConfirmed(later, store);
  // What was delivered before the outage is still there (and was not sent again).
  ExpectConfirmed(built, store);
}

TEST_F(PushE2eTest, ScanFindsPathsBuiltWithoutTheHookButNotCopiedOnes) {
  const std::string store = dir_.File("store-B");
  const std::string other = dir_.File("store-C");
  const std::set<std::string> scanned = Build(store, "scanned", Hook::kWithout);
  const std::set<std::string> copied = Build(other, "copied", Hook::kWithout);
  RunResult copy = Nix({"nix", "copy", "--no-check-sigs", "--from", other, "--to", store, *copied.begin()});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;
  ASSERT_TRUE(Spooled().empty());

  // Everything Nix marks as built in this store: scanned's outputs and its input.
  std::set<std::string> expected;
  for (const auto& [path, info] : PathInfo(store)) {
    if (info.value("ultimate", false)) expected.insert(path);
  }
  ASSERT_EQ(expected.size(), 3u);
  for (const std::string& p : scanned) EXPECT_TRUE(expected.contains(p)) << p;
  EXPECT_FALSE(expected.contains(*copied.begin()));

  RunResult push = Push({"--scan", "--store-root", store, "--json"});
  EXPECT_EQ(push.exit_code, 0) << push.out << push.err;
  const json report = json::parse(push.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << push.out;
  const auto added = report["scan"]["added"].get<std::vector<std::string>>();
  EXPECT_EQ(std::set<std::string>(added.begin(), added.end()), expected);
  EXPECT_EQ(report["remaining"], 0);
  ExpectConfirmed(expected, store);

  // The copied path was never attested: it is not a rebuild here.
  RunResult copied_status = node_->Cli({"status", "--json", "--node", node_->grpc_address(), *copied.begin()});
  EXPECT_THAT(copied_status.out, HasSubstr("UNKNOWN"));

  // A second scan finds nothing new: the ledger remembers what every node acknowledged.
  RunResult again = Push({"--scan", "--store-root", store});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err, HasSubstr("3 already attested, 0 already spooled, 0 spooled now"));
}

}  // namespace
}  // namespace attest::testing
