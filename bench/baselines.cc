#include "bench/baselines.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
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

// Page-aligned anonymous memory, every page touched (no page fault is timed).
class Region {
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

// Cuts `ops` into `shares` pieces of equal bytes (the copy engine's rule).
std::vector<std::vector<transfer::CopyOp>> CutShares(std::span<const transfer::CopyOp> ops,
                                                     int shares) {
  std::vector<std::vector<transfer::CopyOp>> out(1);
  if (shares <= 1) {
    out[0].assign(ops.begin(), ops.end());
    return out;
  }
  const uint64_t total = transfer::TotalBytes(ops);
  const uint64_t per_share = (total + shares - 1) / shares;
  uint64_t in_current = 0;
  for (transfer::CopyOp op : ops) {
    while (op.bytes > 0) {
      const uint64_t take = std::min(op.bytes, per_share - in_current);
      out.back().push_back({op.src, op.dst, take});
      op.src += take;
      op.dst += take;
      op.bytes -= take;
      in_current += take;
      if (in_current == per_share) {
        out.emplace_back();
        in_current = 0;
      }
    }
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

}  // namespace

double MeasureScatteredMemcpyGBps(uint64_t src_bytes, uint64_t dst_bytes,
                                  std::span<const transfer::CopyOp> ops, int threads,
                                  double min_seconds) {
  Region src(src_bytes, 1), dst(dst_bytes, 0);
  if (src.data() == nullptr || dst.data() == nullptr || ops.empty()) return -1;
  const std::vector<std::vector<transfer::CopyOp>> shares = CutShares(ops, threads);
  auto copy = [&](const std::vector<transfer::CopyOp>& share) {
    for (const transfer::CopyOp& op : share) {
      std::memcpy(dst.data() + op.dst, src.data() + op.src, op.bytes);
    }
  };
  // Helpers wait for a new round under a mutex (absl::Mutex spins briefly, then blocks: pure
  // spinning loses whole time slices on a busy 2-core host, as the copy engine would too). The
  // caller copies share 0 itself, so `threads` threads copy and threads - 1 are woken a round.
  absl::Mutex mu;
  uint64_t generation = 0;
  int finished = 0;
  bool stop = false;
  std::vector<std::jthread> helpers;
  for (size_t i = 1; i < shares.size(); ++i) {
    helpers.emplace_back([&, i] {
      uint64_t seen = 0;
      for (;;) {
        {
          absl::MutexLock lock(&mu);
          auto ready = [&] { return stop || generation != seen; };
          mu.Await(absl::Condition(&ready));
          if (stop) return;
          seen = generation;
        }
        copy(shares[i]);
        absl::MutexLock lock(&mu);
        ++finished;
      }
    });
  }
  auto round = [&] {
    {
      absl::MutexLock lock(&mu);
      finished = 0;
      ++generation;
    }
    copy(shares[0]);
    absl::MutexLock lock(&mu);
    auto done = [&] { return finished == static_cast<int>(shares.size()) - 1; };
    mu.Await(absl::Condition(&done));
  };
  round();  // warm-up, like the backend's warm-up batch
  const uint64_t bytes = transfer::TotalBytes(ops);
  const int64_t t0 = MonotonicNanos();
  const int64_t deadline = t0 + static_cast<int64_t>(min_seconds * 1e9);
  uint64_t copied = 0;
  int runs = 0;
  while (runs < 3 || MonotonicNanos() < deadline) {
    round();
    copied += bytes;
    ++runs;
  }
  const double seconds = (MonotonicNanos() - t0) / 1e9;
  {
    absl::MutexLock lock(&mu);
    stop = true;
  }
  helpers.clear();
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
