// Scrubber: re-checks what the node stored, at a bounded rate, so damage is found before a read trips
// on it, and damage that no read would ever see is found at all (an index entry that no longer leads
// to its row, an old log tile that the publisher does not look at again).
//
// A pass checks, in order:
//   1. every path row as a read would (its store path, its record's checksum and structure) and that
//      the index on hash heads finds it (SqliteAttestationStore::CheckPathRecords), when the store
//      is SQLite;
//   2. the log: every entry hashes to its leaf in the level-0 tiles; every hash of a higher tile is
//      the root of the 256 hashes below it; the root of all leaves at the newest signed checkpoint's
//      size is that checkpoint's root, and at the log's size the writer's root;
//   3. optionally SQLite's PRAGMA quick_check of the whole file (attestd --check-database).
// Rows and entries are checked in chunks, pausing between chunks so that at most `items_per_second`
// are checked (0: no pause). Problems are returned in the report (each names what is damaged), logged,
// shown by Health() (and /healthz, /metrics); they are never turned into answers.
//
// Thread-safe. The stores are borrowed and must outlive the scrubber.
#ifndef ATTEST_SERVER_SCRUBBER_H_
#define ATTEST_SERVER_SCRUBBER_H_

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/metrics.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/transparency_log_store.h"

namespace attest::server {

struct ScrubOptions final {
  // Between the starts of two background passes; zero: no background passes (RunPass only).
  absl::Duration interval = absl::Hours(24);
  // Most path rows plus log entries checked per second; 0: as fast as the store answers.
  int items_per_second = 20000;
  // PRAGMA quick_check as well (reads the whole file in one go; for attestd --check-database).
  bool quick_check = false;
};

struct ScrubReport final {
  int64_t path_rows = 0;
  int64_t log_entries = 0;
  int64_t log_tiles = 0;
  std::vector<std::string> problems;  // each names what is damaged; empty when everything checked out
};

struct ScrubHealth final {
  int64_t passes = 0;                 // completed passes since start
  absl::Time last_pass_end = absl::InfinitePast();
  std::vector<std::string> problems;  // of the last completed pass
  std::string error;                  // the store error that ended the last pass early; "" if none
};

class Scrubber final {
 public:
  // `sqlite`: the same store as `store` when it is SQLite (the path rows are checked), else null.
  // `metrics`: where attest_scrub_* go (borrowed; null for none).
  Scrubber(storage::TransparencyLogStore* store, storage::SqliteAttestationStore* sqlite, ScrubOptions options,
           MetricsRegistry* metrics);
  ~Scrubber();
  Scrubber(const Scrubber&) = delete;
  Scrubber& operator=(const Scrubber&) = delete;

  // One whole pass, now, on the calling thread. Errors are the store's (UNAVAILABLE, ...): the pass
  // stopped there; problems found are in the report, not errors.
  absl::StatusOr<ScrubReport> RunPass();

  // Background passes every options.interval (the first one interval after Start). No-op when the
  // interval is zero. Stop waits for a pass in progress to reach its next pause.
  void Start();
  void Stop();

  ScrubHealth Health() const;

 private:
  absl::Status CheckPathRows(ScrubReport& report);
  absl::Status CheckLog(ScrubReport& report);
  // Sleeps so that `items` more checked items keep to the rate; false when stopping.
  bool Pace(int64_t items);
  void Record(const absl::StatusOr<ScrubReport>& report);
  void Run();

  storage::TransparencyLogStore* const store_;
  storage::SqliteAttestationStore* const sqlite_;
  const ScrubOptions options_;
  Gauge* problems_gauge_ = nullptr;
  Gauge* last_pass_gauge_ = nullptr;
  Counter* passes_counter_ = nullptr;

  mutable absl::Mutex mu_;
  ScrubHealth health_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_SCRUBBER_H_
