// NarCache: the node's bounded on-disk cache of verified NARs, from which the gateway serves /nar/.
//
// A NAR enters the cache only through a Writer that the relay commits after NarVerifier accepted every
// byte, so what Lookup returns was verified (by this process, or by an earlier one: see below). Files
// are written to "<key>.<n>.part", then renamed to "<key>.nar"; Open deletes leftover .part files,
// indexes the "<key>.nar" files and leaves every other file alone (uncounted). Without
// NarCacheOptions::sync a crash may leave a renamed file short or empty: Open indexes every file as
// unverified, so it is hashed again (and dropped) before it could be served.
//
// Bounded: the committed files plus the space reserved by writers in progress never exceed
// max_bytes. Begin makes room by evicting the least recently used files (Lookup counts as a use); a
// file being sent keeps its bytes until its descriptor is closed (Linux unlink semantics), which the
// bound does not count. A NAR larger than max_bytes, or one that does not fit even after evicting
// everything evictable, is RESOURCE_EXHAUSTED.
//
// Restart: files found by Open are indexed as unverified (the process that verified them is gone, and
// the disk may have changed them since). The relay hashes such a file once before serving it and
// calls MarkVerified, or Remove when it does not match.
//
// Keys: 1..128 characters of [0-9a-z-] (the relay uses "<hash part>-<nar hash in nix32>"), so a key is
// a file name and a changed NarHash is another key.
//
// Thread-safe. A Writer is used by one thread at a time and must not outlive its NarCache; a Hit's
// descriptor is independent of the cache.
#ifndef ATTEST_STORAGE_NAR_CACHE_H_
#define ATTEST_STORAGE_NAR_CACHE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/files.h"

namespace attest::storage {

struct NarCacheOptions final {
  std::string directory;  // created (with parents) when missing; must not be shared with anything else
  uint64_t max_bytes = uint64_t{10} << 30;
  // fsync each file and the directory at Commit. Off by default: files found at Open are hashed again
  // before they are served (see "Restart"), so a file a crash left short or empty is caught then and
  // fetched again; syncing would only make every relayed NAR wait for the disk.
  bool sync = false;
};

struct NarCacheStats final {
  uint64_t bytes = 0;      // committed files
  uint64_t reserved = 0;   // writers in progress
  uint64_t entries = 0;
  uint64_t evictions = 0;  // since Open
};

// Whether `key` is a valid cache key (see above).
bool IsNarCacheKey(std::string_view key);

class NarCache final {
 public:
  // INVALID_ARGUMENT: max_bytes 0 or an empty directory. FAILED_PRECONDITION (naming the directory and
  // the system error): the directory cannot be created, read or written. Files over the bound found
  // at Open are evicted (oldest modification time first).
  static absl::StatusOr<std::unique_ptr<NarCache>> Open(NarCacheOptions options);

  ~NarCache();
  NarCache(const NarCache&) = delete;
  NarCache& operator=(const NarCache&) = delete;

  struct Hit final {
    ScopedFd fd;  // open for reading, positioned at 0; the caller owns it
    uint64_t size = 0;
    bool verified = false;  // false for files indexed by Open and not yet marked verified
  };
  // The cached NAR under `key`, opened, and marked recently used; nullopt when there is none (or its
  // file vanished, cannot be opened, or no longer has the indexed size: the entry is dropped, and a
  // file still there deleted). Invalid keys are never found.
  std::optional<Hit> Lookup(std::string_view key);

  void MarkVerified(std::string_view key);
  // Drops the entry and deletes its file (a reader keeps its open descriptor).
  void Remove(std::string_view key);

  class Writer {
   public:
    virtual ~Writer() = default;  // without Commit: the .part file is deleted, the reservation released
    // Appends bytes; more than the size given to Begin is FAILED_PRECONDITION. A write error (disk
    // full...) is UNAVAILABLE naming the file and the system error.
    virtual absl::Status Append(std::span<const uint8_t> bytes) = 0;
    // Exactly the size given to Begin must have been appended (else FAILED_PRECONDITION, and the
    // writer may append the rest); fsyncs (with `sync`), renames into place, and indexes the entry as verified
    // (replacing an older entry of the key: of two writers of one key, the last to commit wins).
    // UNAVAILABLE: the sync or rename failed (the writer can only be destroyed), or the directory
    // sync after the rename failed (the entry is in place, but may not survive a crash).
    virtual absl::Status Commit() = 0;
  };
  // Reserves `size` bytes (evicting as needed) and creates "<key>.<n>.part" (O_EXCL, mode 0644), so
  // writers of one key do not collide. INVALID_ARGUMENT: a bad key.
  // RESOURCE_EXHAUSTED: size > max_bytes, or not enough room even after evicting every committed file.
  // UNAVAILABLE: the file cannot be created.
  absl::StatusOr<std::unique_ptr<Writer>> Begin(std::string_view key, uint64_t size);

  NarCacheStats stats() const;
  uint64_t max_bytes() const { return options_.max_bytes; }

 private:
  struct Entry final {
    uint64_t size = 0;
    bool verified = false;
    uint64_t use = 0;  // key of the entry in lru_
  };
  class FileWriter;
  explicit NarCache(NarCacheOptions options);
  absl::Status Load();
  std::string PathOf(std::string_view key) const;
  // Evicts least recently used entries until `needed` more bytes fit beside the committed and
  // reserved ones; false (evicting nothing) when they cannot fit even with every entry evicted.
  bool MakeRoom(uint64_t needed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the entry; its file is the caller's business.
  void Drop(absl::flat_hash_map<std::string, Entry>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Indexes `key` as the most recently used entry, replacing an older entry of the key.
  void Index(std::string key, Entry entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Release(uint64_t reserved);

  const NarCacheOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> lru_ ABSL_GUARDED_BY(mu_);  // use -> key, least recent first
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writers_ ABSL_GUARDED_BY(mu_) = 0;  // writers in progress, for messages
  uint64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;  // use counter for LRU order
  uint64_t part_counter_ ABSL_GUARDED_BY(mu_) = 0;  // distinct .part names for writers of one key
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_NAR_CACHE_H_
