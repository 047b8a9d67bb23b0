#include "storage/nar_unpack.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;

// A hand-made NAR writer: the grammar of client/nar.h, with nothing checked, so that tests can also
// write what Nix never would (unsorted or duplicate names, traversal, lies about sizes).

// str(s): 8-byte little-endian length, the bytes, zero padding to a multiple of 8.
std::string S(std::string_view s) {
  std::string out;
  const uint64_t n = s.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(s);
  out.append((8 - s.size() % 8) % 8, '\0');
  return out;
}

std::string Tokens(std::initializer_list<std::string_view> tokens) {
  std::string out;
  for (std::string_view t : tokens) out += S(t);
  return out;
}

enum class Mode { kPlain, kExecutable };

std::string File(std::string_view contents, Mode mode = Mode::kPlain) {
  std::string out = Tokens({"(", "type", "regular"});
  if (mode == Mode::kExecutable) out += Tokens({"executable", ""});
  return out + S("contents") + S(contents) + S(")");
}

std::string Link(std::string_view target) { return Tokens({"(", "type", "symlink", "target"}) + S(target) + S(")"); }

// Entries in the order given.
std::string Dir(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out = Tokens({"(", "type", "directory"});
  for (const auto& [name, node] : entries) out += Tokens({"entry", "(", "name"}) + S(name) + S("node") + node + S(")");
  return out + S(")");
}

std::string Nar(const std::string& root) { return S("nix-archive-1") + root; }

// A tree with every kind of node: nested directories, an empty directory, an empty file, an executable,
// links (relative, absolute, dangling) and names that sort bytewise ("B" < "a", "a" < "a-b" < "ab").
std::string SampleNar() {
  return Nar(Dir({
      {"B", File("upper")},
      {"a", Dir({{"deep", Dir({{"er", File(std::string(100'000, 'x'))}})}})},
      {"a-b", File("", Mode::kPlain)},
      {"ab", File("#!/bin/sh\necho hi\n", Mode::kExecutable)},
      {"empty", Dir({})},
      {"link-abs", Link("/nonexistent/elsewhere")},
      {"link-rel", Link("a/deep/er")},
  }));
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::string ReadLink(const std::string& path) {
  char buffer[4096];
  const ssize_t n = ::readlink(path.c_str(), buffer, sizeof buffer);
  return n < 0 ? "(not a link)" : std::string(buffer, static_cast<size_t>(n));
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode;
}

// Unpacks `nar` fed in pieces of `piece` bytes; returns the first error (of Feed or Finish).
absl::Status Unpack(std::string_view nar, const std::string& target, UnpackLimits limits = {}, size_t piece = 4096) {
  auto unpacker = NarUnpacker::Create(target, limits);
  if (!unpacker.ok()) return unpacker.status();
  for (size_t i = 0; i < nar.size(); i += piece) {
    absl::Status s = (*unpacker)->Feed(nar.substr(i, piece));
    if (!s.ok()) return s;
  }
  return (*unpacker)->Finish();
}

void ExpectSampleTree(const std::string& out) {
  EXPECT_TRUE(S_ISDIR(ModeOf(out)));
  EXPECT_EQ(ReadFileOrDie(out + "/B"), "upper");
  EXPECT_EQ(ReadFileOrDie(out + "/a/deep/er"), std::string(100'000, 'x'));
  EXPECT_EQ(ReadFileOrDie(out + "/a-b"), "");
  EXPECT_EQ(ReadFileOrDie(out + "/ab"), "#!/bin/sh\necho hi\n");
  EXPECT_NE(ModeOf(out + "/ab") & S_IXUSR, 0u) << "executable bit of ab";
  EXPECT_EQ(ModeOf(out + "/B") & S_IXUSR, 0u) << "B is not executable";
  EXPECT_TRUE(S_ISDIR(ModeOf(out + "/empty")));
  EXPECT_TRUE(S_ISLNK(ModeOf(out + "/link-abs")));
  EXPECT_EQ(ReadLink(out + "/link-abs"), "/nonexistent/elsewhere");
  EXPECT_EQ(ReadLink(out + "/link-rel"), "a/deep/er");
}

TEST(NarUnpackTest, UnpacksEveryKindOfNodeFedInAnyPieces) {
  TempDir dir;
  const std::string nar = SampleNar();
  int run = 0;
  for (size_t piece : {size_t{1}, size_t{7}, size_t{8}, size_t{4096}, nar.size()}) {
    const std::string out = dir.File("out" + std::to_string(run++));
    auto unpacker = NarUnpacker::Create(out);
    ASSERT_TRUE(unpacker.ok()) << unpacker.status();
    for (size_t i = 0; i < nar.size(); i += piece) {
      ASSERT_TRUE((*unpacker)->Feed(std::string_view(nar).substr(i, piece)).ok()) << "piece " << piece;
    }
    ASSERT_TRUE((*unpacker)->Finish().ok()) << "piece " << piece;
    EXPECT_EQ((*unpacker)->nar_bytes(), nar.size());
    EXPECT_EQ((*unpacker)->entries(), 10u);  // the root, B, a, deep, er, a-b, ab, empty and two links
    ExpectSampleTree(out);
  }
}

TEST(NarUnpackTest, RootMayBeAFileOrALink) {
  TempDir dir;
  ASSERT_TRUE(Unpack(Nar(File("just a file", Mode::kExecutable)), dir.File("f")).ok());
  EXPECT_EQ(ReadFileOrDie(dir.File("f")), "just a file");
  EXPECT_TRUE(S_ISREG(ModeOf(dir.File("f"))));
  EXPECT_NE(ModeOf(dir.File("f")) & S_IXUSR, 0u);
  ASSERT_TRUE(Unpack(Nar(Link("../../etc/passwd")), dir.File("l")).ok());
  EXPECT_EQ(ReadLink(dir.File("l")), "../../etc/passwd");
}

TEST(NarUnpackTest, RoundTripGivesWhatNixStoreDumps) {
  if (::system("command -v nix-store >/dev/null 2>&1") != 0) GTEST_SKIP() << "nix-store is not installed";
  TempDir dir;
  // Nix makes the NAR; we unpack it; Nix dumps our tree again: the same bytes, so nothing was lost.
  const std::string out = dir.File("from-hand");
  ASSERT_TRUE(Unpack(SampleNar(), out).ok());
  testing::RunResult dumped = testing::Run({"nix-store", "--dump", out});
  ASSERT_EQ(dumped.exit_code, 0) << dumped.err;
  EXPECT_TRUE(dumped.out == SampleNar()) << "nix-store --dump of the unpacked tree differs from the NAR";

  // And a tree Nix serialised from the file system (not from our writer).
  const std::string src = dir.File("src");
  ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((src + "/bin").c_str(), 0755), 0);
  WriteFileOrDie(src + "/bin/tool", "\x7f" "ELF not really\n");
  ASSERT_EQ(::chmod((src + "/bin/tool").c_str(), 0755), 0);
  WriteFileOrDie(src + "/data", std::string(3'000'000, '\1'));
  ASSERT_EQ(::symlink("bin/tool", (src + "/tool").c_str()), 0);
  testing::RunResult nar = testing::Run({"nix-store", "--dump", src});
  ASSERT_EQ(nar.exit_code, 0) << nar.err;
  const std::string copy = dir.File("copy");
  ASSERT_TRUE(Unpack(nar.out, copy, {}, 65536).ok());
  testing::RunResult again = testing::Run({"nix-store", "--dump", copy});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out.size(), nar.out.size());
  EXPECT_TRUE(again.out == nar.out) << "round trip changed the NAR";
}

TEST(NarUnpackTest, UnpackNarFileReadsAFile) {
  TempDir dir;
  WriteFileOrDie(dir.File("x.nar"), SampleNar());
  ASSERT_TRUE(UnpackNarFile(dir.File("x.nar"), dir.File("out")).ok());
  ExpectSampleTree(dir.File("out"));
  EXPECT_EQ(UnpackNarFile(dir.File("missing.nar"), dir.File("out2")).code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(Exists(dir.File("out2")));
}

// Each refusal leaves nothing behind at the target, and says which entry.
struct Refusal {
  std::string what;
  std::string nar;
  absl::StatusCode code;
  std::string in_message;
};

void ExpectRefused(const Refusal& r, UnpackLimits limits = {}) {
  TempDir dir;
  const std::string out = dir.File("out");
  for (size_t piece : {size_t{1}, size_t{64 * 1024}}) {
    absl::Status s = Unpack(r.nar, out, limits, piece);
    EXPECT_EQ(s.code(), r.code) << r.what << ": " << s;
    EXPECT_NE(s.message().find(r.in_message), std::string::npos) << r.what << ": " << s.message();
    EXPECT_FALSE(Exists(out)) << r.what << ": the partial tree was not removed";
  }
}

TEST(NarUnpackTest, RefusesNamesThatAreNotOneComponent) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"..", R"("..")"}, {".", R"(".")"},     {"", R"("")"},
      {"../x", "../x"},  {"a/b", "a/b"},      {std::string("a\0b", 3), R"(a\000b)"},
      {"/etc", "/etc"},
  };
  for (const auto& [name, shown] : bad) {
    // A first, good entry is written before the bad one: it must be removed again.
    ExpectRefused({.what = "name " + shown,
                   .nar = Nar(Dir({{"0-first", File("ok")}, {name, File("evil")}})),
                   .code = absl::StatusCode::kInvalidArgument,
                   .in_message = shown});
  }
}

TEST(NarUnpackTest, RefusesUnsortedAndDuplicateNames) {
  ExpectRefused({.what = "unsorted",
                 .nar = Nar(Dir({{"b", File("1")}, {"a", File("2")}})),
                 .code = absl::StatusCode::kInvalidArgument,
                 .in_message = R"(entry named "a" after "b")"});
  ExpectRefused({.what = "duplicate",
                 .nar = Nar(Dir({{"a", File("1")}, {"a", File("2")}})),
                 .code = absl::StatusCode::kInvalidArgument,
                 .in_message = R"(entry named "a" twice)"});
  // In a subdirectory the order is per directory: "z/a" after "z/b" is refused too.
  ExpectRefused({.what = "unsorted below",
                 .nar = Nar(Dir({{"z", Dir({{"b", File("1")}, {"a", File("2")}})}})),
                 .code = absl::StatusCode::kInvalidArgument,
                 .in_message = "directory \"z\""});
}

TEST(NarUnpackTest, LinkOutsideIsWrittenButNeverFollowed) {
  TempDir dir;
  const std::string outside = dir.File("outside");
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  const std::string out = dir.File("out");

  // A link to a directory outside, then the same name again as a directory with a file in it: if the
  // second entry went through the link, "pwned" would land outside.
  const std::string through = Nar(Dir({{"a", Link(outside)}, {"a", Dir({{"pwned", File("x")}})}}));
  EXPECT_EQ(Unpack(through, out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Exists(outside + "/pwned"));
  EXPECT_FALSE(Exists(out));

  // Links to "..", to an absolute path and to the outside directory are kept as links; what follows
  // them in the NAR is written inside the target.
  const std::string links = Nar(Dir({{"a", Link(outside)},
                                     {"b", Link("..")},
                                     {"c", Dir({{"pwned", File("inside")}})},
                                     {"d", Link("c/pwned")}}));
  ASSERT_TRUE(Unpack(links, out).ok());
  EXPECT_TRUE(S_ISLNK(ModeOf(out + "/a")));
  EXPECT_EQ(ReadLink(out + "/a"), outside);
  EXPECT_EQ(ReadLink(out + "/b"), "..");
  EXPECT_EQ(ReadFileOrDie(out + "/c/pwned"), "inside");
  EXPECT_FALSE(Exists(outside + "/pwned"));

  // The root itself must not exist: not even as a link to a directory the NAR would then fill.
  const std::string link_root = dir.File("link-root");
  ASSERT_EQ(::symlink(outside.c_str(), link_root.c_str()), 0);
  EXPECT_EQ(NarUnpacker::Create(link_root).status().code(), absl::StatusCode::kAlreadyExists);

  // Removing the tree removes the links, not what they point to.
  WriteFileOrDie(outside + "/keep", "keep");
  ASSERT_TRUE(RemoveTree(out).ok());
  EXPECT_FALSE(Exists(out));
  EXPECT_EQ(ReadFileOrDie(outside + "/keep"), "keep");
}

TEST(NarUnpackTest, RefusesAHugeFileBeforeWritingIt) {
  // A NAR that announces a 10 GB file and then ends: refused as soon as the length is read, before the
  // file is even created.
  std::string nar = S("nix-archive-1") + Tokens({"(", "type", "directory", "entry", "(", "name"}) + S("big") +
                    Tokens({"node", "(", "type", "regular", "contents"});
  const uint64_t ten_gb = uint64_t{10} << 30;
  for (int i = 0; i < 8; ++i) nar.push_back(static_cast<char>((ten_gb >> (8 * i)) & 0xff));
  nar += std::string(64, 'x');
  TempDir dir;
  auto unpacker = NarUnpacker::Create(dir.File("out"));
  ASSERT_TRUE(unpacker.ok());
  absl::Status s = (*unpacker)->Feed(nar);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("\"big\" is a file of 10737418240 bytes"), std::string::npos) << s;
  EXPECT_FALSE(Exists(dir.File("out")));
  EXPECT_EQ((*unpacker)->Finish().code(), absl::StatusCode::kResourceExhausted);

  // The budget is for all files together.
  ExpectRefused({.what = "sum over budget",
                 .nar = Nar(Dir({{"a", File(std::string(600, 'a'))}, {"b", File(std::string(600, 'b'))}})),
                 .code = absl::StatusCode::kResourceExhausted,
                 .in_message = "\"b\" is a file of 600 bytes, more than the 400 bytes left"},
                UnpackLimits{.max_file_bytes = 1000});
}

TEST(NarUnpackTest, RefusesTooManyEntriesTooDeepAndLongNames) {
  std::vector<std::pair<std::string, std::string>> many;
  for (int i = 0; i < 10; ++i) many.emplace_back("f" + std::to_string(i), File("x"));
  ExpectRefused({.what = "entries",
                 .nar = Nar(Dir(many)),
                 .code = absl::StatusCode::kResourceExhausted,
                 .in_message = "limit of 5 entries"},
                UnpackLimits{.max_entries = 5});
  std::string deep = File("bottom");
  for (int i = 0; i < 6; ++i) deep = Dir({{"d", deep}});
  ExpectRefused({.what = "depth",
                 .nar = Nar(deep),
                 .code = absl::StatusCode::kResourceExhausted,
                 .in_message = "nested 4 levels deep, more than the limit of 3"},
                UnpackLimits{.max_depth = 3});
  TempDir dir;
  EXPECT_TRUE(Unpack(Nar(deep), dir.File("ok"), UnpackLimits{.max_depth = 5}).ok());
  ExpectRefused({.what = "name length",
                 .nar = Nar(Dir({{std::string(300, 'n'), File("x")}})),
                 .code = absl::StatusCode::kResourceExhausted,
                 .in_message = "name of 300 bytes, more than the limit of 255"});
}

TEST(NarUnpackTest, RefusesTrailingData) {
  ExpectRefused({.what = "garbage", .nar = SampleNar() + "x", .code = absl::StatusCode::kDataLoss,
                 .in_message = "1 more bytes follow"});
  ExpectRefused({.what = "second NAR", .nar = SampleNar() + Nar(File("again")), .code = absl::StatusCode::kDataLoss,
                 .in_message = "more bytes follow"});
}

TEST(NarUnpackTest, RefusesEveryTruncation) {
  const std::string nar = Nar(Dir({{"a", File("contents of a")}, {"b", Dir({{"c", Link("../a")}})}}));
  TempDir dir;
  for (size_t n = 0; n < nar.size(); ++n) {
    const std::string out = dir.File("out" + std::to_string(n));
    absl::Status s = Unpack(std::string_view(nar).substr(0, n), out, {}, 5);
    ASSERT_EQ(s.code(), absl::StatusCode::kDataLoss) << "cut at " << n << ": " << s;
    ASSERT_NE(s.message().find("truncated"), std::string::npos) << s;
    ASSERT_FALSE(Exists(out)) << "cut at " << n;
  }
  EXPECT_TRUE(Unpack(nar, dir.File("whole")).ok());
}

TEST(NarUnpackTest, RefusesWhatIsNotANar) {
  ExpectRefused({.what = "magic", .nar = S("nix-archive-2") + File("x"), .code = absl::StatusCode::kDataLoss,
                 .in_message = "expected \"nix-archive-1\""});
  ExpectRefused({.what = "type", .nar = S("nix-archive-1") + Tokens({"(", "type", "fifo", ")"}),
                 .code = absl::StatusCode::kDataLoss, .in_message = "found \"fifo\""});
  std::string bad_padding = Nar(File("abc"));
  bad_padding.back() = 'z';  // the last padding byte of the closing ")"
  ExpectRefused({.what = "padding", .nar = bad_padding, .code = absl::StatusCode::kDataLoss,
                 .in_message = "padding byte is not zero"});
  // A token announced with an enormous length is refused at its length, not read.
  std::string huge_token = S("nix-archive-1");
  huge_token += std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8);
  ExpectRefused({.what = "huge token", .nar = huge_token, .code = absl::StatusCode::kDataLoss,
                 .in_message = "a string of 9223372036854775807 bytes"});
  ExpectRefused({.what = "empty link", .nar = Nar(Dir({{"l", Link("")}})), .code = absl::StatusCode::kInvalidArgument,
                 .in_message = "\"l\" is a symbolic link"});
  ExpectRefused({.what = "long link", .nar = Nar(Link(std::string(5000, 'l'))),
                 .code = absl::StatusCode::kInvalidArgument, .in_message = "5000 bytes"});
}

TEST(NarUnpackTest, TargetMustBeNewAndItsParentMustExist) {
  TempDir dir;
  EXPECT_EQ(NarUnpacker::Create(dir.path()).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(NarUnpacker::Create(dir.File("no/such/parent")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(NarUnpacker::Create(dir.File("..")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NarUnpacker::Create("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NarUnpackTest, AbandonedUnpackIsRemoved) {
  TempDir dir;
  const std::string nar = SampleNar();
  {
    auto unpacker = NarUnpacker::Create(dir.File("out"));
    ASSERT_TRUE(unpacker.ok());
    ASSERT_TRUE((*unpacker)->Feed(std::string_view(nar).substr(0, nar.size() / 2)).ok());
    EXPECT_TRUE(Exists(dir.File("out/a")));
  }  // destroyed without Finish: the transfer failed elsewhere
  EXPECT_FALSE(Exists(dir.File("out")));
  auto unpacker = NarUnpacker::Create(dir.File("out"));
  ASSERT_TRUE(unpacker.ok());
  ASSERT_TRUE((*unpacker)->Feed(nar).ok());
  ASSERT_TRUE((*unpacker)->Finish().ok());
  EXPECT_EQ((*unpacker)->Feed("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*unpacker)->Finish().code(), absl::StatusCode::kFailedPrecondition);
  unpacker->reset();
  EXPECT_TRUE(Exists(dir.File("out/a/deep/er"))) << "a finished tree belongs to the caller";
}

TEST(NarUnpackTest, RemoveTreeRemovesReadOnlyDirectoriesAndIsFineWhenMissing) {
  TempDir dir;
  const std::string out = dir.File("out");
  ASSERT_TRUE(Unpack(SampleNar(), out).ok());
  ASSERT_EQ(::chmod((out + "/a/deep").c_str(), 0555), 0);
  ASSERT_EQ(::chmod((out + "/a").c_str(), 0555), 0);
  ASSERT_TRUE(RemoveTree(out).ok());
  EXPECT_FALSE(Exists(out));
  EXPECT_TRUE(RemoveTree(out).ok());
  EXPECT_TRUE(Exists(dir.path()));
}

}  // namespace
}  // namespace attest::storage
