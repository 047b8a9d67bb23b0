#include "storage/files.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace attest::storage {
namespace {

std::string ErrnoText(int error) { return std::strerror(error); }

absl::Status ReadError(const std::string& path, int error) {
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(absl::StrCat(path, ": permission denied"));
    case EISDIR:
      return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory, not a file"));
    default:
      return absl::UnavailableError(absl::StrCat(path, ": cannot read: ", ErrnoText(error)));
  }
}

absl::Status TooLarge(const std::string& path, size_t max_bytes) {
  return absl::ResourceExhaustedError(absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
}

absl::Status WriteError(std::string_view step, const std::string& file, int error) {
  const std::string message = absl::StrCat("cannot ", std::string(step), " ", file, ": ", ErrnoText(error));
  switch (error) {
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case EACCES:
    case EPERM:
    case EROFS:
    case EISDIR:
      return absl::FailedPreconditionError(message);
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    default:
      return absl::UnavailableError(message);
  }
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Unique among live processes (pid) and within this one (counter); the clock bits keep a temp file
// left by a crashed process whose pid was reused from colliding.
std::string TempPathFor(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  const size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  return absl::StrCat(DirectoryOf(path), "/.", base, ".tmp-", ::getpid(), "-", counter.fetch_add(1), "-",
                      static_cast<int64_t>(now & 0xffffff));
}

absl::Status WriteAll(int fd, std::string_view bytes, const std::string& file) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return WriteError("write", file, errno);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path, const ReadFileOptions& options) {
  int flags = O_RDONLY | O_CLOEXEC;
  if (options.symlinks == Symlinks::kRefuse) flags |= O_NOFOLLOW;
  ScopedFd fd(::open(path.c_str(), flags));
  if (fd.get() < 0) {
    const int error = errno;
    if (error == ELOOP && options.symlinks == Symlinks::kRefuse) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": is a symbolic link"));
    }
    return ReadError(path, error);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ReadError(path, errno);
  if (S_ISDIR(st.st_mode)) return ReadError(path, EISDIR);
  if (options.types == FileTypes::kRegularOnly && !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  }
  std::string content;
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    if (static_cast<uint64_t>(st.st_size) > options.max_bytes) return TooLarge(path, options.max_bytes);
    content.reserve(static_cast<size_t>(st.st_size));
  }
  // Read to the end whatever the size said: the file may grow meanwhile, and a pipe has no size.
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ReadError(path, errno);
    }
    if (n == 0) break;
    if (static_cast<size_t>(n) > options.max_bytes - content.size()) return TooLarge(path, options.max_bytes);
    content.append(buffer, static_cast<size_t>(n));
  }
  return content;
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view bytes, mode_t mode) {
  const std::string temp = TempPathFor(path);
  ScopedFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (fd.get() < 0) return WriteError("create", temp, errno);
  absl::Status status = WriteAll(fd.get(), bytes, temp);
  if (status.ok() && ::fsync(fd.get()) != 0) status = WriteError("sync", temp, errno);
  if (fd.Close() != 0 && status.ok()) status = WriteError("close", temp, errno);
  if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0) status = WriteError("replace", path, errno);
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  const std::string directory = DirectoryOf(path);
  ScopedFd dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return WriteError("open directory", directory, errno);
  if (::fsync(dir.get()) != 0) return WriteError("sync directory", directory, errno);
  return absl::OkStatus();
}

}  // namespace attest::storage
