#pragma once

#include <cstddef>

namespace pdserve::bench {

// Copy bandwidth in GB/s (bytes copied per second, 1e9) of memcpy over `bytes`, split over
// `threads` threads; best of repeated runs lasting at least `min_seconds`.
double MeasureMemcpyGBps(size_t bytes, int threads, double min_seconds);

// GFLOP/s of independent multiply-add chains on every thread (2 FLOPs per multiply-add): the
// compute roof the same compiler flags reach.
double MeasureFmaPeakGflops(int threads, double min_seconds);

}  // namespace pdserve::bench
