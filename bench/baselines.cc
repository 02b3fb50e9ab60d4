#include "bench/baselines.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/parallel_for.h"
#include "transfer/stream_copy.h"

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

// Page-aligned anonymous memory, every page touched (no page fault is timed).
class ScatteredMemcpy::Region {
 public:
  explicit Region(uint64_t bytes, int fill) : bytes_(std::max<uint64_t>(bytes, 1)) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
    if (data_ != nullptr) std::memset(data_, fill, bytes_);
  }
  ~Region() {
    if (data_ != nullptr) munmap(data_, bytes_);
  }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
  std::byte* data() const { return data_; }

 private:
  uint64_t bytes_;
  std::byte* data_;
};

ScatteredMemcpy::ScatteredMemcpy(uint64_t src_bytes, uint64_t dst_bytes)
    : src_(std::make_unique<Region>(src_bytes, 1)), dst_(std::make_unique<Region>(dst_bytes, 0)) {}

ScatteredMemcpy::~ScatteredMemcpy() = default;

double ScatteredMemcpy::MeasureGBps(std::span<const transfer::CopyOp> ops, int threads,
                                    double min_seconds, bool stream) {
  const Region& src = *src_;
  const Region& dst = *dst_;
  if (src.data() == nullptr || dst.data() == nullptr || ops.empty()) return -1;
  const std::vector<std::vector<transfer::CopyOp>> shares = transfer::CutShares(ops, threads);
  auto copy = [&](const std::vector<transfer::CopyOp>& share) {
    for (const transfer::CopyOp& op : share) {
      if (stream) {
        transfer::StreamCopy(dst.data() + op.dst, src.data() + op.src, op.bytes);
      } else {
        std::memcpy(dst.data() + op.dst, src.data() + op.src, op.bytes);
      }
    }
    if (stream) transfer::StoreFence();
  };
  // Each thread copies its share over and over until the deadline, with no barrier between
  // rounds: the most memcpy gets out of these threads, as the backend's copy threads run with
  // several batches queued. (A barrier per round would time one wake-up per round, and the
  // backend, which overlaps batches, would look faster than memcpy.)
  for (const auto& share : shares) copy(share);  // warm-up: fault in, fill caches
  const int n = static_cast<int>(shares.size());
  std::vector<uint64_t> share_bytes(n), rounds(n, 0);
  for (int i = 0; i < n; ++i) share_bytes[i] = transfer::TotalBytes(shares[i]);
  std::atomic<int> ready{0};
  std::atomic<int64_t> start{0};
  auto run = [&](int i) {
    ready.fetch_add(1);
    while (start.load() == 0) std::this_thread::yield();
    const int64_t deadline = start.load() + static_cast<int64_t>(min_seconds * 1e9);
    do {
      copy(shares[i]);
      ++rounds[i];
    } while (rounds[i] < 3 || MonotonicNanos() < deadline);
  };
  const int64_t t0 = [&] {
    std::vector<std::jthread> helpers;
    for (int i = 1; i < n; ++i) helpers.emplace_back(run, i);
    while (ready.load() < n - 1) std::this_thread::yield();
    const int64_t begin = MonotonicNanos();
    start.store(begin);
    run(0);
    return begin;
  }();  // helpers joined here
  const double seconds = (MonotonicNanos() - t0) / 1e9;
  uint64_t copied = 0;
  for (int i = 0; i < n; ++i) copied += rounds[i] * share_bytes[i];
  return copied / seconds / 1e9;
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
