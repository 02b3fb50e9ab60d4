#include "bench/baselines.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/clock.h"
#include "common/parallel_for.h"

namespace pdserve::bench {

double MeasureMemcpyGBps(size_t bytes, int threads, double min_seconds) {
  if (threads <= 0) threads = DefaultThreads();
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  const size_t chunk = (bytes + threads - 1) / threads;
  double best = 0;
  const int64_t deadline = MonotonicNanos() + static_cast<int64_t>(min_seconds * 1e9);
  int runs = 0;
  while (runs < 3 || MonotonicNanos() < deadline) {
    const int64_t t0 = MonotonicNanos();
    ParallelFor(threads, threads, [&](int t) {
      const size_t off = t * chunk;
      if (off < bytes) std::memcpy(dst.data() + off, src.data() + off, std::min(chunk, bytes - off));
    });
    const double s = (MonotonicNanos() - t0) / 1e9;
    best = std::max(best, bytes / s / 1e9);
    ++runs;
  }
  return best;
}

namespace {
// Eight independent chains of 8-wide vectors keep the FP pipes busy whatever the ISA level.
float FmaKernel(long iterations, float seed) {
  constexpr int kChains = 8, kWidth = 8;
  float acc[kChains][kWidth];
  for (int c = 0; c < kChains; ++c)
    for (int w = 0; w < kWidth; ++w) acc[c][w] = seed + c * 0.01f + w * 0.001f;
  const float a = 0.999999f, b = 1e-7f;
  for (long i = 0; i < iterations; ++i) {
    for (int c = 0; c < kChains; ++c)
      for (int w = 0; w < kWidth; ++w) acc[c][w] = acc[c][w] * a + b;
  }
  float s = 0;
  for (int c = 0; c < kChains; ++c)
    for (int w = 0; w < kWidth; ++w) s += acc[c][w];
  return s;
}
}  // namespace

double MeasureFmaPeakGflops(int threads, double min_seconds) {
  if (threads <= 0) threads = DefaultThreads();
  long iterations = 1 << 20;
  double best = 0;
  const int64_t deadline = MonotonicNanos() + static_cast<int64_t>(min_seconds * 1e9);
  volatile float sink = 0;
  int runs = 0;
  while (runs < 3 || MonotonicNanos() < deadline) {
    const int64_t t0 = MonotonicNanos();
    std::vector<float> partial(threads);
    ParallelFor(threads, threads, [&](int t) { partial[t] = FmaKernel(iterations, t * 0.5f); });
    const double s = (MonotonicNanos() - t0) / 1e9;
    for (float p : partial) sink = sink + p;
    best = std::max(best, 2.0 * 64 * iterations * threads / s / 1e9);
    if (s < 0.05) iterations *= 2;
    ++runs;
  }
  return best;
}

}  // namespace pdserve::bench
