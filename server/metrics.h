// MetricsRegistry: the node's metrics, rendered in the Prometheus text exposition format 0.0.4.
//
// A registry holds families (counters, gauges, histograms), each with a name, a help text and fixed
// label names; a family's members are its label-value combinations. Names follow Prometheus practice:
// prefixed `attest_`, units in the name (`_seconds`, `_bytes`), counters ending in `_total`.
//
// Hot path. Finding a member (`Labels`) takes the family's mutex, so a component resolves the members
// it writes once (in its constructor, or once per batch) and keeps the pointers, which stay valid as
// long as the registry lives. Writing a member (`Counter::Increment`, `Gauge::Set`,
// `Histogram::Observe`) is a few relaxed atomic operations, never a lock.
//
// Values that live elsewhere (store statistics, the database's size, replication progress) are read
// at scrape time by collectors: `Scrape` runs them, then renders.
//
// Thread-safe: everything may be called from any thread. Registering the same name twice with the same
// type and label names returns the existing family; with another type or other label names is a bug
// and aborts.
#ifndef ATTEST_SERVER_METRICS_H_
#define ATTEST_SERVER_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace attest::server {

// Only goes up (or is reset by a restart).
class Counter final {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down, or is set from elsewhere at scrape time.
class Gauge final {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted in fixed buckets (upper bounds, ascending), plus their sum. Rendered cumulative,
// with `+Inf` and `_count` equal to the number of observations.
class Histogram final {
 public:
  explicit Histogram(std::span<const double> bounds);

  void Observe(double value);
  void ObserveDuration(absl::Duration duration) { Observe(absl::ToDoubleSeconds(duration)); }

  struct Snapshot final {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
  };
  Snapshot Read() const;
  std::span<const double> bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  // Per bucket (not cumulative), the last one for values above every bound.
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Buckets for latencies from half a millisecond to ten seconds.
inline constexpr double kLatencyBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};

enum class MetricType { kCounter, kGauge, kHistogram };

// What the families have in common; internal to the registry.
class MetricFamilyBase {
 public:
  MetricFamilyBase(std::string name, std::string help, MetricType type, std::vector<std::string> label_names);
  virtual ~MetricFamilyBase() = default;
  MetricFamilyBase(const MetricFamilyBase&) = delete;
  MetricFamilyBase& operator=(const MetricFamilyBase&) = delete;

  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Appends the family's HELP, TYPE and samples.
  void Render(std::string& out) const;

 protected:
  // Appends the samples of every member, ordered by label values.
  virtual void RenderMembers(std::string& out) const = 0;
  // `a="x",b="y"` for these values of the label names, plus `extra` (a rendered `le="..."`) if given.
  std::string RenderLabels(const std::vector<std::string>& values, std::string_view extra = {}) const;

 private:
  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
};

template <typename Metric>
class MetricFamily final : public MetricFamilyBase {
 public:
  MetricFamily(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
               std::vector<double> bounds = {})
      : MetricFamilyBase(std::move(name), std::move(help), type, std::move(label_names)), bounds_(std::move(bounds)) {}

  // The member with these label values (as many as the family has label names, in their order),
  // created at zero on first use. The reference stays valid while the registry lives.
  Metric& Labels(std::initializer_list<std::string_view> values) {
    return Labels(std::span<const std::string_view>(values.begin(), values.size()));
  }
  Metric& Labels(std::span<const std::string_view> values);
  // The only member of a family without labels.
  Metric& Get() { return Labels({}); }

 private:
  void RenderMembers(std::string& out) const override;

  const std::vector<double> bounds_;  // histograms only
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> members_ ABSL_GUARDED_BY(mu_);
};

extern template class MetricFamily<Counter>;
extern template class MetricFamily<Gauge>;
extern template class MetricFamily<Histogram>;
using CounterFamily = MetricFamily<Counter>;
using GaugeFamily = MetricFamily<Gauge>;
using HistogramFamily = MetricFamily<Histogram>;

class MetricsRegistry final {
 public:
  // Runs at scrape time, before rendering; sets gauges from state kept elsewhere. Errors fail the
  // scrape (they are passed on by Scrape).
  using Collector = std::function<absl::Status()>;

  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Families render in the order they were added. `help` is one line of plain text.
  CounterFamily& AddCounter(std::string name, std::string help, std::vector<std::string> label_names = {});
  GaugeFamily& AddGauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  // `bounds`: the buckets' upper bounds, ascending (kLatencyBuckets for latencies in seconds).
  HistogramFamily& AddHistogram(std::string name, std::string help, std::vector<std::string> label_names,
                                std::span<const double> bounds);

  void AddCollector(Collector collector);

  // The exposition text of every family as it is now (collectors are not run).
  std::string Render() const;
  // Runs the collectors, one scrape at a time, then renders. The first collector error is returned
  // (with the code it had), after running the rest.
  absl::StatusOr<std::string> Scrape();

 private:
  template <typename Family>
  Family& Add(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
              std::vector<double> bounds);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<MetricFamilyBase>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
  absl::Mutex scrape_mu_;  // collectors of two scrapes do not interleave
};

// The content type of the exposition format.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// A label value escaped for the exposition format (backslash, double quote and newline).
std::string EscapeLabelValue(std::string_view value);
// A sample value as the exposition format writes it: shortest round-trip form, "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double value);

}  // namespace attest::server

#endif  // ATTEST_SERVER_METRICS_H_
