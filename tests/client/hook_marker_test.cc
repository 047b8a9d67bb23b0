// The hook and `attest rebuild`'s marker (<spool>/.rebuilding/<drv base name>): records of a marked
// derivation carry the marker's build kind, and the hook takes the marker away.
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "client/hook.h"
#include "client/rebuilder.h"
#include "client/spool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::testing::Each;
using ::testing::Field;
using ::testing::HasSubstr;
using testing::ReadFileOrDie;
using testing::WriteFileOrDie;

constexpr std::string_view kMulti = "8z762dpw3m5h6jk3pb3546ym371d9kqv-attest-multi.drv";

class HookMarkerTest : public ::testing::Test {
 protected:
  HookMarkerTest() {
    root_ = dir_.File("store");
    std::filesystem::create_directories(root_ + "/nix/store");
    std::filesystem::copy_file(std::string(ATTEST_TESTDATA_DIR) + "/derivations/" + std::string(kMulti),
                               root_ + "/nix/store/" + std::string(kMulti));
    WriteFileOrDie(dir_.File("builder.toml"),
                   "key = \"unused.sec\"\nspool = \"spool\"\nnodes = [\"127.0.0.1:7700\"]\n");
    env_ = {{"DRV_PATH", "/nix/store/" + std::string(kMulti)},
            {"NIX_CONFIG", "store = " + root_ + "\n"},
            {"ATTEST_BUILDER_CONFIG", dir_.File("builder.toml")}};
    marker_ = Rebuilder::MarkerPath(dir_.File("spool"), *consensus::StorePath::Parse(env_["DRV_PATH"]));
  }

  std::string RunHook() {
    std::ostringstream log;
    QueueBuiltOutputs(
        "",
        [this](std::string_view name) -> std::optional<std::string> {
          auto it = env_.find(std::string(name));
          if (it == env_.end()) return std::nullopt;
          return it->second;
        },
        log);
    return log.str();
  }

  std::vector<SpoolRecord> Records() {
    auto listing = Spool::Open(dir_.File("spool"))->List();
    EXPECT_TRUE(listing.ok()) << listing.status();
    std::vector<SpoolRecord> records;
    for (const SpoolEntry& entry : listing->entries) records.push_back(entry.record);
    return records;
  }

  void Mark(const std::string& kind) {
    std::filesystem::create_directories(std::filesystem::path(marker_).parent_path());
    WriteFileOrDie(marker_, kind);
  }

  testing::TempDir dir_;
  std::string root_;
  std::map<std::string, std::string> env_;
  std::string marker_;
};

TEST_F(HookMarkerTest, MarkedDerivationIsSpooledWithTheKindAndTheMarkerIsTaken) {
  Mark("rebuild");
  const std::string log = RunHook();
  const std::vector<SpoolRecord> records = Records();
  EXPECT_EQ(records.size(), 4u) << log;
  EXPECT_THAT(records, Each(Field(&SpoolRecord::build_kind, "rebuild")));
  EXPECT_THAT(log, HasSubstr("(rebuild)"));
  EXPECT_FALSE(std::filesystem::exists(marker_));
}

TEST_F(HookMarkerTest, CheckMarkerGivesKindCheck) {
  Mark("check\n");
  RunHook();
  EXPECT_THAT(Records(), Each(Field(&SpoolRecord::build_kind, "check")));
  EXPECT_FALSE(std::filesystem::exists(marker_));
}

TEST_F(HookMarkerTest, WithoutAMarkerItIsAFirstBuild) {
  RunHook();
  const std::vector<SpoolRecord> records = Records();
  EXPECT_EQ(records.size(), 4u);
  EXPECT_THAT(records, Each(Field(&SpoolRecord::build_kind, "")));
}

TEST_F(HookMarkerTest, AMarkerOfAnotherDerivationDoesNotApply) {
  const std::string other = dir_.File("spool/.rebuilding/4gzfb6hm6cs68x8bcbds6ac09g5d9wlg-attest-ca.drv");
  std::filesystem::create_directories(dir_.File("spool/.rebuilding"));
  WriteFileOrDie(other, "rebuild");
  RunHook();
  EXPECT_THAT(Records(), Each(Field(&SpoolRecord::build_kind, "")));
  EXPECT_EQ(ReadFileOrDie(other), "rebuild");
}

TEST_F(HookMarkerTest, AnUnknownKindIsIgnoredWithAWarning) {
  Mark("ultimate");
  const std::string log = RunHook();
  EXPECT_THAT(Records(), Each(Field(&SpoolRecord::build_kind, "")));
  EXPECT_THAT(log, HasSubstr("not rebuild or check"));
}

}  // namespace
}  // namespace attest::client
