// deploy/systemd/attest-post-build-hook under real Nix, as root like nix-daemon runs it: the record it
// leaves in the spool belongs to the push user, who then delivers it to a real attestd with `attest
// push`, as attest-push.service does. The test runs as root (Nix builds in a chroot store, and the hook
// can only change user from root) and uses `nobody` as the push user, which every Debian system has.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_files.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kWrapper = std::string(ATTEST_SOURCE_DIR) + "/deploy/systemd/attest-post-build-hook";
constexpr const char* kPushUser = "nobody";

// One derivation; builder is the host's /bin/sh with only builtins (PATH is unset in the sandbox).
constexpr const char* kExpression = R"(
derivation {
  name = "deploy-hook-test"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo built > $out" ];
}
)";

class PostBuildHookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: the hook drops root, and Nix builds in a chroot store";
    for (const char* program : {"nix-build", "setpriv"}) {
      if (!FindOnPath(program)) GTEST_SKIP() << program << " is not installed";
    }
    const passwd* user = getpwnam(kPushUser);
    if (user == nullptr) GTEST_SKIP() << "no user " << kPushUser;
    uid_ = user->pw_uid;
    gid_ = user->pw_gid;
    // The push user reads the store paths, the key and the spool under the test directory.
    chmod(dir_.path().c_str(), 0755);
    if (AsPushUser({"test", "-x", dir_.path()}).exit_code != 0) {
      GTEST_SKIP() << kPushUser << " cannot enter " << dir_.path() << " (a parent directory is private)";
    }
    for (const char* sub : {"etc", "xdg-cache", "home", "tmp"}) std::filesystem::create_directories(dir_.File(sub));
    WriteFileOrDie(dir_.File("etc/nix.conf"),
                   "experimental-features = nix-command\n"
                   "substituters =\n"
                   "build-users-group =\n"
                   "sandbox = true\n"
                   "extra-sandbox-paths = /bin /usr /lib /lib64?\n");
    WriteFileOrDie(dir_.File("drv.nix"), kExpression);
  }

  // Runs a program as the push user, with no supplementary groups, as systemd runs the service.
  RunResult AsPushUser(const std::vector<std::string>& argv) {
    std::vector<std::string> command = {"setpriv", absl::StrCat("--reuid=", uid_), absl::StrCat("--regid=", gid_),
                                        "--clear-groups", "--"};
    command.insert(command.end(), argv.begin(), argv.end());
    return attest::testing::Run(command);
  }

  // nix-build in the chroot store `store` with the wrapper as post-build-hook, isolated from the host's
  // Nix configuration; `hook_env` reaches the hook through Nix's environment.
  RunResult Build(const std::string& store, const std::map<std::string, std::string>& hook_env) {
    std::vector<std::string> argv = {"env"};
    for (const char* var : {"NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR"}) {
      argv.insert(argv.end(), {"-u", var});
    }
    argv.insert(argv.end(), {"nix-build", "--store", store, "--option", "post-build-hook", kWrapper,
                             dir_.File("drv.nix"), "--no-out-link"});
    std::map<std::string, std::string> env = {{"NIX_CONF_DIR", dir_.File("etc")},
                                              {"XDG_CACHE_HOME", dir_.File("xdg-cache")},
                                              {"HOME", dir_.File("home")},
                                              {"TMPDIR", dir_.File("tmp")},
                                              {"ATTEST_HOOK", ATTEST_HOOK_BIN}};
    env.insert(hook_env.begin(), hook_env.end());
    return attest::testing::Run(argv, "", std::chrono::seconds(300), env);
  }

  // `attest key generate`: writes NAME.sec, returns the public key.
  std::string MakeKey(const std::string& name) {
    RunResult result =
        attest::testing::Run({ATTEST_BIN, "key", "generate", "--name", name, "--out", dir_.File(name + ".sec")});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return std::string(absl::StripAsciiWhitespace(result.out));
  }

  std::vector<std::filesystem::path> Records(const std::string& spool) {
    std::vector<std::filesystem::path> records;
    for (const auto& file : std::filesystem::directory_iterator(spool)) {
      if (file.path().extension() == ".json" && file.path().filename().string()[0] != '.') {
        records.push_back(file.path());
      }
    }
    return records;
  }

  TempDir dir_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

TEST_F(PostBuildHookTest, RecordBelongsToThePushUserWhoDeliversItToANode) {
  // A node whose policy counts this builder (quorum 1), so a delivered path becomes CONFIRMED.
  const std::string builder_public = MakeKey("builder-1");
  MakeKey("node-1");
  WriteFileOrDie(dir_.File("policy.toml"),
                 absl::StrCat("quorum = 1\n[[operator]]\nname = \"op\"\nbuilders = [\"", builder_public, "\"]\n"));
  WriteFileOrDie(dir_.File("node.toml"),
                 "[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"\"\ndatabase = \"attest.db\"\nkey = \"node-1.sec\"\n"
                 "policy = \"policy.toml\"\n");
  Daemon node({ATTESTD_BIN, "--config", dir_.File("node.toml")}, dir_.File("attestd"));
  std::optional<std::string> listening = node.WaitForLine("grpc listening on ", std::chrono::seconds(30));
  ASSERT_TRUE(listening.has_value()) << node.Stderr();
  const std::string address(absl::StripAsciiWhitespace(listening->substr(listening->find("grpc listening on ") + 18)));

  // As deploy/systemd sets it up: the spool and the key belong to the push user; the config is public.
  const std::string spool = dir_.File("spool");
  std::filesystem::create_directory(spool);
  ASSERT_EQ(chown(spool.c_str(), uid_, gid_), 0);
  ASSERT_EQ(chmod(spool.c_str(), 0700), 0);
  ASSERT_EQ(chown(dir_.File("builder-1.sec").c_str(), uid_, gid_), 0);
  ASSERT_EQ(chmod(dir_.File("builder-1.sec").c_str(), 0400), 0);
  WriteFileOrDie(dir_.File("builder.toml"),
                 absl::StrCat("key = \"builder-1.sec\"\nspool = \"spool\"\nnodes = [\"", address, "\"]\n"));
  chmod(dir_.File("builder.toml").c_str(), 0644);

  const std::string store = dir_.File("store");
  RunResult build =
      Build(store, {{"ATTEST_BUILDER_CONFIG", dir_.File("builder.toml")}, {"ATTEST_PUSH_USER", kPushUser}});
  ASSERT_EQ(build.exit_code, 0) << build.err;
  EXPECT_THAT(build.err, HasSubstr("post-build-hook: attest hook: queued out "));
  const std::string out_path(absl::StripAsciiWhitespace(build.out));
  ASSERT_TRUE(std::filesystem::exists(store + out_path)) << build.out;

  std::vector<std::filesystem::path> records = Records(spool);
  ASSERT_EQ(records.size(), 1u);
  struct stat st {};
  ASSERT_EQ(stat(records[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, uid_) << "the hook wrote the record as uid " << st.st_uid;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(nlohmann::json::parse(ReadFileOrDie(records[0].string())).at("storePath"), out_path);

  // What attest-push.service runs, once: the push user reads the record and the key, signs, submits,
  // and removes the record (the ledger, a dot file, stays).
  RunResult push = AsPushUser({ATTEST_BIN, "push", "--config", dir_.File("builder.toml")});
  EXPECT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_THAT(push.out, HasSubstr("delivered       " + out_path));
  EXPECT_TRUE(Records(spool).empty());

  RunResult status = attest::testing::Run({ATTEST_BIN, "status", "--node", address, out_path});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_THAT(status.out, HasSubstr("CONFIRMED"));
}

TEST_F(PostBuildHookTest, AMissingPushUserDoesNotBreakTheBuild) {
  WriteFileOrDie(dir_.File("builder.toml"), "key = \"builder.sec\"\nspool = \"spool\"\nnodes = [\"127.0.0.1:7700\"]\n");
  RunResult build = Build(dir_.File("store"), {{"ATTEST_BUILDER_CONFIG", dir_.File("builder.toml")},
                                               {"ATTEST_PUSH_USER", "attest-no-such-user"}});
  ASSERT_EQ(build.exit_code, 0) << build.err;
  EXPECT_THAT(build.err, HasSubstr("could not run " + std::string(ATTEST_HOOK_BIN) + " as attest-no-such-user"));
  EXPECT_THAT(build.err, Not(HasSubstr("queued")));
  EXPECT_FALSE(std::filesystem::exists(dir_.File("spool")));
}

}  // namespace
}  // namespace attest::testing
