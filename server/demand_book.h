// DemandBook: how often each store path was asked for and could not be answered CONFIRMED (a status
// request or a gateway narinfo request for an UNKNOWN or PENDING path): the "wanted" side of the
// rebuild queue (server/rebuild_queue.h, docs/rebuilds.md).
//
// Counting rules:
//   - Decay: a path's demand halves every `half_life`; a path whose demand fell below `drop_below` is
//     forgotten. Stored as (demand at time t); since every path decays at the same rate, the order by
//     current demand is the order by log2(demand) + t / half_life, which never changes while time
//     passes, so the book keeps one sorted index and Top needs no recomputation.
//   - Repeats: one client address adds at most one request per path per `repeat_window` (kRepeat).
//   - Budget: one client address adds at most `client_budget` requests per `budget_window` over all
//     paths; beyond it nothing is counted for that client (kRateLimited) until the window rolls over.
//     The budget is checked before the repeat: a client over its budget gets kRateLimited.
//   - Windows are fixed intervals of the clock counted from the Unix epoch (an hour window runs from
//     one whole hour to the next), so a window's memory is dropped at once when the next begins. A
//     zero or negative window (or half_life) turns its rule off; a client_budget <= 0 counts nobody.
//   - Bounds: at most `max_paths` paths (a new path beyond it replaces the path of least demand when it
//     would rank above it, i.e. that demand decayed below 1, else is not counted: kFull) and at most
//     `max_clients` clients and `max_recent` (client, path) pairs tracked per window (beyond:
//     kRateLimited, since an attacker with many addresses must not evict honest counts). Memory: about
//     230 bytes per path of 60 characters (bench/demand_bench) plus about 20 per recent pair and 50
//     per client.
//   - Persistence: SaveTo writes a snapshot file (atomically: temporary file, fsync, rename);
//     LoadFrom reads it back at start. Demand is soft state: losing the snapshot loses counts, never
//     correctness.
//
// Thread-safe (one mutex; Record is a hash lookup and a tree update).
#ifndef ATTEST_SERVER_DEMAND_BOOK_H_
#define ATTEST_SERVER_DEMAND_BOOK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "consensus/store_path.h"

namespace attest::server {

struct DemandOptions final {
  absl::Duration half_life = absl::Hours(24);
  double drop_below = 0.05;
  size_t max_paths = 1'000'000;
  absl::Duration repeat_window = absl::Hours(1);
  int64_t client_budget = 1000;
  absl::Duration budget_window = absl::Minutes(1);
  size_t max_clients = 100'000;
  size_t max_recent = 4'000'000;
};

enum class DemandCount { kCounted, kRepeat, kRateLimited, kFull };

struct DemandEntry final {
  consensus::StorePath path;
  double demand = 0;              // decayed to the `now` of the call that returned it
  int64_t requests = 0;           // counted requests since the path entered the book (not decayed)
  absl::Time last_requested;
};

struct DemandStats final {
  size_t paths = 0;
  uint64_t counted = 0;  // totals since start
  uint64_t repeats = 0;
  uint64_t rate_limited = 0;
  uint64_t full = 0;
};

class DemandBook final {
 public:
  explicit DemandBook(DemandOptions options = {});
  ~DemandBook();
  DemandBook(const DemandBook&) = delete;
  DemandBook& operator=(const DemandBook&) = delete;

  // One request for `path` from `client` (an address without port; "" for unknown, which shares one
  // budget) at `now`.
  DemandCount Record(const consensus::StorePath& path, std::string_view client, absl::Time now);

  // The path is CONFIRMED now (or was asked to be forgotten): its demand is dropped.
  void Forget(const consensus::StorePath& path);

  // Calls `visit` with the paths in order of current demand (highest first; ties by path) until it
  // returns false. Entries below drop_below at `now` are skipped (and forgotten). `visit` runs under
  // the book's lock: it must not call the book.
  void ForEachByDemand(absl::Time now, const std::function<bool(const DemandEntry&)>& visit) const;

  // Current demand of one path (0 when not in the book).
  double DemandOf(const consensus::StorePath& path, absl::Time now) const;

  DemandStats stats() const;

  // Snapshot file (versioned text: the paths with their demand at `now`, highest first).
  // SaveTo: the codes of storage::WriteFileAtomically (NOT_FOUND: no such directory;
  // FAILED_PRECONDITION: not allowed or a directory in the way; RESOURCE_EXHAUSTED: disk full;
  // UNAVAILABLE: other I/O errors), the message naming the file. The book is unchanged.
  // LoadFrom replaces the book's paths (counters in stats() are kept): a missing file is an empty book
  // (OK); DATA_LOSS naming the file and the line when it does not parse, is of another format version
  // or is larger than max_paths lines can be; the codes of storage::ReadFileToString when it cannot be
  // read. On any error the book is left empty (the caller logs and goes on). Paths beyond max_paths
  // (a snapshot of a larger book) keep the most demanded; paths below drop_below at `now` are left out.
  absl::Status SaveTo(const std::string& file, absl::Time now) const;
  absl::Status LoadFrom(const std::string& file, absl::Time now);

 private:
  struct State;
  std::unique_ptr<State> state_;
  const DemandOptions options_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_DEMAND_BOOK_H_
