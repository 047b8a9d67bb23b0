// The project's seam to the operating system for whole files: a scoped file descriptor, reading a file
// whole (bounded), and replacing a file atomically. Plain POSIX calls, no streams, so the lean
// attest-hook program can use it within its few milliseconds; it links nothing but Abseil (CMake
// target attest_storage_files), not SQLite.
//
// Errors are absl::Status with the most specific code; messages name the file and, where the OS gave
// one, its reason. Callers add what the file is for and what to do ("the node's secret key: ...").
//
// Thread-safety: the functions are safe to call concurrently (on different paths; two concurrent
// WriteFileAtomically calls on one path leave one of the two contents). ScopedFd is not shared.
#ifndef ATTEST_STORAGE_FILES_H_
#define ATTEST_STORAGE_FILES_H_

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace attest::storage {

// A file descriptor closed on every path out of a scope. Movable: the moved-from object holds -1.
class ScopedFd final {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.Release()) {}
  ScopedFd& operator=(ScopedFd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.Release();
    }
    return *this;
  }

  int get() const { return fd_; }
  // Gives the descriptor up without closing it (the caller owns it now); leaves -1 behind.
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes now and returns close()'s result: a close error can be a lost write on some file
  // systems, so writers check it.
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_ = -1;
};

// Whether the last component of a path may be a symbolic link.
enum class Symlinks { kFollow, kRefuse };
// Which kinds of file are read: anything that can be opened and read to its end (a pipe such as
// `<(...)` or /dev/stdin too), or only a regular file.
enum class FileTypes { kAny, kRegularOnly };

struct ReadFileOptions {
  // Larger files are refused without being read into memory.
  size_t max_bytes = 0;
  Symlinks symlinks = Symlinks::kFollow;
  FileTypes types = FileTypes::kAny;
};

// The whole content of the file at `path`, read with open/read (EINTR retried).
//   NOT_FOUND            "P: no such file" (P or a directory on the way to it is missing)
//   PERMISSION_DENIED    "P: permission denied" (EACCES, EPERM: the process may not read it)
//   FAILED_PRECONDITION  "P: is a directory, not a file"; "P: is a symbolic link" (Symlinks::kRefuse);
//                        "P: not a regular file" (FileTypes::kRegularOnly): the file system holds
//                        something else where the file should be; fix that, then retry
//   RESOURCE_EXHAUSTED   "P: larger than N bytes": the bound is the caller's memory limit for this
//                        file, not a judgement of the argument (the same path may hold a smaller file
//                        later), and STYLE.md maps limits to RESOURCE_EXHAUSTED. Callers for whom a
//                        large file means a damaged one (a spool record) turn it into DATA_LOSS.
//   UNAVAILABLE          "P: cannot read: <reason>" for anything else (EIO, EMFILE, ...)
absl::StatusOr<std::string> ReadFileToString(const std::string& path, const ReadFileOptions& options);
inline absl::StatusOr<std::string> ReadFileToString(const std::string& path, size_t max_bytes) {
  return ReadFileToString(path, ReadFileOptions{.max_bytes = max_bytes});
}

// Replaces the file at `path` with `bytes`, all or nothing, durably: writes a temporary file in the
// same directory (".<name>.tmp-<pid>-<n>", created with O_EXCL and `mode`, subject to the umask),
// fsyncs it, renames it over `path` and fsyncs the directory. A reader sees the old content or the
// new, never a mixture; after OK the new content survives a crash. On failure before the rename the
// temporary file is removed and `path` is unchanged; a failure to sync the directory is reported
// after the rename (the new content is in place but may not survive a crash).
// Messages are "cannot <step> <file>: <reason>" (step: create, write, sync, close, replace, open
// directory, sync directory); codes:
//   RESOURCE_EXHAUSTED   the disk or quota is full (ENOSPC, EDQUOT)
//   FAILED_PRECONDITION  not allowed or in the way: EACCES, EPERM, EROFS, EISDIR (a directory at path)
//   NOT_FOUND            the directory does not exist (ENOENT, ENOTDIR)
//   UNAVAILABLE          anything else (EIO, ...)
absl::Status WriteFileAtomically(const std::string& path, std::string_view bytes, mode_t mode);

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_FILES_H_
