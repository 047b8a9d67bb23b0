#include "client/nar.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "consensus/text.h"
#include "storage/files.h"

namespace attest::client {
namespace {

using consensus::Cat;
using storage::ScopedFd;

constexpr std::string_view kNarMagic = "nix-archive-1";

// Directories deeper than this many open descriptors are reached through a path relative to the
// nearest ancestor that keeps its descriptor, so a deep tree needs neither one descriptor per level
// nor a full path shorter than PATH_MAX.
constexpr size_t kMaxOpenDirectories = 64;
// Longest path, relative to an open ancestor, through which a directory is reached before it keeps a
// descriptor of its own; with a 255-byte name appended this stays far below PATH_MAX.
constexpr size_t kMaxRelativePath = 1024;

// Where we are in the tree decides the hint: a missing top path is a typo, a missing inner entry
// means the tree changed under us.
enum class Where { kTop, kInside };

absl::Status ErrnoError(int error, std::string_view action, std::string_view path, Where where) {
  const std::string message = Cat("cannot ", action, " ", path, ": ", std::strerror(error));
  switch (error) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(where == Where::kTop
                                     ? Cat(message, " (check the path)")
                                     : Cat(message, " (was the tree changed while it was read? retry)"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(Cat(message, " (run as a user that can read the whole tree)"));
    case ENAMETOOLONG:
    case ELOOP:
      return absl::InvalidArgumentError(message);
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(Cat(message, " (raise the open file limit, ulimit -n)"));
    case ENOMEM:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(Cat(message, " (an I/O error: check the file system, then retry)"));
  }
}

std::string_view FileTypeName(mode_t mode) {
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISFIFO(mode)) return "a fifo (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "of an unknown file type";
}

// Frames NAR strings and file contents into one large buffer and hands it to the sink when full, so
// the sink (a hash) always works on big chunks and file bytes are copied only once, by read().
class NarWriter final {
 public:
  explicit NarWriter(NarSink sink) : buffer_(new char[kNarChunkSize]), sink_(sink) {}

  // str(s): length, bytes, zero padding to a multiple of 8.
  absl::Status Str(std::string_view s) {
    if (absl::Status st = Length(s.size()); !st.ok()) return st;
    if (absl::Status st = Raw(s.data(), s.size()); !st.ok()) return st;
    return Padding(s.size());
  }

  // str(<the next `size` bytes of fd>), read straight into the buffer.
  absl::Status Contents(int fd, uint64_t size, std::string_view path) {
    if (absl::Status st = Length(size); !st.ok()) return st;
    uint64_t left = size;
    while (left > 0) {
      if (used_ == kNarChunkSize) {
        if (absl::Status st = Flush(); !st.ok()) return st;
      }
      const size_t want = static_cast<size_t>(std::min<uint64_t>(left, kNarChunkSize - used_));
      const ssize_t got = ::read(fd, buffer_.get() + used_, want);
      if (got < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "read", path, Where::kInside);
      }
      if (got == 0) {
        return absl::UnavailableError(Cat(path, " shrank while it was read (", size - left, " of ", size,
                                          " bytes); retry when nothing is writing to it"));
      }
      used_ += static_cast<size_t>(got);
      left -= static_cast<uint64_t>(got);
    }
    return Padding(size);
  }

  absl::Status Flush() {
    if (used_ == 0) return absl::OkStatus();
    const size_t n = used_;
    used_ = 0;
    return sink_(std::string_view(buffer_.get(), n));
  }

 private:
  absl::Status Length(uint64_t n) {
    char bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return Raw(bytes, sizeof bytes);
  }

  absl::Status Padding(uint64_t n) {
    static constexpr char kZeros[8] = {};
    const size_t pad = static_cast<size_t>((8 - n % 8) % 8);
    return Raw(kZeros, pad);
  }

  absl::Status Raw(const char* data, size_t n) {
    while (n > 0) {
      if (used_ == kNarChunkSize) {
        if (absl::Status st = Flush(); !st.ok()) return st;
      }
      const size_t take = std::min(n, kNarChunkSize - used_);
      std::memcpy(buffer_.get() + used_, data, take);
      used_ += take;
      data += take;
      n -= take;
    }
    return absl::OkStatus();
  }

  std::unique_ptr<char[]> buffer_;
  size_t used_ = 0;
  NarSink sink_;
};

// One directory being serialised. Its children are reached as `at_fd` + the part of the walker's
// current path that starts at `relative_from`: the directory's own descriptor and just the child's
// name when it keeps one, otherwise an ancestor's descriptor and a longer relative path.
struct OpenDirectory final {
  DIR* dir = nullptr;  // owned when this directory keeps its descriptor, else null
  int at_fd = -1;
  size_t relative_from = 0;
  size_t child_offset = 0;  // where a child's name starts in the current path
  std::vector<std::string> names;
  size_t next = 0;
};

class NarWalker final {
 public:
  NarWalker(std::string path, NarWriter& writer) : path_(std::move(path)), writer_(writer) {}

  ~NarWalker() {
    for (OpenDirectory& d : stack_) {
      if (d.dir != nullptr) ::closedir(d.dir);
    }
  }

  NarWalker(const NarWalker&) = delete;
  NarWalker& operator=(const NarWalker&) = delete;

  absl::Status Run() {
    struct stat st {};
    if (::lstat(path_.c_str(), &st) != 0) return ErrnoError(errno, "read", path_, Where::kTop);
    if (absl::Status s = writer_.Str(kNarMagic); !s.ok()) return s;
    if (absl::Status s = Node(AT_FDCWD, path_.c_str(), st, Where::kTop); !s.ok()) return s;
    while (!stack_.empty()) {
      OpenDirectory& d = stack_.back();
      if (d.next == d.names.size()) {
        if (d.dir != nullptr) {
          ::closedir(d.dir);
          --open_directories_;
        }
        stack_.pop_back();
        // Closes the directory node, then (below the top) the entry that holds it.
        if (absl::Status s = writer_.Str(")"); !s.ok()) return s;
        if (!stack_.empty()) {
          if (absl::Status s = writer_.Str(")"); !s.ok()) return s;
        }
        continue;
      }
      const std::string& name = d.names[d.next++];
      path_.resize(d.child_offset);
      path_ += name;
      const int at_fd = d.at_fd;
      const char* relative = path_.c_str() + d.relative_from;
      if (::fstatat(at_fd, relative, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return ErrnoError(errno, "read", path_, Where::kInside);
      }
      for (std::string_view tag : {std::string_view("entry"), std::string_view("("), std::string_view("name")}) {
        if (absl::Status s = writer_.Str(tag); !s.ok()) return s;
      }
      if (absl::Status s = writer_.Str(name); !s.ok()) return s;
      if (absl::Status s = writer_.Str("node"); !s.ok()) return s;
      // `d` and `name` may dangle from here on: Node pushes onto stack_ for a directory.
      const bool is_directory = S_ISDIR(st.st_mode);
      if (absl::Status s = Node(at_fd, relative, st, Where::kInside); !s.ok()) return s;
      // A directory's entry is closed when the directory is done (above).
      if (!is_directory) {
        if (absl::Status s = writer_.Str(")"); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

 private:
  // Writes a node. Files and symlinks are written whole; a directory writes its header and is pushed
  // onto stack_, and its entries and ")" follow from Run's loop.
  absl::Status Node(int at_fd, const char* relative, const struct stat& st, Where where) {
    if (absl::Status s = writer_.Str("("); !s.ok()) return s;
    if (absl::Status s = writer_.Str("type"); !s.ok()) return s;
    if (S_ISREG(st.st_mode)) return Regular(at_fd, relative, st, where);
    if (S_ISLNK(st.st_mode)) return Symlink(at_fd, relative, st, where);
    if (S_ISDIR(st.st_mode)) return Directory(at_fd, relative, where);
    return absl::InvalidArgumentError(
        Cat(path_, " is ", FileTypeName(st.st_mode),
            ": a NAR holds only regular files, directories and symlinks (remove it, or hash another path)"));
  }

  absl::Status Regular(int at_fd, const char* relative, const struct stat& st, Where where) {
    if (absl::Status s = writer_.Str("regular"); !s.ok()) return s;
    if ((st.st_mode & S_IXUSR) != 0) {
      if (absl::Status s = writer_.Str("executable"); !s.ok()) return s;
      if (absl::Status s = writer_.Str(""); !s.ok()) return s;
    }
    if (absl::Status s = writer_.Str("contents"); !s.ok()) return s;
    // Opened even when empty, as Nix does, so an unreadable file fails the same way. O_NONBLOCK (no
    // effect on a regular file) keeps a file swapped for a fifo since the stat from blocking the walk.
    ScopedFd fd(::openat(at_fd, relative, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) return ErrnoError(errno, "open", path_, where);
    if (st.st_size > (off_t{1} << 20)) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    if (absl::Status s = writer_.Contents(fd.get(), static_cast<uint64_t>(st.st_size), path_); !s.ok()) return s;
    return writer_.Str(")");
  }

  absl::Status Symlink(int at_fd, const char* relative, const struct stat& st, Where where) {
    if (absl::Status s = writer_.Str("symlink"); !s.ok()) return s;
    if (absl::Status s = writer_.Str("target"); !s.ok()) return s;
    // st_size is the target's length on Linux file systems, but some report 0: grow until it fits.
    std::string target(std::max<size_t>(static_cast<size_t>(st.st_size) + 1, 256), '\0');
    for (;;) {
      const ssize_t n = ::readlinkat(at_fd, relative, target.data(), target.size());
      if (n < 0) return ErrnoError(errno, "read the symlink", path_, where);
      if (static_cast<size_t>(n) < target.size()) {
        target.resize(static_cast<size_t>(n));
        break;
      }
      target.resize(target.size() * 2);
    }
    if (absl::Status s = writer_.Str(target); !s.ok()) return s;
    return writer_.Str(")");
  }

  absl::Status Directory(int at_fd, const char* relative, Where where) {
    if (absl::Status s = writer_.Str("directory"); !s.ok()) return s;
    // Taken now: `relative` points into path_, which changes below.
    const size_t relative_length = std::strlen(relative);
    // The top path may end in "/" and then resolves through a symlink, as lstat did; below the top,
    // O_NOFOLLOW makes an entry swapped for a symlink fail instead of being followed.
    const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC | (where == Where::kTop ? 0 : O_NOFOLLOW);
    const int fd = ::openat(at_fd, relative, flags);
    if (fd < 0) return ErrnoError(errno, "open the directory", path_, where);
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
      const int error = errno;
      ::close(fd);
      return ErrnoError(error, "open the directory", path_, where);
    }
    OpenDirectory d;
    for (;;) {
      errno = 0;
      const dirent* entry = ::readdir(dir);
      if (entry == nullptr) {
        if (errno != 0) {
          const int error = errno;
          ::closedir(dir);
          return ErrnoError(error, "list the directory", path_, where);
        }
        break;
      }
      const std::string_view name(entry->d_name);
      if (name == "." || name == "..") continue;
      d.names.emplace_back(name);
    }
    // std::string compares as unsigned bytes (char_traits<char>), which is the order Nix writes.
    std::sort(d.names.begin(), d.names.end());

    const OpenDirectory* parent = stack_.empty() ? nullptr : &stack_.back();
    if (!path_.empty() && path_.back() != '/') path_ += '/';
    d.child_offset = path_.size();
    if (parent == nullptr || open_directories_ < kMaxOpenDirectories || relative_length > kMaxRelativePath) {
      d.dir = dir;
      d.at_fd = ::dirfd(dir);
      d.relative_from = d.child_offset;
      ++open_directories_;
    } else {
      ::closedir(dir);
      d.at_fd = parent->at_fd;
      d.relative_from = parent->relative_from;
    }
    stack_.push_back(std::move(d));
    return absl::OkStatus();
  }

  std::string path_;  // the current entry's path, for messages and for relative lookups
  NarWriter& writer_;
  std::vector<OpenDirectory> stack_;
  size_t open_directories_ = 0;
};

struct EvpMdCtxFree final {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

absl::Status DumpNar(const std::string& path, NarSink sink) {
  NarWriter writer(sink);
  NarWalker walker(path, writer);
  if (absl::Status s = walker.Run(); !s.ok()) return s;
  return writer.Flush();
}

absl::StatusOr<NarDigest> HashNar(const std::string& path) {
  std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL could not set up SHA-256 (is libcrypto working?)");
  }
  uint64_t size = 0;
  absl::Status dumped = DumpNar(path, [&](std::string_view chunk) -> absl::Status {
    if (EVP_DigestUpdate(ctx.get(), chunk.data(), chunk.size()) != 1) {
      return absl::InternalError("OpenSSL SHA-256 update failed");
    }
    size += chunk.size();
    return absl::OkStatus();
  });
  if (!dumped.ok()) return dumped;
  consensus::NarHash::Digest digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &length) != 1 || length != digest.size()) {
    return absl::InternalError("OpenSSL SHA-256 final failed");
  }
  return NarDigest{consensus::NarHash::FromDigest(digest), size};
}

}  // namespace attest::client
