#include "bench/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace pdserve::bench {
namespace {

double Mean(std::span<const double> v) {
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

// An index in [0, n) from one 64-bit draw (multiply-shift): the same on every standard library,
// unlike std::uniform_int_distribution, so intervals do not change with the toolchain.
size_t Draw(std::mt19937_64& rng, size_t n) {
  return static_cast<size_t>((static_cast<unsigned __int128>(rng()) * n) >> 64);
}

double ResampledMean(std::span<const double> v, std::mt19937_64& rng) {
  double sum = 0;
  for (size_t i = 0; i < v.size(); ++i) sum += v[Draw(rng, v.size())];
  return sum / static_cast<double>(v.size());
}

// Linear interpolation between order statistics of sorted `v`, q in [0, 1].
double Quantile(const std::vector<double>& v, double q) {
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

// The median as loadgen::Percentile(50) computes it (interpolated), of a copy of `v`.
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return Quantile(v, 0.5);
}

double ResampledMedian(std::span<const double> v, std::mt19937_64& rng,
                       std::vector<double>& scratch) {
  scratch.resize(v.size());
  for (double& x : scratch) x = v[Draw(rng, v.size())];
  std::sort(scratch.begin(), scratch.end());
  return Quantile(scratch, 0.5);
}

double ResampledQuantile(std::span<const double> v, double q, std::mt19937_64& rng,
                         std::vector<double>& scratch) {
  scratch.resize(v.size());
  for (double& x : scratch) x = v[Draw(rng, v.size())];
  std::sort(scratch.begin(), scratch.end());
  return Quantile(scratch, q);
}

// The ratio of `statistic` over both samples, and its percentile bootstrap interval.
template <typename Statistic, typename Resampled>
Ratio BootstrapRatio(std::span<const double> baseline, std::span<const double> other,
                     const BootstrapOptions& options, Statistic statistic, Resampled resampled) {
  if (baseline.size() < 2 || other.size() < 2 || options.resamples < 1) return {NAN, NAN, NAN};
  const double denominator = statistic(baseline);
  if (!(denominator > 0)) return {NAN, NAN, NAN};
  std::mt19937_64 rng(options.seed);
  std::vector<double> ratios(static_cast<size_t>(options.resamples));
  for (double& r : ratios) {
    const double o = resampled(other, rng);
    const double b = resampled(baseline, rng);
    // A resample of a sample with a zero in it can have a zero statistic: an infinite ratio
    // sorts to the top, where only an interval that already says "unbounded" reaches it.
    r = b > 0 ? o / b : INFINITY;
  }
  std::sort(ratios.begin(), ratios.end());
  const double tail = (1 - options.level) / 2;
  return {statistic(other) / denominator, Quantile(ratios, tail), Quantile(ratios, 1 - tail)};
}

}  // namespace

bool Ratio::Valid() const { return !std::isnan(estimate) && !std::isnan(lo) && !std::isnan(hi); }

Ratio BootstrapMeanRatio(std::span<const double> baseline, std::span<const double> other,
                         const BootstrapOptions& options) {
  return BootstrapRatio(baseline, other, options, Mean,
                        [](std::span<const double> v, std::mt19937_64& rng) {
                          return ResampledMean(v, rng);
                        });
}

Ratio BootstrapQuantileRatio(std::span<const double> baseline, std::span<const double> other,
                             double q, const BootstrapOptions& options) {
  if (!(q >= 0 && q <= 1)) return {NAN, NAN, NAN};
  std::vector<double> scratch;
  return BootstrapRatio(
      baseline, other, options,
      [q](std::span<const double> v) {
        std::vector<double> sorted(v.begin(), v.end());
        std::sort(sorted.begin(), sorted.end());
        return Quantile(sorted, q);
      },
      [q, &scratch](std::span<const double> v, std::mt19937_64& rng) {
        return ResampledQuantile(v, q, rng, scratch);
      });
}

bool Difference::Valid() const {
  return !std::isnan(estimate) && !std::isnan(lo) && !std::isnan(hi);
}

Difference BootstrapMeanDifference(std::span<const double> baseline,
                                       std::span<const double> other,
                                       const BootstrapOptions& options) {
  if (baseline.size() < 2 || other.size() < 2 || options.resamples < 1) {
    return {NAN, NAN, NAN};
  }
  std::mt19937_64 rng(options.seed);
  std::vector<double> diffs(static_cast<size_t>(options.resamples));
  for (double& d : diffs) d = ResampledMean(other, rng) - ResampledMean(baseline, rng);
  std::sort(diffs.begin(), diffs.end());
  const double tail = (1 - options.level) / 2;
  return {Mean(other) - Mean(baseline), Quantile(diffs, tail), Quantile(diffs, 1 - tail)};
}

Difference BootstrapMean(std::span<const double> values, const BootstrapOptions& options) {
  if (values.size() < 2 || options.resamples < 1) return {NAN, NAN, NAN};
  std::mt19937_64 rng(options.seed);
  std::vector<double> means(static_cast<size_t>(options.resamples));
  for (double& m : means) m = ResampledMean(values, rng);
  std::sort(means.begin(), means.end());
  const double tail = (1 - options.level) / 2;
  return {Mean(values), Quantile(means, tail), Quantile(means, 1 - tail)};
}

Difference BootstrapQuantile(std::span<const double> values, double q,
                             const BootstrapOptions& options) {
  if (values.size() < 2 || options.resamples < 1 || !(q >= 0 && q <= 1)) return {NAN, NAN, NAN};
  std::mt19937_64 rng(options.seed);
  std::vector<double> stats(static_cast<size_t>(options.resamples)), scratch(values.size());
  for (double& s : stats) {
    for (double& x : scratch) x = values[Draw(rng, values.size())];
    std::sort(scratch.begin(), scratch.end());
    s = Quantile(scratch, q);
  }
  std::sort(stats.begin(), stats.end());
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  const double tail = (1 - options.level) / 2;
  return {Quantile(sorted, q), Quantile(stats, tail), Quantile(stats, 1 - tail)};
}

Difference BootstrapMedianDifference(std::span<const double> baseline,
                                     std::span<const double> other,
                                     const BootstrapOptions& options) {
  if (baseline.size() < 2 || other.size() < 2 || options.resamples < 1) {
    return {NAN, NAN, NAN};
  }
  std::mt19937_64 rng(options.seed);
  std::vector<double> diffs(static_cast<size_t>(options.resamples)), scratch;
  for (double& d : diffs) {
    const double o = ResampledMedian(other, rng, scratch);
    d = o - ResampledMedian(baseline, rng, scratch);
  }
  std::sort(diffs.begin(), diffs.end());
  const double tail = (1 - options.level) / 2;
  return {Median({other.begin(), other.end()}) - Median({baseline.begin(), baseline.end()}),
          Quantile(diffs, tail), Quantile(diffs, 1 - tail)};
}

}  // namespace pdserve::bench
