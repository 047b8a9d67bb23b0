#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>
#include "consensus/text.h"


namespace attest::server {
namespace {

using consensus::Cat;

// Appends the concatenation of `args` (absl::StrAppend that also takes std::string_view).
template <typename... Args>
void Append(std::string& out, const Args&... args) {
  out += Cat(args...);
}

// Registration mistakes are bugs in the node, found by the first test that builds it.
[[noreturn]] void RegistrationBug(std::string_view message) {
  std::fprintf(stderr, "metrics registry: %.*s\n", static_cast<int>(message.size()), message.data());
  std::abort();
}

bool IsMetricName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
  });
}

void AtomicAdd(std::atomic<double>& target, double delta) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::unique_ptr<Counter> NewMember(const std::vector<double>&, Counter*) { return std::make_unique<Counter>(); }
std::unique_ptr<Gauge> NewMember(const std::vector<double>&, Gauge*) { return std::make_unique<Gauge>(); }
std::unique_ptr<Histogram> NewMember(const std::vector<double>& bounds, Histogram*) {
  return std::make_unique<Histogram>(bounds);
}

void AppendSample(std::string& out, std::string_view name, std::string_view labels, std::string_view value) {
  Append(out, name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ", value, "\n");
}

void RenderMember(std::string& out, const MetricFamilyBase& family, std::string_view labels, const Counter& counter) {
  AppendSample(out, family.name(), labels, Cat(counter.value()));
}

void RenderMember(std::string& out, const MetricFamilyBase& family, std::string_view labels, const Gauge& gauge) {
  AppendSample(out, family.name(), labels, FormatMetricValue(gauge.value()));
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Plain decimals for the usual magnitudes (timestamps, byte counts, latencies) so people can read
  // them; exponents only outside.
  const double magnitude = std::fabs(value);
  const bool fixed = magnitude == 0 || (magnitude >= 1e-6 && magnitude < 1e15);
  char buffer[64];
  auto [end, ec] = fixed ? std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed)
                         : std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (ec != std::errc()) return "NaN";  // cannot happen: at most 15 + 1 + 22 characters
  return std::string(buffer, end);
}

void Gauge::Add(double delta) { AtomicAdd(value_, delta); }

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()), counts_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end()) {
    RegistrationBug("histogram bounds must be strictly ascending");
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // The first bucket whose upper bound holds the value ("le": less than or equal).
  const size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot snapshot;
  snapshot.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative[i] = running;
  }
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

namespace {

// `labels(extra)` renders the member's labels plus `extra`.
void RenderMember(std::string& out, const MetricFamilyBase& family, const Histogram& histogram,
                  const std::function<std::string(std::string_view)>& labels) {
  const Histogram::Snapshot snapshot = histogram.Read();
  const std::string bucket_name = Cat(family.name(), "_bucket");
  for (size_t i = 0; i < snapshot.cumulative.size(); ++i) {
    const std::string le = i < histogram.bounds().size() ? FormatMetricValue(histogram.bounds()[i]) : "+Inf";
    AppendSample(out, bucket_name, labels(Cat("le=\"", le, "\"")), Cat(snapshot.cumulative[i]));
  }
  const std::string plain = labels({});
  AppendSample(out, Cat(family.name(), "_sum"), plain, FormatMetricValue(snapshot.sum));
  AppendSample(out, Cat(family.name(), "_count"), plain, Cat(snapshot.cumulative.back()));
}

}  // namespace

MetricFamilyBase::MetricFamilyBase(std::string name, std::string help, MetricType type,
                                   std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), type_(type), label_names_(std::move(label_names)) {
  if (!IsMetricName(name_)) RegistrationBug(Cat("not a metric name: ", name_));
  for (const std::string& label : label_names_) {
    if (!IsMetricName(label) || label.find(':') != std::string::npos || label.substr(0, 2) == "__" ||
        (type_ == MetricType::kHistogram && label == "le")) {
      RegistrationBug(Cat("not a usable label name of ", name_, ": ", label));
    }
  }
}

std::string MetricFamilyBase::RenderLabels(const std::vector<std::string>& values, std::string_view extra) const {
  std::string out;
  for (size_t i = 0; i < label_names_.size(); ++i) {
    Append(out, i == 0 ? "" : ",", label_names_[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra.empty()) Append(out, out.empty() ? "" : ",", extra);
  return out;
}

void MetricFamilyBase::Render(std::string& out) const {
  Append(out, "# HELP ", name_, " ", EscapeHelp(help_), "\n# TYPE ", name_, " ", TypeName(type_), "\n");
  RenderMembers(out);
}

template <typename Metric>
Metric& MetricFamily<Metric>::Labels(std::span<const std::string_view> values) {
  if (values.size() != label_names().size()) {
    RegistrationBug(Cat(name(), " has ", label_names().size(), " labels, given ", values.size(), " values"));
  }
  std::vector<std::string> key(values.begin(), values.end());
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Metric>& member = members_[std::move(key)];
  if (member == nullptr) member = NewMember(bounds_, static_cast<Metric*>(nullptr));
  return *member;
}

template <typename Metric>
void MetricFamily<Metric>::RenderMembers(std::string& out) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [values, member] : members_) {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      // A named reference: clang before 16 cannot capture a structured binding.
      const auto& labels = values;
      RenderMember(out, *this, *member,
                   [this, &labels](std::string_view extra) { return RenderLabels(labels, extra); });
    } else {
      RenderMember(out, *this, RenderLabels(values), *member);
    }
  }
}

template class MetricFamily<Counter>;
template class MetricFamily<Gauge>;
template class MetricFamily<Histogram>;

template <typename Family>
Family& MetricsRegistry::Add(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
                             std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  for (const auto& family : families_) {
    if (family->name() != name) continue;
    auto* same = dynamic_cast<Family*>(family.get());
    if (same == nullptr || family->type() != type || family->label_names() != label_names) {
      RegistrationBug(Cat(name, " is registered twice with different types or labels"));
    }
    return *same;
  }
  auto family = std::make_unique<Family>(std::move(name), std::move(help), type, std::move(label_names),
                                         std::move(bounds));
  Family& added = *family;
  families_.push_back(std::move(family));
  // A family without labels has exactly one member, shown from the start.
  if (added.label_names().empty()) added.Get();
  return added;
}

CounterFamily& MetricsRegistry::AddCounter(std::string name, std::string help, std::vector<std::string> label_names) {
  return Add<CounterFamily>(std::move(name), std::move(help), MetricType::kCounter, std::move(label_names), {});
}

GaugeFamily& MetricsRegistry::AddGauge(std::string name, std::string help, std::vector<std::string> label_names) {
  return Add<GaugeFamily>(std::move(name), std::move(help), MetricType::kGauge, std::move(label_names), {});
}

HistogramFamily& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                               std::vector<std::string> label_names, std::span<const double> bounds) {
  return Add<HistogramFamily>(std::move(name), std::move(help), MetricType::kHistogram, std::move(label_names),
                              std::vector<double>(bounds.begin(), bounds.end()));
}

void MetricsRegistry::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& family : families_) family->Render(out);
  return out;
}

absl::StatusOr<std::string> MetricsRegistry::Scrape() {
  absl::MutexLock scrape(&scrape_mu_);
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
  }
  absl::Status first_error;
  for (const Collector& collect : collectors) {
    absl::Status status = collect();
    if (!status.ok() && first_error.ok()) first_error = std::move(status);
  }
  if (!first_error.ok()) return first_error;
  return Render();
}

}  // namespace attest::server
