// End-to-end: real Nix (Debian's nix-bin 2.8) builds raw derivations in a chroot store with the real
// `attest hook` as its post-build-hook, and the spool ends up with exactly the outputs Nix built.
// Nix is isolated as in shared reference common.sh: a private NIX_CONF_DIR, caches, HOME and TMPDIR,
// no substituters, builds as root in the sandbox (which a chroot store forces).
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {
namespace {

using ::testing::HasSubstr;

// A dependency chain (dep -> lib -> top) with multiple outputs; builder is the host's /bin/sh, and PATH
// inside the sandbox is unset, so only shell builtins are used.
constexpr std::string_view kExpression = R"(
let
  system = builtins.currentSystem;
  dep = derivation {
    name = "hook-e2e-dep"; inherit system; builder = "/bin/sh";
    args = [ "-c" "echo dep > $out" ];
  };
  lib = derivation {
    name = "hook-e2e-lib"; inherit system; builder = "/bin/sh";
    outputs = [ "out" "dev" ];
    args = [ "-c" "echo ${dep} > $out; echo headers > $dev" ];
  };
in {
  inherit dep lib;
  top = derivation {
    name = "hook-e2e-top"; inherit system; builder = "/bin/sh";
    outputs = [ "out" "doc" ];
    args = [ "-c" "echo ${lib} ${lib.dev} > $out; echo docs > $doc" ];
  };
  other = derivation {
    name = "hook-e2e-other"; inherit system; builder = "/bin/sh";
    args = [ "-c" "echo other > $out" ];
  };
}
)";

class HookE2eTest : public ::testing::Test {
 protected:
  HookE2eTest() {
    for (const char* sub : {"etc", "xdg-cache", "home", "tmp"}) std::filesystem::create_directories(dir_.File(sub));
    WriteFileOrDie(dir_.File("etc/nix.conf"),
                   "experimental-features = nix-command\n"
                   "substituters =\n"
                   "build-users-group =\n"
                   "sandbox = true\n"
                   "extra-sandbox-paths = /bin /usr /lib /lib64?\n");
    WriteFileOrDie(dir_.File("drvs.nix"), kExpression);
    WriteFileOrDie(dir_.File("builder.toml"),
                   "key = \"builder.sec\"\nspool = \"spool\"\nnodes = [\"127.0.0.1:7700\"]\n");
  }

  // Runs a Nix command isolated from the host's configuration (and from whatever NIX_* the test runner has).
  RunResult Nix(std::vector<std::string> args, const std::map<std::string, std::string>& extra_env = {}) {
    std::vector<std::string> argv = {"env"};
    for (const char* var : {"NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR",
                            "ATTEST_BUILDER_CONFIG"}) {
      if (extra_env.count(var) == 0) argv.insert(argv.end(), {"-u", var});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> env = {{"NIX_CONF_DIR", dir_.File("etc")},
                                              {"XDG_CACHE_HOME", dir_.File("xdg-cache")},
                                              {"HOME", dir_.File("home")},
                                              {"TMPDIR", dir_.File("tmp")}};
    env.insert(extra_env.begin(), extra_env.end());
    return attest::testing::Run(argv, "", std::chrono::seconds(300), env);
  }

  // An executable hook script: Nix runs the hook with no arguments, so a script passes ours.
  std::string HookScript(const std::string& name, const std::string& attest_args) {
    const std::string path = dir_.File(name);
    WriteFileOrDie(path, absl::StrCat("#!/bin/sh\nexec '", ATTEST_BIN, "' hook ", attest_args, "\n"));
    chmod(path.c_str(), 0755);
    return path;
  }

  // Every output path of the derivation `attr` of drvs.nix, as Nix reports them.
  std::set<std::string> OutputsOf(const std::string& store, const std::string& attr, std::string* drv_path) {
    RunResult drv = Nix({"nix-instantiate", "--store", store, dir_.File("drvs.nix"), "-A", attr});
    EXPECT_EQ(drv.exit_code, 0) << drv.err;
    *drv_path = std::string(absl::StripTrailingAsciiWhitespace(drv.out));
    RunResult outputs = Nix({"nix-store", "--store", store, "--query", "--outputs", *drv_path});
    EXPECT_EQ(outputs.exit_code, 0) << outputs.err;
    std::set<std::string> paths;
    for (absl::string_view line : absl::StrSplit(outputs.out, '\n', absl::SkipEmpty())) paths.emplace(line);
    return paths;
  }

  // The spool's records, read as the files on disk (client/spool.h documents the format), so this also
  // checks what `attest push` will find there. Temp files (".tmp-*") must not be left behind.
  std::vector<nlohmann::json> Spooled() {
    std::vector<nlohmann::json> records;
    std::error_code ec;
    std::filesystem::directory_iterator files(dir_.File("spool"), ec);
    EXPECT_FALSE(ec) << "no spool directory: " << ec.message();
    for (const auto& file : files) {
      const std::string name = file.path().filename().string();
      EXPECT_TRUE(name.ends_with(".json") && name[0] != '.') << "unexpected file in the spool: " << name;
      records.push_back(nlohmann::json::parse(ReadFileOrDie(file.path().string())));
    }
    return records;
  }

  TempDir dir_;
};

TEST_F(HookE2eTest, SpoolHoldsExactlyTheOutputsNixBuiltWithTheirStore) {
  const std::string store = dir_.File("store-A");
  const std::string hook = HookScript("hook.sh", "");
  RunResult build = Nix({"nix-build", "--store", store, "--option", "post-build-hook", hook, dir_.File("drvs.nix"),
                         "-A", "top", "--no-out-link"},
                        {{"ATTEST_BUILDER_CONFIG", dir_.File("builder.toml")}});
  ASSERT_EQ(build.exit_code, 0) << build.err;
  // Nix 2.8 shows the hook's output prefixed in its log: one line per queued output.
  EXPECT_THAT(build.err, HasSubstr("post-build-hook: attest hook: queued "));
  EXPECT_THAT(build.err, ::testing::Not(HasSubstr("not affected"))) << build.err;

  // What Nix says the three derivations of the chain produce (five outputs).
  std::map<std::string, std::string> expected_drv;  // output path -> drv
  for (const char* attr : {"dep", "lib", "top"}) {
    std::string drv;
    for (const std::string& path : OutputsOf(store, attr, &drv)) expected_drv[path] = drv;
  }
  ASSERT_EQ(expected_drv.size(), 5u);

  std::map<std::string, std::string> spooled_drv;
  for (const nlohmann::json& r : Spooled()) {
    const std::string store_path = r.at("storePath").get<std::string>();
    const std::string output_name = r.at("outputName").get<std::string>();
    EXPECT_TRUE(spooled_drv.emplace(store_path, r.at("drvPath").get<std::string>()).second) << "twice: " << store_path;
    EXPECT_EQ(r.at("storeRoot").get<std::string>(), store);
    EXPECT_EQ(r.at("storeUri").get<std::string>(), store);
    // The output name is how Nix names the path: "<name>" for out, "<name>-<output>" otherwise.
    const std::string base = store_path.substr(store_path.find('-') + 1);
    if (output_name == "out") {
      EXPECT_FALSE(base.ends_with("-dev") || base.ends_with("-doc")) << store_path;
    } else {
      EXPECT_TRUE(base.ends_with("-" + output_name)) << store_path << " named " << output_name;
    }
    // push reads the files at <storeRoot><storePath>.
    EXPECT_TRUE(std::filesystem::exists(store + store_path)) << store_path;
  }
  EXPECT_EQ(spooled_drv, expected_drv);

  // Already valid: Nix does not build again, so the hook does not run and the spool is unchanged.
  RunResult again = Nix({"nix-build", "--store", store, "--option", "post-build-hook", hook, dir_.File("drvs.nix"),
                         "-A", "top", "--no-out-link"},
                        {{"ATTEST_BUILDER_CONFIG", dir_.File("builder.toml")}});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(Spooled().size(), 5u);
}

TEST_F(HookE2eTest, ABrokenConfigDoesNotBreakTheBuild) {
  const std::string store = dir_.File("store-B");
  WriteFileOrDie(dir_.File("broken.toml"), "key = \"builder.sec\"\nspool = [\n");
  const std::string hook = HookScript("broken-hook.sh", "--config '" + dir_.File("broken.toml") + "'");
  RunResult build = Nix({"nix-build", "--store", store, "--option", "post-build-hook", hook, dir_.File("drvs.nix"),
                         "-A", "lib", "--no-out-link"});
  ASSERT_EQ(build.exit_code, 0) << build.err;
  // Both derivations of the chain were built (a failing hook would have stopped Nix after the first).
  std::string drv;
  for (const std::string& path : OutputsOf(store, "lib", &drv)) {
    EXPECT_TRUE(std::filesystem::exists(store + path)) << path;
  }
  EXPECT_THAT(build.out, HasSubstr("-hook-e2e-lib\n"));
  EXPECT_THAT(build.err, HasSubstr("post-build-hook: attest hook: "));
  EXPECT_THAT(build.err, HasSubstr("broken.toml:"));
  EXPECT_THAT(build.err, HasSubstr("the build is not affected; run `attest push --scan` later to attest it"));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("spool")));

  // With no config at all (the variable unset), the same.
  const std::string bare = HookScript("bare-hook.sh", "");
  RunResult other = Nix({"nix-build", "--store", store, "--option", "post-build-hook", bare, dir_.File("drvs.nix"),
                         "-A", "other", "--no-out-link"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_THAT(other.err, HasSubstr("ATTEST_BUILDER_CONFIG"));
}

}  // namespace
}  // namespace attest::testing
