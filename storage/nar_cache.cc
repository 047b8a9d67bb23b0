#include "storage/nar_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <tuple>
#include <utility>
#include <vector>

#include "consensus/text.h"

namespace attest::storage {
namespace {

using consensus::Cat;

constexpr size_t kMaxKeyLength = 128;
constexpr std::string_view kNarSuffix = ".nar";
constexpr std::string_view kPartSuffix = ".part";

std::string ErrnoText(int error) { return std::strerror(error); }

absl::Status DirectoryError(std::string_view what, const std::string& directory, int error) {
  return absl::FailedPreconditionError(Cat("NAR cache directory ", directory, ": cannot ", what, ": ",
                                                    ErrnoText(error),
                                                    " (is the path right, and may the node write there?)"));
}

// mkdir -p: each missing component is created with mode 0755.
absl::Status MakeDirectories(const std::string& directory) {
  for (size_t slash = directory.find('/', 1);; slash = directory.find('/', slash + 1)) {
    const std::string prefix = directory.substr(0, slash);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return DirectoryError("create", directory, errno);
    }
    if (slash == std::string::npos) return absl::OkStatus();
  }
}

absl::Status SyncDirectory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(Cat("cannot open directory ", directory, ": ", ErrnoText(errno)));
  ScopedFd dir(fd);
  if (::fsync(dir.get()) != 0) {
    return absl::UnavailableError(Cat("cannot sync directory ", directory, ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

bool IsNarCacheKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyLength) return false;
  return std::all_of(key.begin(), key.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-'; });
}

// One NAR being written to its own .part file. Holds `size` bytes of the cache's reservation until
// Commit turns them into a committed entry or the destructor gives them back.
class NarCache::FileWriter final : public NarCache::Writer {
 public:
  FileWriter(NarCache* cache, std::string key, uint64_t size, std::string part_path, ScopedFd fd)
      : cache_(cache), key_(std::move(key)), size_(size), part_path_(std::move(part_path)), fd_(std::move(fd)) {}

  ~FileWriter() override {
    if (committed_) return;
    fd_ = ScopedFd();
    ::unlink(part_path_.c_str());
    cache_->Release(size_);
  }

  absl::Status Append(std::span<const uint8_t> bytes) override {
    if (committed_ || fd_.get() < 0) {
      return absl::FailedPreconditionError(Cat("NAR cache entry ", key_, ": Append after Commit"));
    }
    if (bytes.size() > size_ - appended_) {
      return absl::FailedPreconditionError(Cat("NAR cache entry ", key_, ": ", appended_ + bytes.size(),
                                                        " bytes appended, more than the ", size_,
                                                        " reserved by Begin (is the NarSize right?)"));
    }
    for (size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::write(fd_.get(), bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return absl::UnavailableError(Cat("cannot write ", part_path_, ": ", ErrnoText(errno)));
      }
      done += static_cast<size_t>(n);
      appended_ += static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Commit() override {
    if (committed_ || fd_.get() < 0) {
      return absl::FailedPreconditionError(Cat("NAR cache entry ", key_, ": Commit after a Commit that succeeded or failed after the size check"));
    }
    if (appended_ != size_) {
      return absl::FailedPreconditionError(Cat("NAR cache entry ", key_, ": ", appended_,
                                                        " bytes appended, fewer than the ", size_,
                                                        " given to Begin (the transfer ended early?)"));
    }
    if (cache_->options_.sync && ::fsync(fd_.get()) != 0) {
      return absl::UnavailableError(Cat("cannot sync ", part_path_, ": ", ErrnoText(errno)));
    }
    if (fd_.Close() != 0) {
      return absl::UnavailableError(Cat("cannot close ", part_path_, ": ", ErrnoText(errno)));
    }
    {
      // The rename happens under the lock so that it cannot interleave with an eviction or a Remove
      // of the same key (which would otherwise unlink the file just put in place, or count it twice).
      absl::MutexLock lock(&cache_->mu_);
      if (::rename(part_path_.c_str(), cache_->PathOf(key_).c_str()) != 0) {
        return absl::UnavailableError(
            Cat("cannot rename ", part_path_, " to ", cache_->PathOf(key_), ": ", ErrnoText(errno)));
      }
      committed_ = true;
      cache_->reserved_ -= size_;
      --cache_->writers_;
      // An older entry of the key is replaced by the rename: Index stops counting it.
      cache_->Index(key_, Entry{.size = size_, .verified = true});
    }
    // The entry is in place and served either way; a failed directory sync only means the rename
    // may not survive a crash, after which Open finds the .part file (deleted) or nothing.
    return cache_->options_.sync ? SyncDirectory(cache_->options_.directory) : absl::OkStatus();
  }

 private:
  NarCache* const cache_;
  const std::string key_;
  const uint64_t size_;
  const std::string part_path_;
  ScopedFd fd_;
  uint64_t appended_ = 0;
  bool committed_ = false;
};

NarCache::NarCache(NarCacheOptions options) : options_(std::move(options)) {}

NarCache::~NarCache() = default;

absl::StatusOr<std::unique_ptr<NarCache>> NarCache::Open(NarCacheOptions options) {
  if (options.directory.empty()) {
    return absl::InvalidArgumentError("NAR cache: the directory is empty (give the directory the cache may use)");
  }
  if (options.max_bytes == 0) {
    return absl::InvalidArgumentError(
        Cat("NAR cache ", options.directory, ": max_bytes is 0 (give the disk space the cache may use)"));
  }
  while (options.directory.size() > 1 && options.directory.back() == '/') options.directory.pop_back();
  std::unique_ptr<NarCache> cache(new NarCache(std::move(options)));
  if (absl::Status loaded = cache->Load(); !loaded.ok()) return loaded;
  return cache;
}

absl::Status NarCache::Load() {
  const std::string& directory = options_.directory;
  if (absl::Status made = MakeDirectories(directory); !made.ok()) return made;
  if (::access(directory.c_str(), R_OK | W_OK | X_OK) != 0) return DirectoryError("write", directory, errno);
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) return DirectoryError("read", directory, errno);
  struct Found final {
    int64_t mtime_sec;
    int64_t mtime_nsec;
    std::string key;
    uint64_t size;
  };
  std::vector<Found> found;
  absl::Status status;
  for (;;) {
    errno = 0;  // readdir returns nullptr both at the end and on an error; errno tells them apart
    const dirent* item = ::readdir(dir);
    if (item == nullptr) {
      if (errno != 0) status = DirectoryError("read", directory, errno);
      break;
    }
    const std::string_view name = item->d_name;
    if (name.ends_with(kPartSuffix)) {
      // Left by a writer that did not commit (a crash): never a whole verified NAR.
      // (A directory of that name is not ours: left alone.)
      if (::unlinkat(::dirfd(dir), item->d_name, 0) != 0 && errno != ENOENT && errno != EISDIR) {
        status = DirectoryError(Cat("delete ", name), directory, errno);
        break;
      }
      continue;
    }
    if (!name.ends_with(kNarSuffix)) continue;
    const std::string_view key = name.substr(0, name.size() - kNarSuffix.size());
    struct stat st;
    if (!IsNarCacheKey(key) || ::fstatat(::dirfd(dir), item->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode)) {
      continue;  // not ours: left alone and not counted
    }
    found.push_back(Found{.mtime_sec = st.st_mtim.tv_sec,
                          .mtime_nsec = st.st_mtim.tv_nsec,
                          .key = std::string(key),
                          .size = static_cast<uint64_t>(st.st_size)});
  }
  ::closedir(dir);
  if (!status.ok()) return status;

  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return std::tie(a.mtime_sec, a.mtime_nsec, a.key) < std::tie(b.mtime_sec, b.mtime_nsec, b.key);
  });
  absl::MutexLock lock(&mu_);
  for (Found& file : found) Index(std::move(file.key), Entry{.size = file.size, .verified = false});
  // Over the bound (max_bytes lowered since the last run): the oldest go first.
  MakeRoom(0);
  return absl::OkStatus();
}

std::string NarCache::PathOf(std::string_view key) const {
  return Cat(options_.directory, "/", key, kNarSuffix);
}

bool NarCache::MakeRoom(uint64_t needed) {
  if (reserved_ > options_.max_bytes || needed > options_.max_bytes - reserved_) {
    // Even an empty cache would not hold it beside the transfers in progress. At Open (needed 0,
    // nothing reserved) this never happens.
    return false;
  }
  const uint64_t room = options_.max_bytes - reserved_ - needed;
  while (bytes_ > room && !lru_.empty()) {
    auto it = entries_.find(lru_.begin()->second);
    ::unlink(PathOf(it->first).c_str());
    Drop(it);
    ++evictions_;
  }
  return true;
}

void NarCache::Drop(absl::flat_hash_map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.size;
  lru_.erase(it->second.use);
  entries_.erase(it);
}

void NarCache::Index(std::string key, Entry entry) {
  if (auto old = entries_.find(key); old != entries_.end()) Drop(old);
  entry.use = ++clock_;
  bytes_ += entry.size;
  lru_.emplace(entry.use, key);
  entries_.emplace(std::move(key), entry);
}

void NarCache::Release(uint64_t reserved) {
  absl::MutexLock lock(&mu_);
  reserved_ -= reserved;
  --writers_;
}

std::optional<NarCache::Hit> NarCache::Lookup(std::string_view key) {
  if (!IsNarCacheKey(key)) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(consensus::AbslView(key));
  if (it == entries_.end()) return std::nullopt;
  const std::string path = PathOf(key);
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st;
  if (fd.get() < 0 && errno == ENOENT) {
    Drop(it);  // vanished: a miss, and the bytes no longer count
    return std::nullopt;
  }
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) != it->second.size) {
    // Unreadable, or changed behind the cache's back (not what was verified or indexed). Deleted
    // rather than only forgotten, so that the disk never holds more than the bound counts.
    ::unlink(path.c_str());
    Drop(it);
    return std::nullopt;
  }
  lru_.erase(it->second.use);
  it->second.use = ++clock_;
  lru_.emplace(it->second.use, it->first);
  return Hit{.fd = std::move(fd), .size = it->second.size, .verified = it->second.verified};
}

void NarCache::MarkVerified(std::string_view key) {
  absl::MutexLock lock(&mu_);
  if (auto it = entries_.find(consensus::AbslView(key)); it != entries_.end()) it->second.verified = true;
}

void NarCache::Remove(std::string_view key) {
  if (!IsNarCacheKey(key)) return;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(consensus::AbslView(key));
  if (it == entries_.end()) return;
  ::unlink(PathOf(key).c_str());
  Drop(it);
}

absl::StatusOr<std::unique_ptr<NarCache::Writer>> NarCache::Begin(std::string_view key, uint64_t size) {
  if (!IsNarCacheKey(key)) {
    return absl::InvalidArgumentError(Cat("NAR cache key ", consensus::QuoteForError(key),
                                                   ": not 1 to 128 characters of [0-9a-z-]"));
  }
  if (size > options_.max_bytes) {
    return absl::ResourceExhaustedError(Cat("NAR ", key, " of ", size, " bytes is larger than the NAR cache (",
                                                     options_.max_bytes, " bytes in ", options_.directory,
                                                     "; raise its size to serve it)"));
  }
  std::string part_path;
  {
    absl::MutexLock lock(&mu_);
    if (!MakeRoom(size)) {
      return absl::ResourceExhaustedError(
          Cat("NAR ", key, " of ", size, " bytes does not fit in the NAR cache (", options_.max_bytes,
                       " bytes in ", options_.directory, ", ", reserved_, " of them reserved by ", writers_,
                       " transfers in progress): retry when they finish, or raise the cache's size"));
    }
    reserved_ += size;
    ++writers_;
    part_path = Cat(options_.directory, "/", key, ".", ++part_counter_, kPartSuffix);
  }
  ScopedFd fd(::open(part_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    const int error = errno;
    Release(size);
    return absl::UnavailableError(Cat("cannot create ", part_path, ": ", ErrnoText(error)));
  }
  return std::make_unique<FileWriter>(this, std::string(key), size, std::move(part_path), std::move(fd));
}

NarCacheStats NarCache::stats() const {
  absl::MutexLock lock(&mu_);
  return NarCacheStats{.bytes = bytes_, .reserved = reserved_, .entries = entries_.size(), .evictions = evictions_};
}

}  // namespace attest::storage
