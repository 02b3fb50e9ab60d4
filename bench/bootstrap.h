#pragma once

// Confidence intervals for the benchmarks' comparisons: the percentile bootstrap of a
// difference of means (or of medians) between two independent samples (per-request values of
// two cells). Each resample draws every sample with replacement from itself, so the interval
// reflects the request-to-request spread of both cells; the seed is fixed, so a report drawn
// again from the same files gives the same intervals.

#include <cstdint>
#include <span>

namespace pdserve::bench {

struct BootstrapOptions {
  int resamples = 2000;
  double level = 0.95;  // central interval: the (1 - level) / 2 and (1 + level) / 2 quantiles
  uint64_t seed = 1;
};

// statistic(other) - statistic(baseline) and its interval. All NaN (Valid() false) when either
// sample has fewer than 2 values: one value says nothing about the spread.
struct Difference {
  double estimate = 0;
  double lo = 0;
  double hi = 0;
  bool Valid() const;
  // The interval contains 0: no difference within noise.
  bool SpansZero() const { return lo <= 0 && hi >= 0; }
};

using MeanDifference = Difference;

Difference BootstrapMeanDifference(std::span<const double> baseline,
                                       std::span<const double> other,
                                       const BootstrapOptions& options = {});

// One sample's statistic and its interval (estimate, lo, hi in a Difference): the mean, or the
// q-quantile (q in [0, 1], interpolated as loadgen::Percentile). With few values a high quantile
// is a near-maximum and its interval says so by its width.
Difference BootstrapMean(std::span<const double> values, const BootstrapOptions& options = {});
Difference BootstrapQuantile(std::span<const double> values, double q,
                             const BootstrapOptions& options = {});

// median(other) - median(baseline): for latency percentiles, which a few slow requests move
// less than they move the mean.
Difference BootstrapMedianDifference(std::span<const double> baseline,
                                     std::span<const double> other,
                                     const BootstrapOptions& options = {});

// statistic(other) / statistic(baseline) and its interval: for "how many times slower", where
// a difference in ms would mean different things at 20 ms and at 2 s. Each resample draws both
// samples independently from themselves, as the differences do. All NaN (Valid() false) when
// either sample has fewer than 2 values or the baseline's statistic is not > 0 (no ratio to
// take).
struct Ratio {
  double estimate = 0;
  double lo = 0;
  double hi = 0;
  bool Valid() const;
  // The interval contains 1: no difference within noise.
  bool SpansOne() const { return lo <= 1 && hi >= 1; }
};
Ratio BootstrapMeanRatio(std::span<const double> baseline, std::span<const double> other,
                         const BootstrapOptions& options = {});
// The q-quantile's ratio (q = 0.5: the medians'), quantiles interpolated as BootstrapQuantile.
Ratio BootstrapQuantileRatio(std::span<const double> baseline, std::span<const double> other,
                             double q, const BootstrapOptions& options = {});

}  // namespace pdserve::bench
