// `attest hook` in-process, over real .drv files (made by real Nix: tests/testdata/derivations) laid out
// in a temporary chroot-store directory, with the environment Nix would pass injected.
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "client/cli.h"
#include "client/command.h"
#include "client/spool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

constexpr std::string_view kMulti = "8z762dpw3m5h6jk3pb3546ym371d9kqv-attest-multi.drv";
constexpr std::string_view kCa = "4gzfb6hm6cs68x8bcbds6ac09g5d9wlg-attest-ca.drv";
constexpr std::string_view kMultiOut = "/nix/store/7pgg1fh0rkm9qfgb2njwm2saywhlv5lr-attest-multi";
constexpr std::string_view kMultiDev = "/nix/store/fhn5hr5m83w68qh8f0dwyc0j6jwi8fcb-attest-multi-dev";
constexpr std::string_view kMultiDoc = "/nix/store/93djjjwnksvdigd8lpfq1h7gpj5rb0mm-attest-multi-doc";
constexpr std::string_view kMultiBin = "/nix/store/ahg4mv5bd52rxycdr5lk71wjm9x7ilis-attest-multi-bin";
constexpr std::string_view kNotAffected = "the build is not affected; run `attest push --scan` later to attest it";

struct HookResult final {
  int code = -1;
  std::string out;
  std::string err;
};

class HookTest : public ::testing::Test {
 protected:
  HookTest() {
    root_ = dir_.File("store-A");
    std::filesystem::create_directories(root_ + "/nix/store");
    for (std::string_view drv : {kMulti, kCa}) {
      std::filesystem::copy_file(std::string(ATTEST_TESTDATA_DIR) + "/derivations/" + std::string(drv),
                                 root_ + "/nix/store/" + std::string(drv));
    }
    // The built outputs, as Nix leaves them in the chroot store.
    for (std::string_view out : {kMultiOut, kMultiDev, kMultiDoc, kMultiBin}) {
      testing::WriteFileOrDie(root_ + std::string(out), "built\n");
    }
    // key names a file that does not exist: the hook must never read it.
    testing::WriteFileOrDie(dir_.File("builder.toml"),
                            "key = \"no-such-key.sec\"\nspool = \"spool\"\nnodes = [\"127.0.0.1:7700\"]\n");
    env_ = {{"DRV_PATH", "/nix/store/" + std::string(kMulti)},
            {"OUT_PATHS", ""},
            {"NIX_CONFIG", "build-users-group = \nstore = " + root_ + "\nsubstituters = \n"},
            {"ATTEST_BUILDER_CONFIG", dir_.File("builder.toml")}};
  }

  HookResult Hook(std::vector<std::string> args = {}) {
    args.insert(args.begin(), "hook");
    std::istringstream in;
    std::ostringstream out, err;
    CommandEnv env{
        .in = in,
        .out = out,
        .err = err,
        .connect_node = [](const NodeOptions&) -> absl::StatusOr<std::unique_ptr<NodeApi>> {
          ADD_FAILURE() << "the hook must not contact a node";
          return absl::UnavailableError("no network in the hook");
        },
        .random_bytes = [](std::span<uint8_t>) {},
        .default_node = "",
        .env_var = [this](std::string_view name) -> std::optional<std::string> {
          auto it = env_.find(std::string(name));
          if (it == env_.end()) return std::nullopt;
          return it->second;
        },
    };
    HookResult result;
    result.code = RunCli(args, env);
    result.out = out.str();
    result.err = err.str();
    return result;
  }

  std::vector<SpoolEntry> Spooled() {
    absl::StatusOr<Spool> spool = Spool::Open(dir_.File("spool"));
    EXPECT_TRUE(spool.ok()) << spool.status();
    if (!spool.ok()) return {};
    absl::StatusOr<SpoolListing> listing = spool->List();
    EXPECT_TRUE(listing.ok()) << listing.status();
    if (!listing.ok()) return {};
    EXPECT_THAT(listing->errors, ::testing::IsEmpty());
    return listing->entries;
  }

  static std::vector<std::pair<std::string, std::string>> NamesAndPaths(const std::vector<SpoolEntry>& entries) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const SpoolEntry& entry : entries) out.emplace_back(entry.record.output_name, entry.record.store_path);
    return out;
  }

  // Runs the hook, which must exit 0, log `fragment` and the recovery hint, and queue nothing.
  void ExpectGivesUpQuietly(std::string_view fragment, std::vector<std::string> args = {}) {
    HookResult r = Hook(std::move(args));
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.err, HasSubstr(std::string(fragment)));
    EXPECT_THAT(r.err, HasSubstr(std::string(kNotAffected)));
    EXPECT_EQ(r.out, "");
    if (std::filesystem::is_directory(dir_.File("spool"))) {
      EXPECT_THAT(Spooled(), ::testing::IsEmpty());
    }
  }

  testing::TempDir dir_;
  std::string root_;
  std::map<std::string, std::string> env_;
};

// Nix 2.8.0: OUT_PATHS is empty, so every output comes from the .drv.
TEST_F(HookTest, QueuesEveryOutputOfTheDerivationWhenOutPathsIsEmpty) {
  HookResult r = Hook();
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  const std::vector<SpoolEntry> entries = Spooled();
  EXPECT_THAT(NamesAndPaths(entries),
              UnorderedElementsAre(std::pair{std::string("out"), std::string(kMultiOut)},
                                   std::pair{std::string("dev"), std::string(kMultiDev)},
                                   std::pair{std::string("doc"), std::string(kMultiDoc)},
                                   std::pair{std::string("bin"), std::string(kMultiBin)}));
  for (const SpoolEntry& entry : entries) {
    EXPECT_EQ(entry.record.drv_path, "/nix/store/" + std::string(kMulti));
    EXPECT_EQ(entry.record.store_root, root_);
    EXPECT_EQ(entry.record.store_uri, root_);
    EXPECT_GT(entry.record.queued_at_unix_ms, 1700000000000);
    EXPECT_TRUE(entry.record.acknowledged_by.empty());
    // One stderr line per record, naming the output and the path.
    EXPECT_THAT(r.err, HasSubstr("attest hook: queued " + entry.record.output_name + " " + entry.record.store_path));
  }
  EXPECT_THAT(r.err, Not(HasSubstr("warning")));
}

TEST_F(HookTest, UsesOutPathsWhenNixFillsItAndTakesNamesFromTheDrv) {
  env_["OUT_PATHS"] = std::string(kMultiDev) + " " + std::string(kMultiOut);
  HookResult r = Hook();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(NamesAndPaths(Spooled()), UnorderedElementsAre(std::pair{std::string("out"), std::string(kMultiOut)},
                                                             std::pair{std::string("dev"), std::string(kMultiDev)}));
}

TEST_F(HookTest, IsIdempotent) {
  ASSERT_EQ(Hook().code, 0);
  const std::vector<SpoolEntry> first = Spooled();
  ASSERT_EQ(first.size(), 4u);
  HookResult again = Hook();
  EXPECT_EQ(again.code, 0);
  const std::vector<SpoolEntry> second = Spooled();
  ASSERT_EQ(second.size(), 4u);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].id, second[i].id);
    EXPECT_EQ(first[i].record.queued_at_unix_ms, second[i].record.queued_at_unix_ms) << "record was replaced";
  }
}

// Nix 2.8.0 runs the hook for a CA derivation (and for the resolved derivation of one with CA inputs)
// with OUT_PATHS empty: the output is spooled without a path, for push to find in its realisation.
TEST_F(HookTest, SpoolsAFloatingOutputWithoutItsPath) {
  env_["DRV_PATH"] = "/nix/store/" + std::string(kCa);
  HookResult r = Hook();
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.err, AllOf(HasSubstr("queued out of /nix/store/" + std::string(kCa)), HasSubstr("realisation")));
  EXPECT_THAT(r.err, Not(HasSubstr(std::string(kNotAffected))));
  const std::vector<SpoolEntry> spooled = Spooled();
  ASSERT_EQ(spooled.size(), 1u);
  EXPECT_EQ(spooled[0].record.store_path, "");
  EXPECT_EQ(spooled[0].record.drv_path, "/nix/store/" + std::string(kCa));
  EXPECT_EQ(spooled[0].record.output_name, "out");
  // Idempotent like a path's record.
  ASSERT_EQ(Hook().code, 0);
  EXPECT_EQ(Spooled().size(), 1u);
}

// Nix 2.8.0 runs the hook for the original CA derivation with OUT_PATHS set: the name comes from how Nix
// names the path ("<drv name>" for out).
TEST_F(HookTest, NamesAFloatingOutputFromOutPaths) {
  env_["DRV_PATH"] = "/nix/store/" + std::string(kCa);
  const std::string built = "/nix/store/0c1dnph7x607v4k83gis63iv3z6v93ff-attest-ca";
  env_["OUT_PATHS"] = built;
  testing::WriteFileOrDie(root_ + built, "ca\n");
  HookResult r = Hook();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(NamesAndPaths(Spooled()), UnorderedElementsAre(std::pair{std::string("out"), built}));
}

TEST_F(HookTest, QueuesEvenWhenAnOutputIsMissingButWarns) {
  std::filesystem::remove(root_ + std::string(kMultiDoc));
  HookResult r = Hook();
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.err, AllOf(HasSubstr("warning: " + std::string(kMultiDoc) + " is not at " + root_), HasSubstr("store root")));
  EXPECT_EQ(Spooled().size(), 4u);
}

TEST_F(HookTest, ConfigFlagOverridesTheEnvironment) {
  env_["ATTEST_BUILDER_CONFIG"] = dir_.File("missing.toml");
  HookResult r = Hook({"--config", dir_.File("builder.toml")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Spooled().size(), 4u);
}

TEST_F(HookTest, IgnoresArgumentsButStillQueues) {
  HookResult r = Hook({"stray"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("ignoring the argument 'stray'"));
  EXPECT_EQ(Spooled().size(), 4u);
}

TEST_F(HookTest, ExitsZeroAndExplainsWhenDrvPathIsMissingOrWrong) {
  env_.erase("DRV_PATH");
  ExpectGivesUpQuietly("DRV_PATH is not set");
  env_["DRV_PATH"] = "/nix/store/7pgg1fh0rkm9qfgb2njwm2saywhlv5lr-attest-multi";
  ExpectGivesUpQuietly("does not end in .drv");
  env_["DRV_PATH"] = "/tmp/x.drv";
  ExpectGivesUpQuietly("DRV_PATH is not a derivation path");
}

TEST_F(HookTest, ExitsZeroAndExplainsABadOrMissingConfig) {
  env_.erase("ATTEST_BUILDER_CONFIG");
  ExpectGivesUpQuietly("pass --config FILE or set ATTEST_BUILDER_CONFIG");
  env_["ATTEST_BUILDER_CONFIG"] = dir_.File("missing.toml");
  ExpectGivesUpQuietly(dir_.File("missing.toml") + ": no such file");
  testing::WriteFileOrDie(dir_.File("bad.toml"), "key = \"k\"\nspool = \"spool\"\nnodes = [\"a:1\"]\nkeys = 1\n");
  env_["ATTEST_BUILDER_CONFIG"] = dir_.File("bad.toml");
  ExpectGivesUpQuietly(dir_.File("bad.toml") + ":4:1: unknown key 'keys'");
}

TEST_F(HookTest, ExitsZeroAndExplainsAnUnreadableOrDamagedDrv) {
  env_["DRV_PATH"] = "/nix/store/lvvrdb67kv1cx8n7xnx5mm116h809p9p-attest-dep.drv";  // not in this store
  ExpectGivesUpQuietly("cannot open " + root_ + "/nix/store/lvvrdb67kv1cx8n7xnx5mm116h809p9p-attest-dep.drv");
  testing::WriteFileOrDie(root_ + "/nix/store/lvvrdb67kv1cx8n7xnx5mm116h809p9p-attest-dep.drv", "Derive([(\"out\"");
  ExpectGivesUpQuietly("byte 14: expected ','");
}

TEST_F(HookTest, ExitsZeroAndExplainsAStoreItCannotRead) {
  env_["NIX_CONFIG"] = "store = ssh-ng://builder.example\n";
  ExpectGivesUpQuietly("ssh-ng://builder.example");
  env_["NIX_CONFIG"] = "store = " + root_ + "\n";
  env_["NIX_STORE_DIR"] = "/gnu/store";
  ExpectGivesUpQuietly("NIX_STORE_DIR");
}

TEST_F(HookTest, ExitsZeroAndExplainsASpoolItCannotWrite) {
  // The spool's parent is a regular file: the directory can be neither created nor used (this holds for
  // root too, unlike a read-only mode).
  testing::WriteFileOrDie(dir_.File("not-a-dir"), "");
  testing::WriteFileOrDie(dir_.File("builder.toml"),
                          "key = \"k.sec\"\nspool = \"not-a-dir/spool\"\nnodes = [\"127.0.0.1:7700\"]\n");
  ExpectGivesUpQuietly("not-a-dir/spool");
  testing::WriteFileOrDie(dir_.File("builder.toml"),
                          "key = \"k.sec\"\nspool = \"not-a-dir\"\nnodes = [\"127.0.0.1:7700\"]\n");
  ExpectGivesUpQuietly("not a directory");
}

TEST_F(HookTest, HelpSaysHowToInstallIt) {
  HookResult r = Hook({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, AllOf(HasSubstr("post-build-hook"), HasSubstr("--config FILE"), HasSubstr("DRV_PATH"),
                           HasSubstr("exits 0")));
}

}  // namespace
}  // namespace attest::client
