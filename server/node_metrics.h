// The node-wide metrics that are not written by a component as it works: what the store holds, the
// database's size on disk, the process's start time and build, read at scrape time; the policy in
// force, set at each adoption; and the /metrics route that serves a MetricsRegistry on the HTTP port.
//
// Thread-safe (the collector runs on the HTTP job pool, one scrape at a time).
#ifndef ATTEST_SERVER_NODE_METRICS_H_
#define ATTEST_SERVER_NODE_METRICS_H_

#include <string>

#include "absl/time/time.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/policy_book.h"
#include "storage/ledger.h"

namespace attest::server {

// Registers attest_build_info, attest_process_start_time_seconds (`started`), and a collector for
// attest_attestations, attest_store_paths, attest_disputes (from store->Stats()) and
// attest_database_bytes{file="database"|"wal"} (stat of `database_path` and `database_path`-wal; a
// missing file is 0). The store must outlive every scrape.
void AddNodeMetrics(MetricsRegistry& metrics, storage::Ledger* store, std::string database_path,
                    absl::Time started);

// The policy the node decides under: attest_policy_version, attest_policy_info{hash="sha256:..."} (1 for
// the current policy; a policy replaced by an adoption stays at 0, so `attest_policy_info == 1` is the
// current one), attest_policy_rules, attest_policy_groups, and attest_policy_updates_total{outcome=
// "adopted"} (every adoption, submitted or replicated). Set now and again by a listener on `book` at
// each adoption; `book` and `metrics` must outlive each other's use (the node owns both).
void AddPolicyMetrics(MetricsRegistry& metrics, PolicyBook& book);

// attest_policy_updates_total{outcome="refused"}: the counter a SubmitPolicy handler increments for
// each update it refuses (whatever the reason). Registers the family when it is not there yet.
Counter& RefusedPolicyUpdates(MetricsRegistry& metrics);

// GET /metrics: runs metrics->Scrape() on the job pool; 200 with the exposition text
// (kMetricsContentType), or 503 naming what could not be read (details go to the log).
void AddMetricsRoute(HttpRouter& router, MetricsRegistry* metrics);

// The version attestd was built as ("unknown" when the build did not say).
std::string_view AttestVersion();

}  // namespace attest::server

#endif  // ATTEST_SERVER_NODE_METRICS_H_
