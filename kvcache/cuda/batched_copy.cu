#include <cuda_runtime.h>

#include <algorithm>

#include "kvcache/cuda/batched_copy.h"
#include "kvcache/cuda/cuda_check.h"

namespace pdserve::cuda {
namespace {

constexpr int kOpsPerLaunch = 1024;  // 20 KiB of parameters (Hopper takes up to 32 KiB)
constexpr uint64_t kChunkBytes = 64 * 1024;
constexpr int kThreads = 256;
constexpr int kLoadsInFlight = 8;  // per thread: a 64 KiB chunk is 2 such steps of 256 threads

struct CopyParams {
  uint64_t src[kOpsPerLaunch];
  uint64_t dst[kOpsPerLaunch];
  uint32_t chunks[kOpsPerLaunch];  // 64 KiB chunks of the op (the last one may be short)
  uint32_t tail[kOpsPerLaunch];    // bytes of the last chunk
};

// Block (op, y) copies chunks y, y + gridDim.y, ... of op `blockIdx.x`, 16 bytes a thread.
__global__ void __launch_bounds__(kThreads) BatchedCopyKernel(const __grid_constant__ CopyParams p,
                                                            const std::byte* src, std::byte* dst) {
  const int op = blockIdx.x;
  for (uint32_t c = blockIdx.y; c < p.chunks[op]; c += gridDim.y) {
    const uint64_t bytes = c + 1 == p.chunks[op] ? p.tail[op] : kChunkBytes;
    const uint4* __restrict__ s = reinterpret_cast<const uint4*>(src + p.src[op] + c * kChunkBytes);
    uint4* __restrict__ d = reinterpret_cast<uint4*>(dst + p.dst[op] + c * kChunkBytes);
    const int n = static_cast<int>(bytes / 16);
    // kLoadsInFlight loads issued before their stores: with one load then one store per step
    // (the pointers may alias, as far as the compiler knew) a thread had one load in flight,
    // and a large run moved at 0.68x of a D2D copy.
    int i = threadIdx.x;
    for (; i + (kLoadsInFlight - 1) * kThreads < n; i += kLoadsInFlight * kThreads) {
      uint4 v[kLoadsInFlight];
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u) v[u] = __ldg(s + i + u * kThreads);
#pragma unroll
      for (int u = 0; u < kLoadsInFlight; ++u) d[i + u * kThreads] = v[u];
    }
    for (; i < n; i += kThreads) d[i] = __ldg(s + i);
  }
}

}  // namespace

absl::Status EnqueueBatchedCopy(std::span<const DeviceCopy> copies, const std::byte* src_base,
                                std::byte* dst_base, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  for (const DeviceCopy& c : copies) {
    if ((c.src | c.dst | c.bytes) % 16 != 0 || c.bytes == 0) {
      return absl::InvalidArgumentError("batched copy needs 16-byte aligned, non-empty copies");
    }
  }
  // Large, so not on the stack; per thread, since Submit may run on any thread. A launch copies
  // its parameters, so the next launch may refill them at once.
  thread_local CopyParams params;
  for (size_t first = 0; first < copies.size(); first += kOpsPerLaunch) {
    const size_t n = std::min<size_t>(kOpsPerLaunch, copies.size() - first);
    uint32_t max_chunks = 1;
    for (size_t i = 0; i < n; ++i) {
      const DeviceCopy& c = copies[first + i];
      params.src[i] = c.src;
      params.dst[i] = c.dst;
      params.chunks[i] = static_cast<uint32_t>((c.bytes + kChunkBytes - 1) / kChunkBytes);
      params.tail[i] = static_cast<uint32_t>(c.bytes - (params.chunks[i] - 1) * kChunkBytes);
      max_chunks = std::max(max_chunks, params.chunks[i]);
    }
    dim3 grid(static_cast<unsigned>(n), std::min<uint32_t>(max_chunks, 65535));
    BatchedCopyKernel<<<grid, kThreads, 0, stream>>>(params, src_base, dst_base);
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return absl::OkStatus();
}

}  // namespace pdserve::cuda
