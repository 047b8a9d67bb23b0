#include "storage/diffoscope.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "storage/nar_unpack.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;

bool DiffoscopeInstalled() { return ::system("command -v diffoscope >/dev/null 2>&1") == 0; }

#define REQUIRE_DIFFOSCOPE()                                                                           \
  if (!DiffoscopeInstalled()) GTEST_SKIP() << "diffoscope is not installed (Debian package diffoscope)"

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

void MakeDir(const std::string& path) { ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path; }

// A stand-in for diffoscope: a shell script, so the tests can make a tool that is slow, fails, or talks a lot.
std::string FakeTool(const TempDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir.File(name);
  WriteFileOrDie(path, "#!/bin/sh\n" + body + "\n");
  EXPECT_EQ(::chmod(path.c_str(), 0755), 0);
  return path;
}

// Two trees that differ in one file, sub/f.txt.
void MakeTrees(const TempDir& dir) {
  for (const char* side : {"a", "b"}) {
    const std::string root = dir.File(side);
    MakeDir(root);
    MakeDir(root + "/sub");
    WriteFileOrDie(root + "/same.txt", "the same on both sides\n");
    WriteFileOrDie(root + "/sub/f.txt", std::string("built at ") + (side[0] == 'a' ? "10:00" : "10:01") + "\n");
  }
}

TEST(DiffoscopeTest, NamesTheFileThatDiffers) {
  REQUIRE_DIFFOSCOPE();
  TempDir dir;
  MakeTrees(dir);
  DiffoscopeOptions options;
  options.html_path = dir.File("report.html");
  auto result = RunDiffoscope(dir.File("a"), dir.File("b"), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->verdict, DiffoscopeVerdict::kDifferent);
  EXPECT_NE(result->text.find("sub/f.txt"), std::string::npos) << result->text;
  EXPECT_NE(result->text.find("10:01"), std::string::npos) << result->text;
  EXPECT_EQ(result->text.find("same.txt"), std::string::npos) << result->text;
  EXPECT_FALSE(result->text_truncated);
  EXPECT_EQ(DifferingFiles(result->text, dir.File("b")), std::vector<std::string>{"sub/f.txt"}) << result->text;
  ASSERT_EQ(result->html_path, options.html_path);
  EXPECT_NE(ReadFileOrDie(options.html_path).find("f.txt"), std::string::npos);
  EXPECT_GT(result->elapsed, absl::ZeroDuration());
}

TEST(DiffoscopeTest, IdenticalTreesAreTheSame) {
  REQUIRE_DIFFOSCOPE();
  TempDir dir;
  MakeTrees(dir);
  WriteFileOrDie(dir.File("b/sub/f.txt"), ReadFileOrDie(dir.File("a/sub/f.txt")));
  ASSERT_EQ(::chmod(dir.File("b/sub").c_str(), 0700), 0);  // directory metadata is not compared
  DiffoscopeOptions options;
  options.html_path = dir.File("report.html");
  auto result = RunDiffoscope(dir.File("a"), dir.File("b"), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->verdict, DiffoscopeVerdict::kSame);
  EXPECT_EQ(result->text, "");
  EXPECT_EQ(result->html_path, "");
  EXPECT_TRUE(DifferingFiles(result->text, dir.File("b")).empty());
}

TEST(DiffoscopeTest, ComparesTwoUnpackedNars) {
  REQUIRE_DIFFOSCOPE();
  if (::system("command -v nix-store >/dev/null 2>&1") != 0) GTEST_SKIP() << "nix-store is not installed";
  // Two builds of one path, as their NARs arrive from two operators' caches: dumped, unpacked, compared.
  TempDir dir;
  MakeTrees(dir);
  for (const char* side : {"a", "b"}) {
    testing::RunResult nar = testing::Run({"nix-store", "--dump", dir.File(side)});
    ASSERT_EQ(nar.exit_code, 0) << nar.err;
    WriteFileOrDie(dir.File(std::string(side) + ".nar"), nar.out);
    ASSERT_TRUE(UnpackNarFile(dir.File(std::string(side) + ".nar"), dir.File(std::string(side) + "-out")).ok());
  }
  auto result = RunDiffoscope(dir.File("a-out"), dir.File("b-out"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->verdict, DiffoscopeVerdict::kDifferent);
  EXPECT_EQ(DifferingFiles(result->text, dir.File("b-out")), std::vector<std::string>{"sub/f.txt"}) << result->text;
}

TEST(DiffoscopeTest, MissingToolIsUnavailable) {
  TempDir dir;
  MakeTrees(dir);
  for (const std::string& program : {std::string("attest-no-such-diffoscope"), dir.File("nowhere/diffoscope")}) {
    DiffoscopeOptions options;
    options.program = program;
    auto result = RunDiffoscope(dir.File("a"), dir.File("b"), options);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
    EXPECT_NE(result.status().message().find("install the Debian package diffoscope"), std::string::npos)
        << result.status();
  }
}

TEST(DiffoscopeTest, SlowToolIsKilledWithItsChildrenAtTheDeadline) {
  TempDir dir;
  MakeTrees(dir);
  // The tool starts a helper that would outlive it, then hangs; both must be gone after the deadline.
  DiffoscopeOptions options;
  options.program = FakeTool(dir, "slow", "sleep 300 & echo $! > " + dir.File("helper.pid") + "\nwait");
  options.time_limit = absl::Seconds(1);
  const auto start = std::chrono::steady_clock::now();
  auto result = RunDiffoscope(dir.File("a"), dir.File("b"), options);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  EXPECT_LT(took, std::chrono::seconds(10));
  EXPECT_GE(took, std::chrono::milliseconds(900));
  const pid_t helper = std::atoi(ReadFileOrDie(dir.File("helper.pid")).c_str());
  ASSERT_GT(helper, 0);
  // Killed: gone, or a zombie waiting for whoever adopted it.
  EXPECT_TRUE(testing::PollUntil(
      [&] {
        std::ifstream stat("/proc/" + std::to_string(helper) + "/stat");
        std::string line;
        if (!std::getline(stat, line)) return true;
        const size_t paren = line.rfind(')');
        return paren != std::string::npos && line.compare(paren + 1, 3, " Z ") == 0;
      },
      std::chrono::seconds(5)))
      << "helper " << helper << " still runs";
}

TEST(DiffoscopeTest, ACancelledRunIsKilledSoon) {
  TempDir dir;
  MakeTrees(dir);
  DiffoscopeOptions options;
  options.program = FakeTool(dir, "slow", "sleep 300");
  options.time_limit = absl::Seconds(60);
  const auto start = std::chrono::steady_clock::now();
  options.cancelled = [&start] { return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(300); };
  auto result = RunDiffoscope(dir.File("a"), dir.File("b"), options);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST(DiffoscopeTest, FailureCarriesStderr) {
  TempDir dir;
  MakeTrees(dir);
  DiffoscopeOptions options;
  options.program = FakeTool(dir, "broken", "echo 'E: something went wrong in the comparator' >&2\nexit 2");
  auto result = RunDiffoscope(dir.File("a"), dir.File("b"), options);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnknown) << result.status();
  EXPECT_NE(result.status().message().find("exit status 2"), std::string::npos) << result.status();
  EXPECT_NE(result.status().message().find("something went wrong"), std::string::npos) << result.status();
}

TEST(DiffoscopeTest, TextIsCappedAndScratchDirectoryRemoved) {
  TempDir dir;
  MakeTrees(dir);
  DiffoscopeOptions options;
  // Prints 2 MB, leaves a file in its TMPDIR, says where that was, and reports differences.
  options.program = FakeTool(dir, "chatty",
                             "echo \"$TMPDIR\" > " + dir.File("tmpdir") +
                                 "\ntouch \"$TMPDIR/left-behind\"\nhead -c 2000000 /dev/zero | tr '\\0' x\nexit 1");
  options.max_text_bytes = 1000;
  options.scratch_parent = dir.path();
  auto result = RunDiffoscope(dir.File("a"), dir.File("b"), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->verdict, DiffoscopeVerdict::kDifferent);
  EXPECT_EQ(result->text, std::string(1000, 'x'));
  EXPECT_TRUE(result->text_truncated);
  std::string scratch = ReadFileOrDie(dir.File("tmpdir"));
  while (!scratch.empty() && scratch.back() == '\n') scratch.pop_back();
  EXPECT_EQ(scratch.rfind(dir.File("attest-diffoscope-"), 0), 0u) << scratch;
  EXPECT_FALSE(Exists(scratch)) << "the run's TMPDIR was not removed";
}

TEST(DiffoscopeTest, ArgumentsAreTheDocumentedOnes) {
  TempDir dir;
  MakeTrees(dir);
  DiffoscopeOptions options;
  options.program = FakeTool(dir, "echo-args", "printf '%s\\n' \"$@\"");
  options.html_path = dir.File("r.html");
  options.time_limit = absl::Seconds(10);
  options.max_report_bytes = 12345;
  options.max_text_bytes = 6789;
  auto result = RunDiffoscope(dir.File("a"), dir.File("b"), options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->text, "--no-progress\n--text\n-\n--text-color\nnever\n--exclude-directory-metadata\nyes\n"
                          "--max-report-size\n12345\n--max-page-size\n12345\n--max-text-report-size\n6789\n"
                          "--html\n" + dir.File("r.html") + "\n--timeout\n8\n--\n" + dir.File("a") + "\n" +
                              dir.File("b") + "\n");
}

TEST(DiffoscopeTest, DifferingFilesReadsTheReportTree) {
  // Shaped as diffoscope 240 writes it: a symlink, a nested file, an archive with a member, and a diff
  // line of file contents that happens to read "+++ /r/b/fake".
  const std::string report =
      "--- /r/a\n"
      "+++ /r/b\n"
      "├── file list\n"
      "│ @@ -1,4 +1,3 @@\n"
      "│  g\n"
      "│ -onlyA\n"
      "│   --- /r/a/link\n"
      "├── +++ /r/b/link\n"
      "│┄ symlink\n"
      "│ @@ -1 +1 @@\n"
      "│ -destination: /etc/passwd\n"
      "│ +destination: /etc/shadow\n"
      "│   --- /r/a/sub\n"
      "├── +++ /r/b/sub\n"
      "│ │   --- /r/a/sub/f.txt\n"
      "│ ├── +++ /r/b/sub/f.txt\n"
      "│ │ @@ -1 +1 @@\n"
      "│ │ -++ /r/b/old\n"
      "│ │ +++ /r/b/fake\n"
      "│   --- /r/a/x.tar\n"
      "├── +++ /r/b/x.tar\n"
      "│ ├── file list\n"
      "│ │   --- inner.txt\n"
      "│ ├── +++ inner.txt\n"
      "│ │ @@ -1 +1 @@\n";
  EXPECT_EQ(DifferingFiles(report, "/r/b/"), (std::vector<std::string>{"link", "sub/f.txt", "x.tar"}));
  EXPECT_EQ(DifferingFiles("--- /r/a.bin\n+++ /r/b.bin\n│ @@ -1 +1 @@\n", "/r/b.bin"), std::vector<std::string>{""});
  EXPECT_TRUE(DifferingFiles("", "/r/b").empty());
}

}  // namespace
}  // namespace attest::storage
