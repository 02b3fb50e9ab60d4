#pragma once

// A metric family: one name, help text, type and list of label names, and its series, one per
// combination of label values (Prometheus's "metric family" / client libraries' "vector").
//
// Use: a Registry (registry.h) creates families; Get({"value-a", "value-b"}) returns the series
// for those label values, creating it at first use. The pointer stays valid as long as the
// registry: resolve it once, off the hot path, and update it lock-free. Get takes the family's
// own lock (never a registry-wide one). Label values may come from other processes (a worker's
// finish reason, a transport's name): they are bounded in size and a family holds at most
// kMaxSeries series, so a hostile peer cannot grow a scrape without bound.

#include <cstddef>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "metrics/metric_types.h"

namespace pdserve::metrics {

inline constexpr size_t kMaxSeries = 1000;  // per family
inline constexpr size_t kMaxLabelValueBytes = 256;

// One series as the serializer sees it: label values in the family's label-name order.
struct SeriesSnapshot {
  std::vector<std::string> label_values;
  double value = 0;                              // counters and gauges
  std::optional<Histogram::Snapshot> histogram;  // histograms
};

struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<std::string> label_names;
  BucketBounds bounds;                 // histograms
  std::vector<SeriesSnapshot> series;  // ordered by label values
};

// What every family shares; the Registry holds families through this.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names, BucketBounds bounds);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // A consistent list of the series (each read as metric_types.h says).
  virtual FamilySnapshot Snapshot() const = 0;

 protected:
  // InvalidArgument for the wrong number of values or one over kMaxLabelValueBytes.
  absl::Status CheckValues(std::span<const absl::string_view> values) const;
  FamilySnapshot Header() const;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  const BucketBounds bounds_;
};

// T is Counter, Gauge or Histogram (explicitly instantiated in metric_family.cc).
template <typename T>
class Family final : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;

  // The series for `values` (one per label name, in order), created at first use.
  // InvalidArgument as CheckValues; ResourceExhausted past kMaxSeries series.
  absl::StatusOr<T*> Get(std::span<const absl::string_view> values) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<T*> Get(std::initializer_list<absl::string_view> values) {
    return Get(std::span<const absl::string_view>(values.begin(), values.size()));
  }
  FamilySnapshot Snapshot() const ABSL_LOCKS_EXCLUDED(mu_) override;

 private:
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>, std::less<>> series_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

}  // namespace pdserve::metrics
