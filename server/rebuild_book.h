// RebuildBook: the rebuilds under way and their recent results, as rebuilders reported them with signed
// statements (consensus/rebuild_statement.h). In memory only: a lease is a courtesy between the
// rebuilders of one operator, not a fact of the federation, and results are for people to read.
//
// Leases: one per (store path, operator), held by one builder key until it expires (`lease_duration`
// after it was taken) or the builder releases it or reports a result. A builder that asks again
// renews its own lease (taken again: `taken` becomes now, `expires` now + lease_duration). A lease
// is in force while now < expires. Another builder of the same operator is refused while it runs;
// builders of other operators are never refused (a second operator's rebuild is what the queue
// wants). At most `max_leases` leases (expired ones are dropped first; beyond: RESOURCE_EXHAUSTED).
// Results: the latest `max_results` reports (built / failed, with the failure's detail), newest first.
//
// Thread-safe.
#ifndef ATTEST_SERVER_REBUILD_BOOK_H_
#define ATTEST_SERVER_REBUILD_BOOK_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "consensus/store_path.h"

namespace attest::server {

struct RebuildBookOptions final {
  absl::Duration lease_duration = absl::Minutes(30);
  size_t max_leases = 100'000;
  size_t max_results = 200;
};

struct Lease final {
  consensus::StorePath path;
  std::string operator_name;
  std::string builder;  // key name
  absl::Time taken;
  absl::Time expires;

  friend bool operator==(const Lease&, const Lease&) = default;
};

struct RebuildResult final {
  consensus::StorePath path;
  std::string operator_name;
  std::string builder;
  bool built = false;   // false: the builder could not build it
  std::string detail;   // why it failed ("" when built)
  absl::Time reported;  // the node's clock

  friend bool operator==(const RebuildResult&, const RebuildResult&) = default;
};

struct RebuildStats final {
  size_t active_leases = 0;
  uint64_t leases_granted = 0;  // totals since start (renewals included)
  uint64_t leases_refused = 0;  // held by another builder, or the book full
  uint64_t built = 0;
  uint64_t failed = 0;
};

class RebuildBook final {
 public:
  explicit RebuildBook(RebuildBookOptions options = {});

  // Takes or renews the lease of (path, operator) for `builder`. FAILED_PRECONDITION "<path> is being
  // rebuilt by <builder> of <operator> until <time>" when another builder of the operator holds it;
  // RESOURCE_EXHAUSTED when the book is full.
  absl::StatusOr<Lease> Acquire(const consensus::StorePath& path, const std::string& operator_name,
                                const std::string& builder, absl::Time now);

  // Ends the builder's lease on the path (nothing when it holds none).
  void Release(const consensus::StorePath& path, const std::string& operator_name, const std::string& builder);

  // Records a result and ends the builder's lease on the path.
  void Report(RebuildResult result);

  // Unexpired leases on `path` (every operator), by operator.
  std::vector<Lease> LeasesOn(const consensus::StorePath& path, absl::Time now) const;
  // Every unexpired lease, by (path, operator).
  std::vector<Lease> ActiveLeases(absl::Time now) const;
  // Newest first.
  std::vector<RebuildResult> RecentResults() const;
  RebuildStats stats(absl::Time now) const;

 private:
  void DropExpired(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RebuildBookOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::pair<consensus::StorePath, std::string>, Lease> leases_ ABSL_GUARDED_BY(mu_);
  std::deque<RebuildResult> results_ ABSL_GUARDED_BY(mu_);
  uint64_t granted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t built_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_REBUILD_BOOK_H_
