// RebuildQueue: what the federation is missing, worst first (Rebuilds.Wanted, `attest wanted`, the
// /wanted page; docs/rebuilds.md).
//
// The queue is the paths with demand (server/demand_book.h) that are not CONFIRMED, each with:
//   - its verdict and the operators with a counted attestation of it (the tally of server/path_tally.h,
//     with the maintainers' exclusions), and how many more operators quorum needs;
//   - its derivers: the (.drv, output) pairs builders reported in their attestations' metadata, plus
//     the stored derivations that list it among their outputs (storage/derivation_store.h), each
//     marked available when the node holds the derivation and every input derivation it needs;
//   - the rebuild leases on it (server/rebuild_book.h).
// Order: demand (highest first), then operators needed (fewest first), then path. DISPUTED paths are
// listed apart, in the same order: those met while walking the book to fill the wanted list (up to
// `limit`). A path found CONFIRMED while walking is dropped from the demand book. With an operator
// name, the paths that operator already attested (any fingerprint) are left out.
//
// Cost: the walk copies the book's entries in growing prefixes and reads their tallies in batches,
// until `limit` wanted paths are found, the book ends, or `max_scan` paths were looked at (then the
// list is `truncated`). Measured: bench/wanted_bench.cc.
//
// Thread-safe; everything is borrowed.
#ifndef ATTEST_SERVER_REBUILD_QUEUE_H_
#define ATTEST_SERVER_REBUILD_QUEUE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consensus/policy.h"
#include "server/policy_book.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "server/demand_book.h"
#include "server/rebuild_book.h"
#include "server/resolution_book.h"
#include "storage/derivation_store.h"
#include "storage/ledger.h"

namespace attest::server {

inline constexpr int kDefaultWantedLimit = 100;
inline constexpr int kMaxWantedLimit = 10000;

struct WantedQuery final {
  std::string operator_name = {};  // "" = everything
  int limit = kDefaultWantedLimit;  // per list; 1..kMaxWantedLimit (0 = the default)
};

struct WantedDeriver final {
  consensus::StorePath drv_path;
  std::string output_name;
  bool available = false;
};

struct WantedItem final {
  consensus::StorePath path;
  consensus::Verdict verdict = consensus::Verdict::kUnknown;
  double demand = 0;
  absl::Time last_requested;
  int operators_needed = 0;
  std::vector<std::string> operators;
  std::vector<WantedDeriver> derivers;
  std::string dispute_id;  // DISPUTED only
  std::vector<Lease> leases;
};

struct WantedList final {
  std::vector<WantedItem> wanted;
  std::vector<WantedItem> disputed;
  size_t demand_paths = 0;
  int quorum = 0;
  bool truncated = false;  // max_scan reached before the wanted list was full
};

struct RebuildQueueOptions final {
  size_t max_scan = 200000;
  size_t batch = 1000;
};

class RebuildQueue final {
 public:
  using Clock = std::function<absl::Time()>;

  RebuildQueue(const PolicyBook& policy, storage::Ledger* ledger, storage::DerivationStore* derivations,
               DemandBook* demand, const RebuildBook* rebuilds, const ResolutionBook* resolutions, Clock clock,
               RebuildQueueOptions options = {});

  // INVALID_ARGUMENT for a limit out of range or an operator the policy does not name; the store's
  // errors otherwise.
  absl::StatusOr<WantedList> Wanted(const WantedQuery& query) const;

  // The verdict of one path now (for lease requests: a CONFIRMED path is not leased).
  absl::StatusOr<consensus::Verdict> VerdictOf(const consensus::StorePath& path) const;
  // Whether the node holds a derivation that builds `path` (reported by a builder or found in the
  // store) together with every input derivation it needs.
  absl::StatusOr<bool> HasDerivationFor(const consensus::StorePath& path) const;

 private:
  // Whether each derivation is held with its whole closure.
  absl::StatusOr<std::vector<bool>> ClosuresAvailable(const std::vector<consensus::StorePath>& drvs) const;
  absl::StatusOr<std::vector<std::vector<WantedDeriver>>> DeriversOf(
      std::span<const consensus::StorePath> paths,
      std::span<const std::vector<storage::StoredAttestation>> attestations) const;

  const PolicyBook& policy_;  // asked once per call
  storage::Ledger* const ledger_;
  storage::DerivationStore* const derivations_;
  DemandBook* const demand_;
  const RebuildBook* const rebuilds_;
  const ResolutionBook* const resolutions_;
  const Clock clock_;
  const RebuildQueueOptions options_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_REBUILD_QUEUE_H_
