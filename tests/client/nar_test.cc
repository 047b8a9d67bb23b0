// NAR serialisation and hashing (client/nar.h) and `attest nar-hash`, checked against real Nix:
// `nix-store --dump` for the bytes, `nix-hash` and `nix hash path` for the hash. Nix runs with its own
// configuration, state and cache directories, so the machine's Nix setup does not matter.
#include "client/nar.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::Run;
using ::attest::testing::RunResult;
using ::attest::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

// --- building trees -------------------------------------------------------------------------------

void MakeFile(const std::string& path, std::string_view content, mode_t mode = 0644) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    ASSERT_GT(n, 0) << path << ": " << std::strerror(errno);
    written += static_cast<size_t>(n);
  }
  ASSERT_EQ(::close(fd), 0);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;  // chmod: the umask must not decide the x bit
}

void MakeDir(const std::string& path) { ASSERT_EQ(::mkdir(path.c_str(), 0755), 0) << path << ": " << std::strerror(errno); }

void MakeSymlink(const std::string& target, const std::string& path) {
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0) << path << ": " << std::strerror(errno);
}

// Deterministic bytes that are not all alike, so a misplaced chunk changes the hash.
std::string PseudoRandom(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = static_cast<char>(x & 0xff);
  }
  return out;
}

// --- an independent NAR encoder, for trees Nix itself cannot read ----------------------------------

std::string Str(std::string_view s) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(s.size()) >> (8 * i)) & 0xff));
  out.append(s);
  out.append((8 - s.size() % 8) % 8, '\0');
  return out;
}

std::string Strs(std::initializer_list<std::string_view> items) {
  std::string out;
  for (std::string_view s : items) out += Str(s);
  return out;
}

// --- running Nix in isolation ---------------------------------------------------------------------

class NixRunner final {
 public:
  NixRunner() {
    for (const char* sub : {"etc", "home", "cache", "config", "data", "state", "log", "store"}) {
      ::mkdir(dir_.File(sub).c_str(), 0755);
    }
    attest::testing::WriteFileOrDie(dir_.File("etc/nix.conf"),
                                    "experimental-features = nix-command\nsubstituters =\nbuild-users-group =\n");
    env_ = {{"NIX_CONF_DIR", dir_.File("etc")},
            {"NIX_USER_CONF_FILES", dir_.File("etc/none.conf")},
            {"NIX_CONFIG", ""},
            {"NIX_REMOTE", ""},
            {"NIX_STATE_DIR", dir_.File("state")},
            {"NIX_LOG_DIR", dir_.File("log")},
            {"NIX_STORE_DIR", dir_.File("store")},
            {"HOME", dir_.File("home")},
            {"XDG_CACHE_HOME", dir_.File("cache")},
            {"XDG_CONFIG_HOME", dir_.File("config")},
            {"XDG_CONFIG_DIRS", dir_.File("config")},
            {"XDG_DATA_HOME", dir_.File("data")},
            {"XDG_STATE_HOME", dir_.File("state")}};
  }

  RunResult Nix(const std::vector<std::string>& argv) const {
    return Run(argv, "", std::chrono::seconds(300), env_);
  }

  // `nix-store --dump PATH`: the NAR bytes.
  std::string Dump(const std::string& path) const {
    RunResult r = Nix({"nix-store", "--dump", path});
    EXPECT_EQ(r.exit_code, 0) << "nix-store --dump " << path << " failed (is Debian's nix-bin installed?): "
                              << r.err;
    return r.out;
  }

  // `nix-hash --type sha256 --base32 PATH` as "sha256:<nix32>".
  std::string Hash(const std::string& path) const {
    RunResult r = Nix({"nix-hash", "--type", "sha256", "--base32", path});
    EXPECT_EQ(r.exit_code, 0) << "nix-hash " << path << " failed (is Debian's nix-bin installed?): " << r.err;
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return "sha256:" + out;
  }

 private:
  TempDir dir_;
  std::map<std::string, std::string> env_;
};

// --- helpers over the code under test -------------------------------------------------------------

absl::StatusOr<std::string> OurDump(const std::string& path, std::vector<size_t>* chunk_sizes = nullptr) {
  std::string nar;
  absl::Status s = DumpNar(path, [&](std::string_view chunk) {
    if (chunk_sizes != nullptr) chunk_sizes->push_back(chunk.size());
    nar.append(chunk);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return nar;
}

class NarTest : public ::testing::Test {
 protected:
  std::string P(std::string_view relative) const { return tree_.File(relative); }

  // HashNar and DumpNar agree with each other and with Nix: the same bytes as `nix-store --dump`, the
  // same hash as `nix-hash`, and the size is the dump's length.
  void ExpectSameAsNix(const std::string& path) {
    SCOPED_TRACE(path);
    const std::string nix_nar = nix_.Dump(path);
    ASSERT_FALSE(nix_nar.empty());
    absl::StatusOr<std::string> ours = OurDump(path);
    ASSERT_TRUE(ours.ok()) << ours.status();
    EXPECT_EQ(ours->size(), nix_nar.size());
    EXPECT_TRUE(*ours == nix_nar) << "the NAR bytes differ from nix-store --dump";
    absl::StatusOr<NarDigest> digest = HashNar(path);
    ASSERT_TRUE(digest.ok()) << digest.status();
    EXPECT_EQ(digest->hash.ToNix32(), nix_.Hash(path));
    EXPECT_EQ(digest->size, nix_nar.size());
    EXPECT_EQ(digest->hash, consensus::NarHash::FromDigest(consensus::Sha256(nix_nar)));
  }

  TempDir tree_;
  NixRunner nix_;
};

// --- format ---------------------------------------------------------------------------------------

// The store path hello-attest from a Nix 2.8 run: one file, NarHash and NarSize as Nix registered them.
TEST_F(NarTest, MatchesTheNarHashNixRegisteredForHelloAttest) {
  MakeFile(P("hello"), "hello-from-attestation-test\n");
  absl::StatusOr<NarDigest> digest = HashNar(P("hello"));
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(digest->hash.ToNix32(), "sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc");
  EXPECT_EQ(digest->size, 144u);
}

TEST_F(NarTest, FramesEachKindAsTheFormatSays) {
  MakeDir(P("d"));
  MakeFile(P("d/x"), "abc", 0755);
  MakeSymlink("x", P("d/l"));
  MakeDir(P("d/e"));
  const std::string expected =
      Strs({"nix-archive-1", "(", "type", "directory",                                             //
            "entry", "(", "name", "e", "node", "(", "type", "directory", ")", ")",                 //
            "entry", "(", "name", "l", "node", "(", "type", "symlink", "target", "x", ")", ")",    //
            "entry", "(", "name", "x", "node", "(", "type", "regular", "executable", "", "contents", "abc", ")",
            ")",  //
            ")"});
  absl::StatusOr<std::string> ours = OurDump(P("d"));
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_TRUE(*ours == expected);
}

// --- single nodes as the top path -----------------------------------------------------------------

TEST_F(NarTest, EmptyFile) {
  MakeFile(P("empty"), "");
  ExpectSameAsNix(P("empty"));
}

TEST_F(NarTest, SingleFileWhoseSizeNeedsPadding) {
  MakeFile(P("seven"), "1234567");
  ExpectSameAsNix(P("seven"));
}

TEST_F(NarTest, ExecutableFile) {
  MakeFile(P("run.sh"), "#!/bin/sh\necho hi\n", 0755);
  ExpectSameAsNix(P("run.sh"));
}

TEST_F(NarTest, EmptyDirectory) {
  MakeDir(P("empty"));
  ExpectSameAsNix(P("empty"));
}

TEST_F(NarTest, SymlinkAsTheTopPathIsNotFollowed) {
  MakeDir(P("dir"));
  MakeFile(P("dir/file"), "content");
  MakeSymlink("dir", P("link"));
  ExpectSameAsNix(P("link"));
  absl::StatusOr<std::string> ours = OurDump(P("link"));
  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_TRUE(*ours == Strs({"nix-archive-1", "(", "type", "symlink", "target", "dir", ")"}));
}

TEST_F(NarTest, TrailingSlashResolvesThroughASymlinkAsNixDoes) {
  MakeDir(P("dir"));
  MakeFile(P("dir/file"), "content");
  MakeSymlink("dir", P("link"));
  ExpectSameAsNix(P("link") + "/");
  absl::StatusOr<NarDigest> via_link = HashNar(P("link") + "/");
  absl::StatusOr<NarDigest> direct = HashNar(P("dir"));
  ASSERT_TRUE(via_link.ok() && direct.ok());
  EXPECT_EQ(via_link->hash, direct->hash);
}

TEST_F(NarTest, DanglingSymlinkAsTheTopPath) {
  MakeSymlink("does/not/exist", P("dangling"));
  ExpectSameAsNix(P("dangling"));
}

// --- trees ----------------------------------------------------------------------------------------

TEST_F(NarTest, ExecutableBitIsTheOwnersOnly) {
  MakeDir(P("t"));
  MakeFile(P("t/owner-x"), "a", 0700);
  MakeFile(P("t/owner-x-only"), "a", 0100);
  MakeFile(P("t/group-and-other-x"), "a", 0655);
  MakeFile(P("t/setuid"), "a", 04755);
  MakeFile(P("t/read-only"), "a", 0444);
  MakeFile(P("t/no-permissions"), "a", 0000);
  ExpectSameAsNix(P("t"));
  absl::StatusOr<std::string> ours = OurDump(P("t"));
  ASSERT_TRUE(ours.ok());
  // Exactly three of the six files are executable for the NAR.
  size_t count = 0;
  for (size_t at = ours->find(Str("executable")); at != std::string::npos;
       at = ours->find(Str("executable"), at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 3u);
}

TEST_F(NarTest, SymlinksDanglingAbsoluteRelativeAndToDirectoriesAreNotFollowed) {
  MakeDir(P("t"));
  MakeDir(P("t/sub"));
  MakeFile(P("t/sub/file"), "data");
  MakeSymlink("nowhere", P("t/dangling"));
  MakeSymlink("/etc/hostname", P("t/absolute"));
  MakeSymlink("/nonexistent/absolute/target", P("t/absolute-dangling"));
  MakeSymlink("../t/sub/file", P("t/relative"));
  MakeSymlink("sub", P("t/to-directory"));
  MakeSymlink(".", P("t/self"));
  MakeSymlink("loop-b", P("t/loop-a"));
  MakeSymlink("loop-a", P("t/loop-b"));
  MakeSymlink("odd target with spaces\tand\nnewline \xc3\xa9", P("t/odd-target"));
  MakeSymlink(std::string(1000, 'x') + "/" + std::string(2000, 'y'), P("t/long-target"));
  MakeSymlink("1234567", P("t/seven"));
  MakeSymlink("12345678", P("t/eight"));
  ExpectSameAsNix(P("t"));
}

TEST_F(NarTest, FileSizesAroundThePaddingBoundary) {
  MakeDir(P("t"));
  for (size_t size = 0; size <= 17; ++size) MakeFile(P(absl::StrCat("t/f", size)), PseudoRandom(size, size));
  ExpectSameAsNix(P("t"));
}

TEST_F(NarTest, NamesAreSortedBytewiseWhateverTheyContain) {
  MakeDir(P("t"));
  // Created in an order unlike the sorted one; names with spaces, control characters, UTF-8, bytes
  // that are not UTF-8 (they sort after ASCII as unsigned bytes), dots, dashes and the longest name.
  const std::vector<std::string> names = {
      "zeta",   "Zeta",        "_under", "a b",  "a\nnewline", "a\ttab", "\xc3\xa9t\xc3\xa9",  // été
      "\xe6\x97\xa5\xe6\x9c\xac",                                                          // 日本
      "\xff\xfe-not-utf8", "\x7f" "del", "~tilde", "-dash", ".hidden", "...", "a.b", "a-b", "a",
      "aa",     "A",           "1",      "10",   "9",          "\x01" "ctl", std::string(255, 'n'),
      "sp ace ", "emoji-\xf0\x9f\x98\x80", "back\\slash", "quote\"'", "star*?[]"};
  for (size_t i = 0; i < names.size(); ++i) {
    // Files, directories and symlinks mixed, so every kind appears under a sorted name.
    const std::string path = P("t/" + names[i]);
    if (i % 3 == 0) {
      MakeFile(path, names[i]);
    } else if (i % 3 == 1) {
      MakeDir(path);
      MakeFile(path + "/inner " + names[i].substr(0, 200), "x");
    } else {
      MakeSymlink(names[i], path);
    }
  }
  ExpectSameAsNix(P("t"));
}

TEST_F(NarTest, ManyEntriesInOneDirectory) {
  MakeDir(P("t"));
  for (int i = 2999; i >= 0; --i) MakeFile(P(absl::StrCat("t/entry-", i * 7919 % 3001)), absl::StrCat(i));
  ExpectSameAsNix(P("t"));
}

TEST_F(NarTest, LargeFilesAcrossChunkBoundaries) {
  MakeDir(P("t"));
  MakeFile(P("t/a-small"), "before");
  MakeFile(P("t/big"), PseudoRandom(5 * 1024 * 1024 + 3, 1), 0755);
  MakeFile(P("t/chunk"), PseudoRandom(kNarChunkSize, 2));
  MakeFile(P("t/chunk-minus-one"), PseudoRandom(kNarChunkSize - 1, 3));
  MakeFile(P("t/z-small"), "after");
  ExpectSameAsNix(P("t"));
  ExpectSameAsNix(P("t/big"));
}

TEST_F(NarTest, DeepNesting) {
  // Deeper than the directories that keep a descriptor, and with paths relative to an ancestor longer
  // than the limit that makes a directory keep one: every way of reaching a directory is exercised.
  std::string path = P("deep");
  MakeDir(path);
  for (int depth = 0; depth < 700; ++depth) {
    path += "/d";
    MakeDir(path);
    if (depth % 97 == 0) MakeFile(path + "/f", absl::StrCat("at depth ", depth));
    if (depth % 131 == 0) MakeSymlink("..", path + "/up");
  }
  MakeFile(path + "/bottom", "bottom", 0755);
  ExpectSameAsNix(P("deep"));
}

TEST_F(NarTest, NestingBeyondPathMaxStillSerialises) {
  // 40 levels of 200-byte names: a full path of about 8 KiB, which no path-based tool (Nix included)
  // can open, so the tree is built and removed through descriptors and checked against the test's own
  // encoder.
  constexpr int kDepth = 40;
  const std::string name(200, 'n');
  MakeDir(P("deep"));
  std::vector<int> fds = {::open(P("deep").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  ASSERT_GE(fds.back(), 0);
  for (int depth = 0; depth < kDepth; ++depth) {
    ASSERT_EQ(::mkdirat(fds.back(), name.c_str(), 0755), 0) << std::strerror(errno);
    fds.push_back(::openat(fds.back(), name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_GE(fds.back(), 0);
  }
  const int leaf = ::openat(fds.back(), "leaf", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(leaf, 0);
  ASSERT_EQ(::write(leaf, "leaf!", 5), 5);
  ::close(leaf);

  std::string expected = Strs({"(", "type", "directory", "entry", "(", "name", "leaf", "node", "(", "type",
                               "regular", "contents", "leaf!", ")", ")", ")"});
  for (int depth = 0; depth < kDepth; ++depth) {
    expected = Strs({"(", "type", "directory", "entry", "(", "name", name, "node"}) + expected + Strs({")", ")"});
  }
  absl::StatusOr<std::string> ours = OurDump(P("deep"));

  // TempDir's recursive removal goes by full paths; empty the chain bottom-up first.
  EXPECT_EQ(::unlinkat(fds.back(), "leaf", 0), 0);
  for (int depth = kDepth; depth > 0; --depth) {
    ::close(fds[depth]);
    EXPECT_EQ(::unlinkat(fds[depth - 1], name.c_str(), AT_REMOVEDIR), 0) << std::strerror(errno);
  }
  ::close(fds[0]);

  ASSERT_TRUE(ours.ok()) << ours.status();
  EXPECT_TRUE(*ours == Str("nix-archive-1") + expected);
}

TEST_F(NarTest, EverythingTogether) {
  MakeDir(P("pkg"));
  MakeDir(P("pkg/bin"));
  MakeDir(P("pkg/lib"));
  MakeDir(P("pkg/share"));
  MakeDir(P("pkg/share/empty"));
  MakeDir(P("pkg/share/doc \xe2\x80\x94 notes"));
  MakeFile(P("pkg/bin/tool"), PseudoRandom(123457, 9), 0555);
  MakeSymlink("tool", P("pkg/bin/tool-alias"));
  MakeFile(P("pkg/lib/libx.so.1.2"), PseudoRandom(2 * 1024 * 1024 + 5, 10), 0444);
  MakeSymlink("libx.so.1.2", P("pkg/lib/libx.so.1"));
  MakeSymlink("/nix/store/00000000000000000000000000000000-dep/lib/liby.so", P("pkg/lib/liby.so"));
  MakeFile(P("pkg/share/doc \xe2\x80\x94 notes/README"), "read me\n");
  MakeFile(P("pkg/share/empty-file"), "");
  ExpectSameAsNix(P("pkg"));
}

// --- chunks and the sink --------------------------------------------------------------------------

TEST_F(NarTest, ChunksAreLargeAndBoundedAndConcatenateToTheNar) {
  MakeDir(P("t"));
  MakeFile(P("t/big"), PseudoRandom(3 * kNarChunkSize + 100, 4));
  for (int i = 0; i < 50; ++i) MakeFile(P(absl::StrCat("t/small-", i)), "s");
  std::vector<size_t> sizes;
  absl::StatusOr<std::string> ours = OurDump(P("t"), &sizes);
  ASSERT_TRUE(ours.ok()) << ours.status();
  ASSERT_GE(sizes.size(), 4u);
  for (size_t i = 0; i < sizes.size(); ++i) {
    EXPECT_LE(sizes[i], kNarChunkSize);
    EXPECT_GT(sizes[i], 0u);
    if (i + 1 < sizes.size()) {
      EXPECT_EQ(sizes[i], kNarChunkSize) << "chunk " << i;  // only the last one is short
    }
  }
  absl::StatusOr<NarDigest> digest = HashNar(P("t"));
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest->size, ours->size());
  EXPECT_EQ(digest->hash, consensus::NarHash::FromDigest(consensus::Sha256(*ours)));
}

TEST_F(NarTest, SinkErrorStopsTheDumpAndIsReturned) {
  MakeDir(P("t"));
  MakeFile(P("t/big"), PseudoRandom(4 * kNarChunkSize, 5));
  int calls = 0;
  absl::Status s = DumpNar(P("t"), [&](std::string_view) {
    ++calls;
    return absl::ResourceExhaustedError("disk full");
  });
  EXPECT_EQ(s, absl::ResourceExhaustedError("disk full"));
  EXPECT_EQ(calls, 1);
}

// --- errors ---------------------------------------------------------------------------------------

TEST_F(NarTest, MissingPathIsNotFoundAndNamesIt) {
  absl::StatusOr<NarDigest> digest = HashNar(P("no-such-thing"));
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(digest.status().message()), HasSubstr(P("no-such-thing")));
  EXPECT_THAT(std::string(digest.status().message()), HasSubstr("check the path"));
  EXPECT_EQ(HashNar("").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(NarTest, PathThroughAFileIsNotFound) {
  MakeFile(P("file"), "x");
  absl::StatusOr<NarDigest> digest = HashNar(P("file") + "/inside");
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(NarTest, FifoInsideTheTreeIsRejectedByNameLikeNixDoes) {
  MakeDir(P("t"));
  MakeDir(P("t/sub"));
  MakeFile(P("t/a"), "a");
  ASSERT_EQ(::mkfifo(P("t/sub/pipe").c_str(), 0644), 0);
  absl::StatusOr<NarDigest> digest = HashNar(P("t"));
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(digest.status().message()), HasSubstr(P("t/sub/pipe") + " is a fifo"));
  EXPECT_NE(nix_.Nix({"nix-store", "--dump", P("t")}).exit_code, 0) << "Nix accepted a fifo";
  // The top path itself, without opening (and blocking on) it.
  digest = HashNar(P("t/sub/pipe"));
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(NarTest, SocketIsRejectedByName) {
  MakeDir(P("t"));
  const std::string socket_path = P("t/sock");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(socket_path.size(), sizeof(address.sun_path)) << "TMPDIR is too long for a socket path";
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
  ::close(fd);
  absl::StatusOr<NarDigest> digest = HashNar(P("t"));
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(digest.status().message()), HasSubstr(socket_path + " is a socket"));
  EXPECT_THAT(std::string(digest.status().message()), HasSubstr("regular files, directories and symlinks"));
}

// HashNar(path) in a child process that runs as user nobody when the tests run as root (root reads
// every file, so permissions could not fail otherwise).
absl::Status HashNarWithoutRoot(const std::string& path) {
  if (::geteuid() != 0) return HashNar(path).status();
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fds[0]);
    constexpr uid_t kNobody = 65534;
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(3);
    const absl::Status status = HashNar(path).status();
    const std::string report = absl::StrCat(static_cast<int>(status.code()), " ", status.message());
    (void)!::write(pipe_fds[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string report;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0;) report.append(buffer, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  int wait_status = 0;
  ::waitpid(pid, &wait_status, 0);
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0 || report.empty()) {
    return absl::InternalError(absl::StrCat("the child running as nobody failed: ", wait_status));
  }
  const size_t space = report.find(' ');
  return absl::Status(static_cast<absl::StatusCode>(std::stoi(report.substr(0, space))), report.substr(space + 1));
}

TEST_F(NarTest, UnreadableFileOrDirectoryIsPermissionDeniedAndNamed) {
  ASSERT_EQ(::chmod(tree_.path().c_str(), 0755), 0);
  MakeDir(P("t"));
  MakeFile(P("t/readable"), "x");
  EXPECT_TRUE(HashNarWithoutRoot(P("t")).ok());

  MakeFile(P("t/secret"), "", 0000);  // empty, and still opened, as Nix does
  absl::Status status = HashNarWithoutRoot(P("t"));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("cannot open " + P("t/secret")));
  ASSERT_EQ(::unlink(P("t/secret").c_str()), 0);

  MakeDir(P("t/locked"));
  ASSERT_EQ(::chmod(P("t/locked").c_str(), 0000), 0);
  status = HashNarWithoutRoot(P("t"));
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("cannot open the directory " + P("t/locked")));
  ASSERT_EQ(::chmod(P("t/locked").c_str(), 0755), 0);  // so that TempDir can remove it
}

// --- the command ----------------------------------------------------------------------------------

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

CliResult Cli(std::vector<std::string> args) {
  std::istringstream in;
  std::ostringstream out, err;
  CommandEnv env{.in = in,
                 .out = out,
                 .err = err,
                 .connect_node = [](const NodeOptions&) -> absl::StatusOr<std::unique_ptr<NodeApi>> {
                   return absl::InternalError("nar-hash must not talk to a node");
                 },
                 .random_bytes = [](std::span<uint8_t>) {},
                 .default_node = ""};
  CliResult r;
  r.code = RunCli(args, env);
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST_F(NarTest, CommandPrintsHashAndSizeLikeNix) {
  MakeDir(P("t"));
  MakeFile(P("t/file"), "hello\n");
  MakeSymlink("file", P("t/link"));
  const std::string nix_hash = nix_.Hash(P("t"));
  const size_t nix_size = nix_.Dump(P("t")).size();
  CliResult r = Cli({"nar-hash", P("t")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(nix_hash, " ", nix_size, "\n"));
  EXPECT_EQ(r.err, "");
  // `nix hash path` prints the same hash (SRI by default, nix32 with --base32).
  RunResult nix_path = nix_.Nix({"nix", "hash", "path", "--base32", P("t")});
  EXPECT_EQ(nix_path.exit_code, 0) << nix_path.err;
  EXPECT_EQ("sha256:" + nix_path.out, nix_hash + "\n");
}

TEST_F(NarTest, CommandWithSeveralPathsPutsEachPathLast) {
  MakeFile(P("a file"), "a");
  MakeDir(P("dir"));
  CliResult r = Cli({"nar-hash", P("a file"), P("dir")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(nix_.Hash(P("a file")), " ", nix_.Dump(P("a file")).size(), " ", P("a file"), "\n",
                                nix_.Hash(P("dir")), " ", nix_.Dump(P("dir")).size(), " ", P("dir"), "\n"));
}

TEST_F(NarTest, CommandJson) {
  MakeFile(P("exe"), "#!/bin/sh\n", 0755);
  MakeDir(P("dir"));
  CliResult r = Cli({"nar-hash", "--json", P("exe"), P("dir")});
  EXPECT_EQ(r.code, 0) << r.err;
  nlohmann::json parsed = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(parsed.is_array()) << r.out;
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0]["path"], P("exe"));
  EXPECT_EQ(parsed[0]["narHash"], nix_.Hash(P("exe")));
  EXPECT_EQ(parsed[0]["narSize"], nix_.Dump(P("exe")).size());
  EXPECT_EQ(parsed[1]["path"], P("dir"));
  EXPECT_EQ(parsed[1]["narHash"], nix_.Hash(P("dir")));
  EXPECT_EQ(parsed[1]["narSize"], nix_.Dump(P("dir")).size());
  // One path gives a list too.
  r = Cli({"nar-hash", P("dir"), "--json"});
  EXPECT_EQ(r.code, 0);
  parsed = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(parsed.is_array());
  EXPECT_EQ(parsed.size(), 1u);
  // A path that is not UTF-8 still gives valid JSON (the bad byte becomes U+FFFD).
  MakeFile(P("bad-\xff-name"), "x");
  r = Cli({"nar-hash", "--json", P("bad-\xff-name")});
  EXPECT_EQ(r.code, 0) << r.err;
  parsed = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(parsed.is_array()) << r.out;
  EXPECT_EQ(parsed[0]["path"], P("bad-\xef\xbf\xbd-name"));
  EXPECT_EQ(parsed[0]["narHash"], nix_.Hash(P("bad-\xff-name")));
}

TEST_F(NarTest, CommandFailsForAMissingPathAndStillPrintsTheOthers) {
  MakeFile(P("ok"), "ok");
  CliResult r = Cli({"nar-hash", P("missing")});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("attest nar-hash: cannot read " + P("missing")));

  r = Cli({"nar-hash", P("missing"), P("ok")});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr(" " + P("ok") + "\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("missing")));
  EXPECT_THAT(r.err, HasSubstr(P("missing")));
  EXPECT_THAT(r.err, HasSubstr("1 of 2 paths could not be hashed"));

  r = Cli({"nar-hash", "--json", P("missing"), P("ok")});
  EXPECT_EQ(r.code, 1);
  nlohmann::json parsed = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_TRUE(parsed.is_array()) << r.out;
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0]["path"], P("ok"));
}

TEST_F(NarTest, CommandUsageErrors) {
  CliResult r = Cli({"nar-hash"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("no path given"));
  r = Cli({"nar-hash", "-"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("./-"));
  r = Cli({"nar-hash", "--jsn", P("x")});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
}

TEST_F(NarTest, CommandHelpHasAnExample) {
  CliResult r = Cli({"nar-hash", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: attest nar-hash [--json] PATH..."));
  EXPECT_THAT(r.out, HasSubstr("Example:\n  attest nar-hash "));
  CliResult top = Cli({"--help"});
  EXPECT_THAT(top.out, HasSubstr("Print the NAR hash and size"));
}

}  // namespace
}  // namespace attest::client
