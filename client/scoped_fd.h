// ScopedFd: a file descriptor closed on every path out of a scope. Header-only (the lean
// attest-hook program links it too).
#ifndef ATTEST_CLIENT_SCOPED_FD_H_
#define ATTEST_CLIENT_SCOPED_FD_H_

#include <unistd.h>

namespace attest::client {

class ScopedFd final {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }
  // Closes now and returns close()'s result: a close error can be a lost write on some file
  // systems, so writers check it.
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

}  // namespace attest::client

#endif  // ATTEST_CLIENT_SCOPED_FD_H_
