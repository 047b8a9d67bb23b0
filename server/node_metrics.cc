#include "server/node_metrics.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "consensus/text.h"
#include "server/log.h"

#ifndef ATTEST_VERSION
#define ATTEST_VERSION "unknown"
#endif

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// The size of `path`, 0 when it does not exist (no WAL between checkpoints is normal).
absl::StatusOr<double> FileBytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return static_cast<double>(st.st_size);
  if (errno == ENOENT) return 0.0;
  return absl::FailedPreconditionError(Cat("cannot stat ", path, ": ", std::strerror(errno)));
}

CounterFamily& PolicyUpdates(MetricsRegistry& metrics) {
  return metrics.AddCounter("attest_policy_updates_total",
                            "Policy updates adopted (submitted or replicated) and submitted updates refused.",
                            {"outcome"});
}

}  // namespace

std::string_view AttestVersion() { return ATTEST_VERSION; }

void AddNodeMetrics(MetricsRegistry& metrics, storage::Ledger* store, std::string database_path,
                    absl::Time started) {
  metrics.AddGauge("attest_build_info", "Always 1; the version attestd was built as is its label.", {"version"})
      .Labels({AttestVersion()})
      .Set(1);
  metrics.AddGauge("attest_process_start_time_seconds", "Unix time the node was opened.")
      .Get()
      .Set(absl::ToDoubleSeconds(started - absl::UnixEpoch()));
  Gauge* attestations = &metrics
                             .AddGauge("attest_attestations",
                                       "Attestations stored (counted and observed, submitted and replicated).")
                             .Get();
  Gauge* paths = &metrics.AddGauge("attest_store_paths", "Store paths with at least one stored attestation.").Get();
  Gauge* disputes = &metrics.AddGauge("attest_disputes", "Disputes recorded, in any state.").Get();
  Gauge* open_disputes = &metrics
                              .AddGauge("attest_disputes_open",
                                        "Disputes without a maintainer's statement in force (or reopened by a new "
                                        "competing fingerprint).")
                              .Get();
  Gauge* resolutions =
      &metrics.AddGauge("attest_resolutions", "Maintainers' resolution statements held (submitted and replicated).")
           .Get();
  GaugeFamily& bytes = metrics.AddGauge("attest_database_bytes",
                                        "Size on disk of the SQLite database file and its write-ahead log.", {"file"});
  Gauge* database_bytes = &bytes.Labels({"database"});
  Gauge* wal_bytes = &bytes.Labels({"wal"});
  metrics.AddCollector([=, database_path = std::move(database_path)]() -> absl::Status {
    absl::StatusOr<storage::StoreStats> stats = store->Stats();
    if (!stats.ok()) {
      return absl::Status(stats.status().code(), Cat("reading the store's statistics: ", StdView(stats.status().message())));
    }
    attestations->Set(static_cast<double>(stats->attestations));
    paths->Set(static_cast<double>(stats->paths));
    disputes->Set(static_cast<double>(stats->disputes));
    open_disputes->Set(static_cast<double>(stats->open_disputes));
    resolutions->Set(static_cast<double>(stats->resolutions));
    absl::StatusOr<double> database = FileBytes(database_path);
    if (!database.ok()) return database.status();
    absl::StatusOr<double> wal = FileBytes(Cat(database_path, "-wal"));
    if (!wal.ok()) return wal.status();
    database_bytes->Set(*database);
    wal_bytes->Set(*wal);
    return absl::OkStatus();
  });
}

void AddPolicyMetrics(MetricsRegistry& metrics, PolicyBook& book) {
  Gauge* version = &metrics.AddGauge("attest_policy_version", "Version of the policy the node decides under.").Get();
  GaugeFamily* info = &metrics.AddGauge(
      "attest_policy_info", "1 for the hash of the policy the node decides under; 0 for policies it replaced.",
      {"hash"});
  Gauge* rules = &metrics.AddGauge("attest_policy_rules", "Per-package rules in the current policy.").Get();
  Gauge* groups = &metrics.AddGauge("attest_policy_groups", "Threshold groups in the current policy.").Get();
  Counter* adopted = &PolicyUpdates(metrics).Labels({"adopted"});
  RefusedPolicyUpdates(metrics);  // present at 0 before the first refusal
  auto show = [=](const consensus::Policy& policy) {
    version->Set(static_cast<double>(policy.version()));
    info->Labels({policy.Hash()}).Set(1);
    rules->Set(static_cast<double>(policy.rules().size()));
    groups->Set(static_cast<double>(policy.groups().size()));
  };
  show(*book.current());
  // Listeners run one adoption at a time (PolicyBook serialises them), so the old series is cleared
  // before the new one is set and never two are at 1 after an adoption.
  book.AddListener([=](const consensus::Policy& now, const consensus::Policy& before) {
    info->Labels({before.Hash()}).Set(0);
    show(now);
    adopted->Increment();
  });
}

Counter& RefusedPolicyUpdates(MetricsRegistry& metrics) { return PolicyUpdates(metrics).Labels({"refused"}); }

void AddMetricsRoute(HttpRouter& router, MetricsRegistry* metrics) {
  router.Exact("/metrics", [metrics](const HttpRequest&) {
    return HttpReply::Later([metrics] {
      absl::StatusOr<std::string> text = metrics->Scrape();
      if (!text.ok()) {
        LogWarning(Cat("metrics scrape failed: ", StdView(text.status().message())));
        return HttpResponse::Text(503, "metrics unavailable: the node cannot read its state right now (see its log)");
      }
      HttpResponse response;
      response.content_type = std::string(kMetricsContentType);
      response.body = *std::move(text);
      return response;
    });
  });
}

}  // namespace attest::server
