// The rebuild loop in /metrics (docs/rebuilds.md):
//   attest_rebuild_queue_paths                 paths with demand not known to be CONFIRMED (the queue)
//   attest_demand_requests_total{outcome}      counted, repeat, rate_limited, full (server/demand_book.h)
//   attest_derivations, attest_derivation_bytes            .drv files held and their bytes
//   attest_derivation_uploads_total{outcome}   stored, already_present, rejected
//   attest_rebuild_leases                      leases in force
//   attest_rebuild_leases_total{outcome}       granted (renewals included), refused
//   attest_rebuild_results_total{outcome}      built, failed (as rebuilders reported them)
// Everything is read at scrape time from the objects that keep it; all are borrowed and must outlive
// the registry's scrapes.
#ifndef ATTEST_SERVER_REBUILD_METRICS_H_
#define ATTEST_SERVER_REBUILD_METRICS_H_

#include <functional>

#include "absl/time/time.h"
#include "server/demand_book.h"
#include "server/derivation_intake.h"
#include "server/metrics.h"
#include "server/rebuild_book.h"
#include "storage/derivation_store.h"

namespace attest::server {

void AddRebuildMetrics(MetricsRegistry& metrics, const DemandBook* demand, const RebuildBook* book,
                       const DerivationIntake* intake, storage::DerivationStore* derivations,
                       std::function<absl::Time()> clock);

}  // namespace attest::server

#endif  // ATTEST_SERVER_REBUILD_METRICS_H_
