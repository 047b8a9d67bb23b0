// NarCache: the node's bounded on-disk cache of verified NARs, from which the gateway serves /nar/.
//
// A NAR enters the cache only through a Writer that the relay commits after NarVerifier accepted every
// byte, so what Lookup returns was verified (by this process, or by an earlier one: see below). Files
// are written to "<key>.part", fsynced, then renamed to "<key>.nar", so a crash leaves either nothing
// or a whole file; Open deletes leftover .part files.
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
// Thread-safe.
#ifndef ATTEST_STORAGE_NAR_CACHE_H_
#define ATTEST_STORAGE_NAR_CACHE_H_

#include <cstdint>
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
  // file vanished or cannot be opened: the entry is dropped). Invalid keys are never found.
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
    // Exactly the size given to Begin must have been appended (else FAILED_PRECONDITION); fsyncs,
    // renames into place, and indexes the entry as verified (replacing an older entry of the key).
    virtual absl::Status Commit() = 0;
  };
  // Reserves `size` bytes (evicting as needed) and creates the .part file. INVALID_ARGUMENT: a bad key.
  // RESOURCE_EXHAUSTED: size > max_bytes, or not enough room even after evicting every committed file.
  // UNAVAILABLE: the file cannot be created.
  absl::StatusOr<std::unique_ptr<Writer>> Begin(std::string_view key, uint64_t size);

  NarCacheStats stats() const;
  uint64_t max_bytes() const { return options_.max_bytes; }

 private:
  struct Entry;
  class FileWriter;
  explicit NarCache(NarCacheOptions options);
  absl::Status Load();
  // Evicts least recently used entries until `needed` more bytes fit; false when they cannot.
  bool MakeRoom(uint64_t needed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Release(uint64_t reserved);
  void Index(std::string key, uint64_t size, bool verified);

  const NarCacheOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t clock_ ABSL_GUARDED_BY(mu_) = 0;  // use counter for LRU order
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_NAR_CACHE_H_
