#include "storage/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;
using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(status.message()); }

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  ::closedir(d);
  return names;
}

TEST(ScopedFdTest, MovesLeaveMinusOneAndReleaseKeepsTheDescriptorOpen) {
  TempDir dir;
  WriteFileOrDie(dir.File("f"), "abc");
  ScopedFd first(::open(dir.File("f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(first.get(), 0);
  const int fd = first.get();
  ScopedFd second(std::move(first));
  EXPECT_EQ(first.get(), -1);  // NOLINT(bugprone-use-after-move): the moved-from state is the contract
  EXPECT_EQ(second.get(), fd);
  ScopedFd third;
  EXPECT_EQ(third.get(), -1);
  third = std::move(second);
  EXPECT_EQ(second.get(), -1);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(third.get(), fd);
  EXPECT_EQ(third.Release(), fd);
  EXPECT_EQ(third.get(), -1);
  char c = 0;
  EXPECT_EQ(::read(fd, &c, 1), 1);  // still open after Release
  EXPECT_EQ(c, 'a');
  EXPECT_EQ(::close(fd), 0);
}

TEST(ReadFileToStringTest, ReadsTheWholeFile) {
  TempDir dir;
  const std::string content(200000, 'x');  // more than one read() buffer
  WriteFileOrDie(dir.File("big"), content);
  absl::StatusOr<std::string> read = ReadFileToString(dir.File("big"), content.size());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, content);

  WriteFileOrDie(dir.File("empty"), "");
  read = ReadFileToString(dir.File("empty"), 0);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");
}

TEST(ReadFileToStringTest, AMissingFileIsNotFoundAndNamed) {
  TempDir dir;
  absl::StatusOr<std::string> read = ReadFileToString(dir.File("absent"), 100);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound) << read.status();
  EXPECT_EQ(Message(read.status()), dir.File("absent") + ": no such file");

  read = ReadFileToString(dir.File("no-dir/absent"), 100);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound) << read.status();
}

TEST(ReadFileToStringTest, ADirectoryIsAFailedPrecondition) {
  TempDir dir;
  absl::StatusOr<std::string> read = ReadFileToString(dir.path(), 100);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition) << read.status();
  EXPECT_EQ(Message(read.status()), dir.path() + ": is a directory, not a file");
}

TEST(ReadFileToStringTest, AFileLargerThanTheLimitIsResourceExhausted) {
  TempDir dir;
  WriteFileOrDie(dir.File("eleven"), "0123456789a");
  absl::StatusOr<std::string> read = ReadFileToString(dir.File("eleven"), 10);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kResourceExhausted) << read.status();
  EXPECT_EQ(Message(read.status()), dir.File("eleven") + ": larger than 10 bytes");
  read = ReadFileToString(dir.File("eleven"), 11);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "0123456789a");
}

// A pipe has no size: the limit is checked while reading.
TEST(ReadFileToStringTest, APipeIsReadToItsEndWithinTheLimit) {
  TempDir dir;
  const std::string fifo = dir.File("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "0123456789a", 11), 11);
  ::close(fds[1]);
  const std::string via_proc = "/dev/fd/" + std::to_string(fds[0]);
  absl::StatusOr<std::string> small = ReadFileToString(via_proc, 10);
  EXPECT_EQ(small.status().code(), absl::StatusCode::kResourceExhausted) << small.status();
  ::close(fds[0]);

  // A regular-only read refuses the pipe without opening it for long: opening a FIFO for reading
  // blocks until a writer comes, so the test keeps one open.
  const int writer = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK);
  ASSERT_GE(writer, 0);
  absl::StatusOr<std::string> refused =
      ReadFileToString(fifo, ReadFileOptions{.max_bytes = 100, .types = FileTypes::kRegularOnly});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_THAT(Message(refused.status()), HasSubstr("not a regular file"));
  ::close(writer);
}

TEST(ReadFileToStringTest, ASymbolicLinkIsFollowedOrRefusedAsAsked) {
  TempDir dir;
  WriteFileOrDie(dir.File("target"), "content");
  ASSERT_EQ(::symlink(dir.File("target").c_str(), dir.File("link").c_str()), 0);
  absl::StatusOr<std::string> followed = ReadFileToString(dir.File("link"), 100);
  ASSERT_TRUE(followed.ok()) << followed.status();
  EXPECT_EQ(*followed, "content");
  absl::StatusOr<std::string> refused =
      ReadFileToString(dir.File("link"), ReadFileOptions{.max_bytes = 100, .symlinks = Symlinks::kRefuse});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_EQ(Message(refused.status()), dir.File("link") + ": is a symbolic link");
}

TEST(ReadFileToStringTest, AnUnreadableFileIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root, which reads files whatever their mode";
  TempDir dir;
  WriteFileOrDie(dir.File("secret"), "content");
  ASSERT_EQ(::chmod(dir.File("secret").c_str(), 0), 0);
  absl::StatusOr<std::string> read = ReadFileToString(dir.File("secret"), 100);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kPermissionDenied) << read.status();
  EXPECT_EQ(Message(read.status()), dir.File("secret") + ": permission denied");
}

TEST(WriteFileAtomicallyTest, ReplacesTheContentAndLeavesNoTempFile) {
  TempDir dir;
  const std::string path = dir.File("state");
  ASSERT_TRUE(WriteFileAtomically(path, "first", 0600).ok());
  EXPECT_EQ(ReadFileOrDie(path), "first");
  ASSERT_EQ(::link(path.c_str(), dir.File("reader-view").c_str()), 0);
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);

  absl::Status written = WriteFileAtomically(path, "second, longer", 0640);
  ASSERT_TRUE(written.ok()) << written;

  EXPECT_EQ(ReadFileOrDie(path), "second, longer");
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino) << "a new file is renamed over the old one, never rewritten in place";
  EXPECT_EQ(ReadFileOrDie(dir.File("reader-view")), "first") << "a reader of the old file keeps it whole";
  const mode_t umask_bits = ::umask(0);
  ::umask(umask_bits);
  EXPECT_EQ(after.st_mode & 0777, 0640 & ~umask_bits) << "the new file has the mode asked for";
  EXPECT_EQ(FilesIn(dir.path()), (std::set<std::string>{"state", "reader-view"}));
}

TEST(WriteFileAtomicallyTest, AFailedWriteLeavesTheFileAndNoTempFile) {
  TempDir dir;
  // A directory where the file should go: the rename fails after the temp file was written.
  ASSERT_EQ(::mkdir(dir.File("state").c_str(), 0700), 0);
  absl::Status written = WriteFileAtomically(dir.File("state"), "content", 0600);
  EXPECT_EQ(written.code(), absl::StatusCode::kFailedPrecondition) << written;
  EXPECT_THAT(Message(written), HasSubstr("cannot replace " + dir.File("state")));
  EXPECT_EQ(FilesIn(dir.path()), std::set<std::string>{"state"});

  written = WriteFileAtomically(dir.File("no-dir/state"), "content", 0600);
  EXPECT_EQ(written.code(), absl::StatusCode::kNotFound) << written;
  EXPECT_THAT(Message(written), HasSubstr("cannot create " + dir.File("no-dir/")));
}

}  // namespace
}  // namespace attest::storage
