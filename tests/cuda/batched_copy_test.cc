// The batched device copy kernel (cuda-ipc's, and ucx's between device pools on one host), on a
// GPU: every list of runs lands exactly its bytes and nothing else (strided runs of 1 MiB, runs
// off their stride, thousands of small runs in reverse order, many runs of several chunks), and
// batches enqueued back to back land in order.
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "kvcache/cuda/batched_copy.h"
#include "kvcache/cuda/cuda_kernels.h"

namespace pdserve::cuda {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

std::vector<DeviceCopy> Strided(int n, uint64_t bytes, uint64_t src_stride, uint64_t dst_stride,
                                uint64_t src0 = 0, uint64_t dst0 = 0) {
  std::vector<DeviceCopy> runs;
  for (int i = 0; i < n; ++i) runs.push_back({src0 + i * src_stride, dst0 + i * dst_stride, bytes});
  return runs;
}

// Every byte of the destination: the batches' bytes from the source in batch order, the rest
// untouched.
void ExpectBatchesCopied(const std::vector<std::vector<DeviceCopy>>& batches, uint64_t src_bytes,
                         uint64_t dst_bytes) {
  std::vector<std::byte> src(src_bytes), dst(dst_bytes);
  for (uint64_t i = 0; i < src_bytes; ++i) src[i] = std::byte((i * 2654435761u) >> 13);
  for (uint64_t i = 0; i < dst_bytes; ++i) dst[i] = std::byte(0xA5);
  absl::StatusOr<std::vector<std::byte>> out = CopyThroughDevice(batches, src, dst);
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<std::byte> expected = dst;
  for (const std::vector<DeviceCopy>& runs : batches) {
    for (const DeviceCopy& r : runs) {
      for (uint64_t b = 0; b < r.bytes; ++b) expected[r.dst + b] = src[r.src + b];
    }
  }
  uint64_t wrong = 0, first = 0;
  for (uint64_t i = 0; i < dst_bytes; ++i) {
    if ((*out)[i] != expected[i] && wrong++ == 0) first = i;
  }
  EXPECT_EQ(wrong, 0u) << "first wrong byte at " << first;
}

void ExpectCopied(const std::vector<DeviceCopy>& runs, uint64_t src_bytes, uint64_t dst_bytes) {
  ExpectBatchesCopied({runs}, src_bytes, dst_bytes);
}

TEST(BatchedCopyTest, LargeStridedRunsLandExactlyOnTheDevice) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  ExpectCopied(Strided(8, kMiB, 3 * kMiB, 2 * kMiB, 4096, 64), 26 * kMiB, 18 * kMiB);
  ExpectCopied(Strided(4, kMiB + 4096, kMiB + 4096, kMiB + 4096), 5 * kMiB, 5 * kMiB);
}

TEST(BatchedCopyTest, ScatteredAndMixedRunsLandExactlyOnTheDevice) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  std::vector<DeviceCopy> mixed = Strided(6, kMiB, 2 * kMiB, 2 * kMiB);
  mixed[4].dst += 4096;
  mixed.push_back({13 * kMiB, 13 * kMiB, 65536});
  ExpectCopied(mixed, 14 * kMiB, 14 * kMiB);
  std::vector<DeviceCopy> small;
  for (int i = 0; i < 3000; ++i) small.push_back({uint64_t(i) * 4096, uint64_t(2999 - i) * 4096, 2048});
  ExpectCopied(small, 3000 * 4096, 3000 * 4096);
}

// More runs than the few-runs launch takes, each of several 128 KiB chunks and a short last one:
// the flat kernel's search for a chunk's run.
TEST(BatchedCopyTest, ManyRunsOfSeveralChunksLandExactlyOnTheDevice) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  constexpr uint64_t kRun = 3 * 131072 + 4096;
  std::vector<DeviceCopy> runs;
  for (int i = 0; i < 100; ++i) runs.push_back({uint64_t(i) * kRun, uint64_t(99 - i) * kRun, kRun});
  runs[7].bytes = 16;  // one run shorter than a chunk among them
  ExpectCopied(runs, 100 * kRun, 100 * kRun);
}

// Twelve batches of 200 runs with nothing waited for between them, each writing over the one
// before: the launches share one parameter buffer on the host (refilled at once, since a launch
// copies it), so a batch that ran with another's runs, or out of order, leaves wrong bytes.
TEST(BatchedCopyTest, BatchesEnqueuedBackToBackLandInOrder) {
  if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device here: GPU test skipped";
  constexpr uint64_t kRun = 65536;
  std::vector<std::vector<DeviceCopy>> batches;
  for (int b = 0; b < 12; ++b) {
    std::vector<DeviceCopy> runs;
    for (int i = 0; i < 200; ++i) {
      runs.push_back({uint64_t((i * 7 + b * 13) % 400) * kRun, uint64_t(i) * kRun, kRun});
    }
    batches.push_back(std::move(runs));
  }
  ExpectBatchesCopied(batches, 400 * kRun, 200 * kRun);
}

}  // namespace
}  // namespace pdserve::cuda
