#include "server/rebuild_metrics.h"

#include <cstdint>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "consensus/text.h"

namespace attest::server {
namespace {

// A counter kept elsewhere as a running total: each scrape adds what it grew by.
class TotalMirror final {
 public:
  explicit TotalMirror(Counter* counter) : counter_(counter) {}
  void Update(uint64_t total) {
    if (total > seen_) counter_->Increment(total - seen_);
    seen_ = total;
  }

 private:
  Counter* const counter_;
  uint64_t seen_ = 0;
};

}  // namespace

void AddRebuildMetrics(MetricsRegistry& metrics, const DemandBook* demand, const RebuildBook* book,
                       const DerivationIntake* intake, storage::DerivationStore* derivations,
                       std::function<absl::Time()> clock) {
  Gauge* queue = &metrics
                      .AddGauge("attest_rebuild_queue_paths",
                                "Store paths with demand that are not known to be CONFIRMED (the rebuild queue).")
                      .Get();
  CounterFamily& requests = metrics.AddCounter(
      "attest_demand_requests_total",
      "Requests for paths short of CONFIRMED, by what the demand count made of them (counted, repeat: the same "
      "client within the window, rate_limited: over the client's budget, full: the book was full).",
      {"outcome"});
  Gauge* drvs = &metrics.AddGauge("attest_derivations", "Derivation (.drv) files held for rebuilders.").Get();
  Gauge* drv_bytes = &metrics.AddGauge("attest_derivation_bytes", "Bytes of the derivation files held.").Get();
  CounterFamily& uploads = metrics.AddCounter("attest_derivation_uploads_total",
                                              "Derivation files builders sent, by outcome.", {"outcome"});
  Gauge* leases = &metrics.AddGauge("attest_rebuild_leases", "Rebuild leases in force.").Get();
  CounterFamily& lease_requests =
      metrics.AddCounter("attest_rebuild_leases_total", "Lease requests by outcome (granted includes renewals).",
                         {"outcome"});
  CounterFamily& results =
      metrics.AddCounter("attest_rebuild_results_total", "Rebuild results rebuilders reported, by outcome.",
                         {"outcome"});

  struct Mirrors {
    Mirrors(CounterFamily& requests, CounterFamily& uploads, CounterFamily& lease_requests, CounterFamily& results)
        : counted(&requests.Labels({"counted"})),
          repeat(&requests.Labels({"repeat"})),
          rate_limited(&requests.Labels({"rate_limited"})),
          full(&requests.Labels({"full"})),
          stored(&uploads.Labels({"stored"})),
          present(&uploads.Labels({"already_present"})),
          rejected(&uploads.Labels({"rejected"})),
          granted(&lease_requests.Labels({"granted"})),
          refused(&lease_requests.Labels({"refused"})),
          built(&results.Labels({"built"})),
          failed(&results.Labels({"failed"})) {}
    absl::Mutex mu;
    TotalMirror counted, repeat, rate_limited, full, stored, present, rejected, granted, refused, built, failed;
  };
  auto mirrors = std::make_shared<Mirrors>(requests, uploads, lease_requests, results);
  metrics.AddCollector([=, clock = std::move(clock)]() -> absl::Status {
    absl::MutexLock lock(&mirrors->mu);
    const DemandStats d = demand->stats();
    queue->Set(static_cast<double>(d.paths));
    mirrors->counted.Update(d.counted);
    mirrors->repeat.Update(d.repeats);
    mirrors->rate_limited.Update(d.rate_limited);
    mirrors->full.Update(d.full);
    const DerivationIntakeStats u = intake->stats();
    mirrors->stored.Update(u.stored);
    mirrors->present.Update(u.already_present);
    mirrors->rejected.Update(u.rejected);
    const RebuildStats r = book->stats(clock());
    leases->Set(static_cast<double>(r.active_leases));
    mirrors->granted.Update(r.leases_granted);
    mirrors->refused.Update(r.leases_refused);
    mirrors->built.Update(r.built);
    mirrors->failed.Update(r.failed);
    absl::StatusOr<storage::DerivationStats> stats = derivations->GetDerivationStats();
    if (!stats.ok()) {
      return absl::Status(stats.status().code(),
                          absl::StrCat("reading the derivation statistics: ", stats.status().message()));
    }
    drvs->Set(static_cast<double>(stats->derivations));
    drv_bytes->Set(static_cast<double>(stats->content_bytes));
    return absl::OkStatus();
  });
}

}  // namespace attest::server
