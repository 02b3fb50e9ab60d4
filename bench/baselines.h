#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "transfer/copy_plan.h"

namespace pdserve::bench {

// Copy bandwidth in GB/s (bytes copied per second, 1e9) of memcpy over `bytes`, split over
// `threads` threads; best of repeated runs lasting at least `min_seconds`.
double MeasureMemcpyGBps(size_t bytes, int threads, double min_seconds);

// The local backend's like-for-like baseline: memcpy of exactly `ops` (offsets into a source
// region of `src_bytes` and a destination region of `dst_bytes`, both allocated and touched
// once, at construction, so the working set is the pools' and not one hot buffer), cut into
// `threads` shares by bytes the way the copy engine cuts a batch (threads <= 1: the calling
// thread alone; more: the caller plus helper threads, each copying its share back to back with
// no barrier between rounds, so no thread start or wake-up is timed). Each Measure runs for at
// least `min_seconds`; GB/s = all bytes / all time (the statistic the backend rows use).
class ScatteredMemcpy {
 public:
  ScatteredMemcpy(uint64_t src_bytes, uint64_t dst_bytes);
  ~ScatteredMemcpy();
  ScatteredMemcpy(const ScatteredMemcpy&) = delete;
  ScatteredMemcpy& operator=(const ScatteredMemcpy&) = delete;
  // GB/s, or -1 when the regions could not be allocated or `ops` is empty. `stream`: each op
  // with transfer::StreamCopy, as the local backend copies a batch above its streaming
  // threshold (transfer/stream_copy.h), instead of memcpy.
  double MeasureGBps(std::span<const transfer::CopyOp> ops, int threads, double min_seconds,
                     bool stream = false);

 private:
  class Region;
  std::unique_ptr<Region> src_, dst_;
};

// GFLOP/s of independent multiply-add chains on every thread (2 FLOPs per multiply-add): the
// compute roof the same compiler flags reach.
double MeasureFmaPeakGflops(int threads, double min_seconds);

}  // namespace pdserve::bench
