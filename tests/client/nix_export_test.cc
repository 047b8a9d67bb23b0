#include "client/nix_export.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "consensus/derivation.h"
#include "consensus/derivation_paths.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/nix_test_env.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::testing::ElementsAre;
using testing::NixTestEnv;
using testing::ReadFileOrDie;
using testing::TempDir;
using testing::WriteFileOrDie;

// Two raw derivations, one an input of the other.
constexpr char kChain[] = R"(
let
  dep = derivation { name = "export-dep"; system = builtins.currentSystem; builder = "/bin/sh";
                     args = [ "-c" "echo dep > $out" ]; };
  top = derivation { name = "export-top"; system = builtins.currentSystem; builder = "/bin/sh";
                     args = [ "-c" "read x < ${dep}; echo \"top $x\" > $out" ]; };
in { inherit dep top; }
)";

ExportedFile FileFromStore(const std::string& store, const std::string& drv_path) {
  const std::string contents = ReadFileOrDie(store + drv_path);
  auto path = consensus::StorePath::Parse(drv_path);
  EXPECT_TRUE(path.ok()) << path.status();
  auto drv = consensus::ParseDerivation(contents, drv_path);
  EXPECT_TRUE(drv.ok()) << drv.status();
  return ExportedFile{
      .path = *path, .contents = contents, .references = consensus::DerivationReferences(*drv), .deriver = ""};
}

// True when a process still runs a command line containing `token` (a builder left behind).
bool ProcessRuns(const std::string& token) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    if (text.find(token) != std::string::npos) return true;
  }
  return false;
}

class NixExportTest : public ::testing::Test {
 protected:
  NixExportTest() : nix_(dir_) { WriteFileOrDie(dir_.File("chain.nix"), kChain); }

  // A derivation whose builder sleeps a minute; its script holds token_, unique to this test.
  std::string SlowDerivation(const std::string& store) {
    token_ = "slow-" + std::filesystem::path(dir_.path()).filename().string();
    WriteFileOrDie(dir_.File("slow.nix"),
                   "derivation { name = \"slow\"; system = builtins.currentSystem; builder = \"/bin/sh\";\n"
                   "             args = [ \"-c\" \"/bin/sleep 60; echo " +
                       token_ + " > $out\" ]; }\n");
    return nix_.Instantiate(store, dir_.File("slow.nix"), "");
  }

  TempDir dir_;
  NixTestEnv nix_;
  std::string token_;
};

TEST_F(NixExportTest, RegularFileNarIsWhatNixDumps) {
  const std::string store = nix_.Store("a");
  const std::string drv = nix_.Instantiate(store, dir_.File("chain.nix"), "dep");
  testing::RunResult dump = nix_.Nix({"nix-store", "--dump", store + drv});  // a file system path
  ASSERT_EQ(dump.exit_code, 0) << dump.err;
  EXPECT_EQ(RegularFileNar(ReadFileOrDie(store + drv)), dump.out);
}

TEST_F(NixExportTest, ExportIsByteForByteWhatNixExports) {
  const std::string store = nix_.Store("a");
  const std::string top = nix_.Instantiate(store, dir_.File("chain.nix"), "top");
  const std::string dep = nix_.Instantiate(store, dir_.File("chain.nix"), "dep");
  testing::RunResult exported = nix_.Nix({"nix-store", "--store", store, "--export", top, dep});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  const std::string ours = WriteNixExport({FileFromStore(store, dep), FileFromStore(store, top)});
  EXPECT_EQ(ours.size(), exported.out.size());
  EXPECT_TRUE(ours == exported.out) << "the export streams differ";
}

TEST_F(NixExportTest, ImportIntoAFreshStoreMakesTheDerivationsValid) {
  const std::string source = nix_.Store("a");
  const std::string top = nix_.Instantiate(source, dir_.File("chain.nix"), "top");
  const std::string dep = nix_.Instantiate(source, dir_.File("chain.nix"), "dep");
  const std::string fresh = nix_.Store("fresh");
  auto top_path = *consensus::StorePath::Parse(top);
  auto dep_path = *consensus::StorePath::Parse(dep);

  auto before = InvalidPaths(fresh, {dep_path, top_path});
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_THAT(*before, ElementsAre(dep_path, top_path));

  ASSERT_TRUE(ImportIntoStore(fresh, {FileFromStore(source, dep), FileFromStore(source, top)}).ok());

  auto after = InvalidPaths(fresh, {dep_path, top_path});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->empty());
  EXPECT_EQ(ReadFileOrDie(fresh + top), ReadFileOrDie(source + top));
  testing::RunResult refs = nix_.Nix({"nix-store", "--store", fresh, "--query", "--references", top});
  ASSERT_EQ(refs.exit_code, 0) << refs.err;
  EXPECT_EQ(refs.out, dep + "\n");
  // What Nix records for the imported file is what it recorded where the file was made.
  testing::RunResult hash_here = nix_.Nix({"nix-store", "--store", fresh, "--query", "--hash", top});
  testing::RunResult hash_there = nix_.Nix({"nix-store", "--store", source, "--query", "--hash", top});
  EXPECT_EQ(hash_here.out, hash_there.out);
}

TEST_F(NixExportTest, ImportWithoutItsInputIsRefusedByNix) {
  const std::string source = nix_.Store("a");
  const std::string top = nix_.Instantiate(source, dir_.File("chain.nix"), "top");
  absl::Status status = ImportIntoStore(nix_.Store("fresh"), {FileFromStore(source, top)});
  EXPECT_EQ(status.code(), absl::StatusCode::kUnknown) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("nix-store --import refused"));
  EXPECT_FALSE(nix_.Valid(nix_.Store("fresh"), top));
}

TEST_F(NixExportTest, ABuildPastItsTimeoutIsStoppedWithItsBuilder) {
  const std::string store = nix_.Store("a");
  const std::string drv = SlowDerivation(store);
  NixStoreRunOptions options;
  options.timeout = absl::Seconds(2);
  const absl::Time start = absl::Now();
  absl::StatusOr<NixStoreRun> run = RunNixStore({"--store", store, "--realise", drv}, options);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kDeadlineExceeded) << run.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_FALSE(nix_.Valid(store, nix_.OutputOf(store, drv)));
  EXPECT_FALSE(ProcessRuns(token_)) << "a builder outlived nix-store";
}

TEST_F(NixExportTest, ACancelledRunIsStoppedWithItsBuilder) {
  const std::string store = nix_.Store("a");
  const std::string drv = SlowDerivation(store);
  NixStoreRunOptions options;
  // Cancelled once the builder runs.
  options.cancelled = [this] { return ProcessRuns(token_); };
  absl::StatusOr<NixStoreRun> run = RunNixStore({"--store", store, "--realise", drv}, options);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kCancelled) << run.status();
  EXPECT_FALSE(ProcessRuns(token_)) << "a builder outlived nix-store";
}

TEST_F(NixExportTest, NonZeroExitIsAResultWithNixsError) {
  const std::string missing = "/nix/store/00000000000000000000000000000000-none.drv";
  absl::StatusOr<NixStoreRun> run = RunNixStore({"--store", nix_.Store("a"), "--realise", missing}, {});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_NE(run->exit_code, 0);
  EXPECT_THAT(LastNixErrorLine(run->err, 1000), ::testing::HasSubstr(missing));
}

TEST(LastNixErrorLineTest, TakesTheLastLineWithoutPrefixOrColours) {
  EXPECT_EQ(
      LastNixErrorLine("building '/nix/store/x.drv'...\n\x1b[31;1merror:\x1b[0m builder for 'x' failed\n\n", 1000),
      "builder for 'x' failed");
  EXPECT_EQ(LastNixErrorLine("", 1000), "");
}

TEST(LastNixErrorLineTest, KeepsTheBuildersLastLineWithTheError) {
  EXPECT_EQ(
      LastNixErrorLine("this derivation will be built:\n  /nix/store/x.drv\nbuilding '/nix/store/x.drv'...\n"
                       "compiling\nno frobnicator\nerror: builder for '/nix/store/x.drv' failed with exit code 3\n",
                       1000),
      "builder for '/nix/store/x.drv' failed with exit code 3 (last log line: no frobnicator)");
  // Not after a build: only the error.
  EXPECT_EQ(LastNixErrorLine("warning: something\nerror: path '/nix/store/y' is not valid\n", 1000),
            "path '/nix/store/y' is not valid");
}

TEST(LastNixErrorLineTest, CutsAtAUtf8Boundary) {
  // "é" is two bytes; cutting after 2 bytes would split the second one.
  EXPECT_EQ(LastNixErrorLine("aé", 2), "a");
  EXPECT_EQ(LastNixErrorLine("abcdef", 3), "abc");
}

}  // namespace
}  // namespace attest::client
