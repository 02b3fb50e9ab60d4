#pragma once

// The three Prometheus value kinds, as single series (one label set). Families of them, keyed by
// label values, live in metric_family.h; a Registry (registry.h) owns the families.
//
// Hot path: every update is a relaxed atomic on the series itself: no lock, no allocation. A
// caller resolves the series once (MetricFamily::Get) and keeps the pointer, which stays valid as
// long as the registry. Readers (the serializer) may see a histogram mid-update: its buckets are
// read one by one, so a scrape during an Observe can miss that one observation in some buckets;
// _count is derived from the buckets, so it always equals the +Inf bucket (Prometheus's
// histogram_quantile relies on that), and everything is exact once updates stop.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace pdserve::metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// Monotonic: only ever grows (Prometheus's rate() treats a drop as a restart).
class Counter {
 public:
  // `amount` < 0 or NaN is ignored: a counter that goes down would read as a process restart.
  void Inc(double amount = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Upper bounds of a histogram's finite buckets, strictly increasing (+Inf is implicit).
using BucketBounds = std::vector<double>;
// InvalidArgument for an empty list, a NaN or infinite bound, or bounds not strictly increasing.
absl::Status CheckBucketBounds(std::span<const double> bounds);

class Histogram {
 public:
  // `bounds` must pass CheckBucketBounds (the family checked them).
  explicit Histogram(const BucketBounds& bounds);

  // Counts `value` in the first bucket whose bound is >= value (Prometheus's `le`); NaN is
  // ignored (it belongs to no bucket and would poison _sum).
  void Observe(double value);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (= count)
    double sum = 0;
    uint64_t count() const { return cumulative.empty() ? 0 : cumulative.back(); }
  };
  Snapshot Read() const;
  const BucketBounds& bounds() const { return bounds_; }

 private:
  const BucketBounds bounds_;
  // Per bucket, not cumulative (one increment per Observe); the last one is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
};

}  // namespace pdserve::metrics
