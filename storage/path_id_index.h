// PathIdIndex: an in-memory map from a store path's hash head (the first 8 bytes of its hash part) to
// the ids of its rows in the `paths` table, shared by the reader connections of one store.
//
// Why: finding a path's row through SQLite's `paths_by_hash` index costs two B-tree descents (the
// index, then the table), and each descent ends on a page that is usually not in the reader's page
// cache: the index alone is 59 MB at 10 million attestations, a reader caches 8 MiB, and SQLite empties
// a reader's cache whenever another connection committed. Every such page is one `pread`. With this
// index a status read descends only the table, by id: about half the system calls.
//
// What it holds: every row with id <= covered(). Row ids only ascend (rows are inserted without an id
// and never deleted), so a reader brings the index up to its own snapshot with CatchUp (the rows above
// covered()), after which a head that is not in the index has no row in that snapshot. Rows are added
// only from committed snapshots, never by the writer, so a rolled-back transaction leaves no trace.
//
// Layout: open addressing with linear probing over 8-byte slots, a slot being a 32-bit tag of the head
// and the 32-bit row id (0 = empty). The tag is the top half of the head mixed with a per-process random
// seed (so that chosen hash parts cannot pile into one probe run); the bucket is the tag's top bits,
// so the table can grow without the heads. Lookups therefore give a superset of the right ids (two
// heads may share a tag): callers compare each row's hash and name, which they do anyway. About 10
// bytes per path (32 MiB for 3.3 million paths).
//
// Bounded: a table that would outgrow `max_bytes`, or a row id above 2^32 - 1, makes the index give up
// for good (usable() turns false, memory is freed) and readers use SQLite's index as before.
//
// Thread-safe: Find runs concurrently with other Finds; CatchUp calls are serialised among themselves
// and block Finds only while the fetched rows are inserted.
#ifndef ATTEST_STORAGE_PATH_ID_INDEX_H_
#define ATTEST_STORAGE_PATH_ID_INDEX_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace attest::storage {

class PathIdIndex final {
 public:
  // fetch's way of handing over one row.
  using AddRow = absl::FunctionRef<void(int64_t head, int64_t id)>;

  // max_bytes: the largest table the index may grow to; 0 turns it off. `seed` mixes the heads (give
  // a random one; tests fix it).
  PathIdIndex(size_t max_bytes, uint64_t seed);
  PathIdIndex(const PathIdIndex&) = delete;
  PathIdIndex& operator=(const PathIdIndex&) = delete;

  // False when turned off or given up: Find must not be relied on, use SQLite's index.
  bool usable() const { return usable_.load(std::memory_order_acquire); }
  // Every row with an id <= covered() is in the index.
  int64_t covered() const { return covered_.load(std::memory_order_acquire); }

  // Brings the index up to `newest`, the largest row id of the caller's snapshot, when covered() is
  // below it. `fetch(after, add)` must call add(head, id) for every row of that snapshot with an
  // id > `after` (in any order). Concurrent calls are serialised; a caller finding the index already
  // there fetches nothing. Returns fetch's error, leaving the index as it was.
  absl::Status CatchUp(int64_t newest, absl::FunctionRef<absl::Status(int64_t after, AddRow add)> fetch)
      ABSL_LOCKS_EXCLUDED(catch_up_mu_, mu_);

  // For each heads[i], calls found(i, id) for every indexed id whose row may have that head (a superset
  // of the right ones, see above). Precondition: usable().
  void Find(std::span<const int64_t> heads, absl::FunctionRef<void(size_t index, int64_t id)> found) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The table's size in bytes (0 when off or given up).
  size_t bytes() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  uint32_t Tag(int64_t head) const;
  // Inserts without growing. Precondition: a free slot exists.
  void Place(uint64_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes room for `more` slots, growing the table (false: it would outgrow max_bytes_).
  bool Reserve(size_t more) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void GiveUp() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_bytes_;
  const uint64_t seed_;

  absl::Mutex catch_up_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::vector<uint64_t> slots_ ABSL_GUARDED_BY(mu_);  // size 0 or a power of two
  int bucket_shift_ ABSL_GUARDED_BY(mu_) = 32;        // bucket = tag >> bucket_shift_
  size_t used_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> covered_{0};
  std::atomic<bool> usable_;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_PATH_ID_INDEX_H_
