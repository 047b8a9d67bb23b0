#include "storage/nar_unpack.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "consensus/text.h"
#include "absl/strings/str_join.h"

namespace attest::storage {
namespace {

using consensus::Cat;

// The longest token of the grammar is "nix-archive-1"; a longer string where a token belongs is not a NAR,
// and is refused before its bytes are read.
constexpr uint64_t kMaxTokenBytes = 16;
constexpr size_t kReadChunkBytes = 256 * 1024;
// Names from the NAR in messages: escaped, and cut so that a message stays a line.
constexpr size_t kMaxQuotedBytes = 300;

std::string Quote(std::string_view s) {
  const bool cut = s.size() > kMaxQuotedBytes;
  return Cat("\"", absl::CEscape(consensus::AbslView(s.substr(0, kMaxQuotedBytes))), cut ? "...\"" : "\"");
}

// errno of a file system call on the tree being written or removed, as a status.
absl::Status FileSystemError(std::string_view what, int error) {
  const std::string message = Cat(what, ": ", std::strerror(error));
  switch (error) {
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return absl::ResourceExhaustedError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOENT:  // something removed a directory of the tree meanwhile
    case ENOTDIR:
    case ELOOP:
      return absl::FailedPreconditionError(message);
    default:
      return absl::UnavailableError(message);
  }
}

uint64_t LittleEndian64(const uint8_t* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

// Splits a path into the directory that holds its last component, and that component.
absl::StatusOr<std::pair<std::string, std::string>> SplitPath(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.rfind('/');
  std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
  std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
  if (base.empty() || base == "." || base == ".." || base == "/") {
    return absl::InvalidArgumentError(
        Cat("path ", Quote(path), " does not end in a name (give a path such as /tmp/unpacked/out)"));
  }
  return std::make_pair(std::move(parent), std::move(base));
}

// Removes `name` in the directory `dir_fd` and everything below it, never following a symbolic link:
// directories are opened with O_NOFOLLOW relative to their parent's descriptor. `shown` names the entry
// in messages.
absl::Status RemoveEntryAt(int dir_fd, const std::string& name, const std::string& shown) {
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return FileSystemError(Cat("cannot inspect ", shown), errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return FileSystemError(Cat("cannot remove ", shown), errno);
    }
    return absl::OkStatus();
  }
  const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return FileSystemError(Cat("cannot open ", shown), errno);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int error = errno;
    ::close(fd);
    return FileSystemError(Cat("cannot read ", shown), error);
  }
  // A read-only directory (as copied from a Nix store) cannot lose its entries until it is writable.
  if ((st.st_mode & 0700) != 0700) ::fchmod(fd, (st.st_mode & 07777) | 0700);
  // Names first, removal after: removing while reading a directory may make readdir skip entries.
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
    errno = 0;
  }
  absl::Status status;
  if (errno != 0) status = FileSystemError(Cat("cannot read ", shown), errno);
  for (const std::string& n : names) {
    if (!status.ok()) break;
    status = RemoveEntryAt(::dirfd(dir), n, Cat(shown, "/", n));
  }
  ::closedir(dir);
  if (!status.ok()) return status;
  if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return FileSystemError(Cat("cannot remove ", shown), errno);
  }
  return absl::OkStatus();
}

}  // namespace

// Where the reader is in the grammar (client/nar.h): what the next string must be.
enum class NarUnpacker::Grammar : uint8_t {
  kMagic,            // "nix-archive-1"
  kNodeOpen,         // "("
  kType,             // "type"
  kTypeValue,        // "regular" | "symlink" | "directory"
  kRegularTag,       // "executable" | "contents"
  kExecutableValue,  // ""
  kContentsTag,      // "contents"
  kContents,         // the file's bytes
  kTargetTag,        // "target"
  kTarget,           // the link's target
  kNodeClose,        // ")"
  kDirectoryItem,    // "entry" | ")"
  kEntryOpen,        // "("
  kNameTag,          // "name"
  kName,             // the entry's name
  kNodeTag,          // "node"
  kEntryClose,       // ")"
  kEnd,              // nothing more
};

namespace {

std::string_view Expected(uint8_t grammar) {
  static constexpr std::string_view kNames[] = {
      "\"nix-archive-1\"", "\"(\"", "\"type\"", "\"regular\", \"symlink\" or \"directory\"",
      "\"executable\" or \"contents\"", "\"\" (after \"executable\")", "\"contents\"", "the file's contents",
      "\"target\"", "the link's target", "\")\"", "\"entry\" or \")\"", "\"(\"", "\"name\"", "an entry's name",
      "\"node\"", "\")\"", "the end of the NAR"};
  return grammar < std::size(kNames) ? kNames[grammar] : "?";
}

}  // namespace

struct NarUnpacker::Directory {
  dev_t dev;
  ino_t ino;
  std::string last_name;  // the previous entry's name: the next one must sort after it
  bool has_entries = false;
};

absl::StatusOr<std::unique_ptr<NarUnpacker>> NarUnpacker::Create(const std::string& target, UnpackLimits limits) {
  if (target.empty()) return absl::InvalidArgumentError("no target path to unpack the NAR to");
  auto split = SplitPath(target);
  if (!split.ok()) return split.status();
  auto& [parent_path, base] = *split;
  const int fd = ::open(parent_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR) {
      return absl::NotFoundError(
          Cat("cannot unpack a NAR to ", target, ": directory ", parent_path, " does not exist"));
    }
    return FileSystemError(Cat("cannot unpack a NAR to ", target, ": cannot open ", parent_path), error);
  }
  auto parent = std::make_unique<ScopedFd>(fd);
  struct stat st;
  if (::fstatat(parent->get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    return absl::AlreadyExistsError(
        Cat("cannot unpack a NAR to ", target, ": it exists (give a path that does not exist yet)"));
  }
  if (errno != ENOENT) return FileSystemError(Cat("cannot unpack a NAR to ", target), errno);
  return std::unique_ptr<NarUnpacker>(new NarUnpacker(target, std::move(base), std::move(parent), limits));
}

NarUnpacker::NarUnpacker(std::string target, std::string base_name, std::unique_ptr<ScopedFd> parent,
                         UnpackLimits limits)
    : target_(std::move(target)),
      base_name_(std::move(base_name)),
      parent_(std::move(parent)),
      limits_(limits),
      phase_(Phase::kLength),
      grammar_(Grammar::kMagic) {}

NarUnpacker::~NarUnpacker() {
  if (finished_ && failed_.ok()) return;
  file_.reset();
  current_.reset();
  if (root_created_) (void)RemoveEntryAt(parent_->get(), base_name_, target_);
}

std::string NarUnpacker::EntryPath() const {
  if (path_.empty()) return "(the root)";
  std::string joined;
  for (const std::string& name : path_) joined = Cat(joined, joined.empty() ? "" : "/", name);
  return Quote(joined);
}

std::string NarUnpacker::At() const {
  return Cat("at NAR byte ", offset_, ", entry ", EntryPath());
}

absl::Status NarUnpacker::NotANar(std::string_view expected, std::string_view got) const {
  return absl::DataLossError(Cat("not a NAR: expected ", expected, " ", At(), ", found ", got));
}

absl::Status NarUnpacker::Fail(absl::Status status) {
  failed_ = absl::Status(status.code(), Cat("unpacking a NAR to ", target_, ": ", status.message()));
  file_.reset();
  current_.reset();
  if (root_created_) {
    absl::Status removed = RemoveEntryAt(parent_->get(), base_name_, target_);
    if (removed.ok()) {
      root_created_ = false;
    } else {
      failed_ = absl::Status(failed_.code(),
                             Cat(failed_.message(), " (and removing what was unpacked failed: ",
                                          removed.message(), ")"));
    }
  }
  return failed_;
}

absl::Status NarUnpacker::Feed(std::span<const uint8_t> bytes) {
  if (finished_) return absl::FailedPreconditionError("NarUnpacker::Feed called after Finish");
  if (!failed_.ok()) return failed_;
  absl::Status status = FeedUnlatched(bytes);
  if (!status.ok()) return Fail(std::move(status));
  return absl::OkStatus();
}

absl::Status NarUnpacker::Finish() {
  if (finished_) return absl::FailedPreconditionError("NarUnpacker::Finish called twice");
  finished_ = true;
  if (!failed_.ok()) return failed_;
  if (grammar_ != Grammar::kEnd) {
    std::string_view where = grammar_ == Grammar::kContents && phase_ == Phase::kBody ? "inside the file's contents"
                             : phase_ == Phase::kLength                              ? "before"
                                                                                     : "inside";
    absl::Status truncated = absl::DataLossError(Cat(
        "the NAR ends early (truncated) ", At(), ", ", where,
        phase_ == Phase::kBody && grammar_ == Grammar::kContents
            ? Cat(" (", body_have_, " of ", length_, " bytes)")
            : Cat(" ", Expected(static_cast<uint8_t>(grammar_)))));
    return Fail(std::move(truncated));
  }
  return absl::OkStatus();
}

absl::Status NarUnpacker::FeedUnlatched(std::span<const uint8_t> bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    if (grammar_ == Grammar::kEnd) {
      return absl::DataLossError(Cat("the NAR ended at byte ", offset_, " but ", bytes.size() - i,
                                              " more bytes follow (not a NAR, or more than one)"));
    }
    const size_t left = bytes.size() - i;
    switch (phase_) {
      case Phase::kLength: {
        const size_t n = std::min(left, 8 - length_have_);
        std::memcpy(length_bytes_ + length_have_, bytes.data() + i, n);
        length_have_ += n;
        i += n;
        offset_ += n;
        if (length_have_ < 8) break;
        length_have_ = 0;
        length_ = LittleEndian64(length_bytes_);
        body_have_ = 0;
        padding_left_ = (8 - length_ % 8) % 8;
        string_.clear();
        streaming_ = false;
        if (absl::Status s = OnLength(length_); !s.ok()) return s;
        phase_ = Phase::kBody;
        break;
      }
      case Phase::kBody: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left, length_ - body_have_));
        if (streaming_) {
          if (absl::Status s = WriteContents(bytes.subspan(i, n)); !s.ok()) return s;
        } else {
          string_.append(reinterpret_cast<const char*>(bytes.data() + i), n);
        }
        body_have_ += n;
        i += n;
        offset_ += n;
        break;
      }
      case Phase::kPadding: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left, padding_left_));
        for (size_t k = 0; k < n; ++k) {
          if (bytes[i + k] != 0) {
            offset_ += k;
            return absl::DataLossError(Cat("not a NAR: padding byte is not zero ", At()));
          }
        }
        padding_left_ -= n;
        i += n;
        offset_ += n;
        break;
      }
    }
    // Steps that need no more bytes: an empty or complete body, no or complete padding.
    if (phase_ == Phase::kBody && body_have_ == length_) phase_ = Phase::kPadding;
    if (phase_ == Phase::kPadding && padding_left_ == 0) {
      phase_ = Phase::kLength;
      absl::Status s = streaming_ ? CloseFile() : OnString(string_);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status NarUnpacker::OnLength(uint64_t length) {
  const uint64_t budget_left = limits_.max_file_bytes - file_bytes_;
  switch (grammar_) {
    case Grammar::kContents: {
      if (length > budget_left) {
        return absl::ResourceExhaustedError(Cat(
            "entry ", EntryPath(), " is a file of ", length, " bytes, more than the ", budget_left,
            " bytes left of the limit of ", limits_.max_file_bytes,
            " bytes for all files (nothing of it was written)"));
      }
      const bool root = path_.empty();
      const int dir = root ? parent_->get() : current_->get();
      const std::string& name = root ? base_name_ : path_.back();
      const int fd = ::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                              executable_ ? 0755 : 0644);
      if (fd < 0) return FileSystemError(Cat("entry ", EntryPath(), ": cannot create the file"), errno);
      if (root) root_created_ = true;
      file_ = std::make_unique<ScopedFd>(fd);
      file_bytes_ += length;
      streaming_ = true;
      return absl::OkStatus();
    }
    case Grammar::kName:
      if (length > limits_.max_name_bytes) {
        return absl::ResourceExhaustedError(Cat("an entry of directory ", EntryPath(), " has a name of ",
                                                         length, " bytes, more than the limit of ",
                                                         limits_.max_name_bytes, " (NAR byte ", offset_, ")"));
      }
      return absl::OkStatus();
    case Grammar::kTarget:
      if (length > kMaxSymlinkTargetBytes) {
        return absl::InvalidArgumentError(Cat("entry ", EntryPath(), " is a symbolic link whose target has ",
                                                       length, " bytes, more than ", kMaxSymlinkTargetBytes));
      }
      if (length > budget_left) {
        return absl::ResourceExhaustedError(Cat("entry ", EntryPath(), ": the link's target of ", length,
                                                         " bytes exceeds the limit of ", limits_.max_file_bytes,
                                                         " bytes for all files"));
      }
      file_bytes_ += length;
      return absl::OkStatus();
    default:
      if (length > kMaxTokenBytes) {
        return NotANar(Expected(static_cast<uint8_t>(grammar_)), Cat("a string of ", length, " bytes"));
      }
      return absl::OkStatus();
  }
}

absl::Status NarUnpacker::WriteContents(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(file_->get(), bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return FileSystemError(Cat("entry ", EntryPath(), ": cannot write the file"), errno);
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status NarUnpacker::CloseFile() {
  const int rc = file_->Close();
  file_.reset();
  if (rc != 0) return FileSystemError(Cat("entry ", EntryPath(), ": cannot close the file"), errno);
  grammar_ = Grammar::kNodeClose;
  return absl::OkStatus();
}

absl::Status NarUnpacker::CreateNode(std::string_view type) {
  if (entries_ >= limits_.max_entries) {
    return absl::ResourceExhaustedError(Cat("entry ", EntryPath(), " is one more than the limit of ",
                                                     limits_.max_entries, " entries"));
  }
  ++entries_;
  if (type == "regular") {
    executable_ = false;
    grammar_ = Grammar::kRegularTag;  // the file is created when its size is known
    return absl::OkStatus();
  }
  if (type == "symlink") {
    grammar_ = Grammar::kTargetTag;
    return absl::OkStatus();
  }
  // A directory.
  if (path_.size() > limits_.max_depth) {
    return absl::ResourceExhaustedError(Cat("entry ", EntryPath(), " is a directory nested ", path_.size(),
                                                     " levels deep, more than the limit of ", limits_.max_depth));
  }
  const bool root = path_.empty();
  const int dir = root ? parent_->get() : current_->get();
  const std::string& name = root ? base_name_ : path_.back();
  if (::mkdirat(dir, name.c_str(), 0755) != 0) {
    return FileSystemError(Cat("entry ", EntryPath(), ": cannot create the directory"), errno);
  }
  if (root) root_created_ = true;
  const int fd = ::openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return FileSystemError(Cat("entry ", EntryPath(), ": cannot open the directory"), errno);
  auto opened = std::make_unique<ScopedFd>(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return FileSystemError(Cat("entry ", EntryPath(), ": cannot inspect the directory"), errno);
  }
  directories_.push_back(Directory{.dev = st.st_dev, .ino = st.st_ino, .last_name = {}});
  current_ = std::move(opened);
  grammar_ = Grammar::kDirectoryItem;
  return absl::OkStatus();
}

absl::Status NarUnpacker::LeaveDirectory() {
  directories_.pop_back();
  if (directories_.empty()) {
    current_.reset();
    return absl::OkStatus();
  }
  // Up through "..": only the innermost directory is held open, however deep the tree. Its identity is
  // checked, so a tree moved meanwhile is an error rather than entries written somewhere else.
  const int fd = ::openat(current_->get(), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return FileSystemError(Cat("entry ", EntryPath(), ": cannot open its parent"), errno);
  auto parent = std::make_unique<ScopedFd>(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return FileSystemError(Cat("entry ", EntryPath(), ": cannot inspect its parent"), errno);
  }
  if (st.st_dev != directories_.back().dev || st.st_ino != directories_.back().ino) {
    return absl::FailedPreconditionError(Cat("entry ", EntryPath(),
                                                      ": its parent directory was moved while the NAR was unpacked "
                                                      "(nothing else may write to the target)"));
  }
  current_ = std::move(parent);
  return absl::OkStatus();
}

absl::Status NarUnpacker::NodeClosed() {
  grammar_ = path_.empty() ? Grammar::kEnd : Grammar::kEntryClose;
  return absl::OkStatus();
}

absl::Status NarUnpacker::OnString(std::string_view s) {
  auto expect = [&](std::string_view token, Grammar next) -> absl::Status {
    if (s != token) return NotANar(Expected(static_cast<uint8_t>(grammar_)), Quote(s));
    grammar_ = next;
    return absl::OkStatus();
  };
  switch (grammar_) {
    case Grammar::kMagic:
      return expect("nix-archive-1", Grammar::kNodeOpen);
    case Grammar::kNodeOpen:
      return expect("(", Grammar::kType);
    case Grammar::kType:
      return expect("type", Grammar::kTypeValue);
    case Grammar::kTypeValue:
      if (s != "regular" && s != "symlink" && s != "directory") {
        return NotANar(Expected(static_cast<uint8_t>(grammar_)), Quote(s));
      }
      return CreateNode(s);
    case Grammar::kRegularTag:
      if (s == "executable") {
        grammar_ = Grammar::kExecutableValue;
        return absl::OkStatus();
      }
      return expect("contents", Grammar::kContents);
    case Grammar::kExecutableValue:
      executable_ = true;
      return expect("", Grammar::kContentsTag);
    case Grammar::kContentsTag:
      return expect("contents", Grammar::kContents);
    case Grammar::kTargetTag:
      return expect("target", Grammar::kTarget);
    case Grammar::kTarget: {
      if (s.empty() || s.find('\0') != std::string_view::npos) {
        return absl::InvalidArgumentError(Cat("entry ", EntryPath(), " is a symbolic link to ", Quote(s),
                                                       ", which no file system holds (empty, or with a NUL byte)"));
      }
      const bool root = path_.empty();
      const int dir = root ? parent_->get() : current_->get();
      const std::string& name = root ? base_name_ : path_.back();
      // Written as given and never followed: nothing below resolves a path through the tree.
      if (::symlinkat(std::string(s).c_str(), dir, name.c_str()) != 0) {
        return FileSystemError(Cat("entry ", EntryPath(), ": cannot create the symbolic link"), errno);
      }
      if (root) root_created_ = true;
      grammar_ = Grammar::kNodeClose;
      return absl::OkStatus();
    }
    case Grammar::kNodeClose:
      if (s != ")") return NotANar(Expected(static_cast<uint8_t>(grammar_)), Quote(s));
      return NodeClosed();
    case Grammar::kDirectoryItem:
      if (s == "entry") {
        grammar_ = Grammar::kEntryOpen;
        return absl::OkStatus();
      }
      if (s != ")") return NotANar(Expected(static_cast<uint8_t>(grammar_)), Quote(s));
      if (absl::Status left = LeaveDirectory(); !left.ok()) return left;
      return NodeClosed();
    case Grammar::kEntryOpen:
      return expect("(", Grammar::kNameTag);
    case Grammar::kNameTag:
      return expect("name", Grammar::kName);
    case Grammar::kName: {
      Directory& dir = directories_.back();
      if (s.empty() || s == "." || s == ".." || s.find('/') != std::string_view::npos ||
          s.find('\0') != std::string_view::npos) {
        return absl::InvalidArgumentError(Cat(
            "directory ", EntryPath(), " has an entry named ", Quote(s),
            ", which is not a single path component (empty, \".\", \"..\", or with '/' or NUL; NAR byte ", offset_,
            ")"));
      }
      if (dir.has_entries && !(dir.last_name < s)) {  // std::string compares bytewise, as Nix sorts
        return absl::InvalidArgumentError(Cat(
            "directory ", EntryPath(), " has an entry named ", Quote(s),
            s == dir.last_name ? " twice" : Cat(" after ", Quote(dir.last_name)),
            " (NAR byte ", offset_, "): a NAR lists a directory's entries sorted, each once"));
      }
      dir.last_name = std::string(s);
      dir.has_entries = true;
      path_.emplace_back(s);
      grammar_ = Grammar::kNodeTag;
      return absl::OkStatus();
    }
    case Grammar::kNodeTag:
      return expect("node", Grammar::kNodeOpen);
    case Grammar::kEntryClose:
      if (s != ")") return NotANar(Expected(static_cast<uint8_t>(grammar_)), Quote(s));
      path_.pop_back();
      grammar_ = Grammar::kDirectoryItem;
      return absl::OkStatus();
    case Grammar::kContents:
    case Grammar::kEnd:
      break;
  }
  return absl::InternalError(Cat("NarUnpacker: string in state ", static_cast<int>(grammar_)));
}

absl::Status UnpackNarFile(const std::string& nar_path, const std::string& target, UnpackLimits limits) {
  auto unpacker = NarUnpacker::Create(target, limits);
  if (!unpacker.ok()) return unpacker.status();
  const int fd = ::open(nar_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    const std::string what = Cat("NAR file ", nar_path);
    if (error == ENOENT || error == ENOTDIR) return absl::NotFoundError(Cat(what, ": no such file"));
    if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(Cat(what, ": permission denied"));
    return absl::UnavailableError(Cat(what, ": cannot open: ", std::strerror(error)));
  }
  ScopedFd file(fd);
  std::vector<uint8_t> buffer(kReadChunkBytes);
  while (true) {
    const ssize_t n = ::read(file.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(Cat("NAR file ", nar_path, ": cannot read: ", std::strerror(errno)));
    }
    if (n == 0) break;
    if (absl::Status s = (*unpacker)->Feed(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n)));
        !s.ok()) {
      return s;
    }
  }
  return (*unpacker)->Finish();
}

absl::Status RemoveTree(const std::string& path) {
  auto split = SplitPath(path);
  if (!split.ok()) return split.status();
  const int fd = ::open(split->first.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return FileSystemError(Cat("cannot remove ", path, ": cannot open ", split->first), errno);
  }
  ScopedFd parent(fd);
  return RemoveEntryAt(parent.get(), split->second, path);
}

}  // namespace attest::storage
