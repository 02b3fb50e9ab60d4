#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "kvcache/cuda/batched_copy.h"
#include "kvcache/cuda/cuda_check.h"
#include "common/status_macros.h"
#include "kvcache/cuda/device_buffer.h"

namespace pdserve::cuda {
namespace {

constexpr int kOpsPerLaunch = 1024;  // 28 KiB of parameters (a launch takes up to 32 KiB)
// A launch copies its whole parameter struct: a batch of a few runs (a layer-major request with
// contiguous blocks is 32 or 64) launches with a 1.8 KiB struct instead of the 28 KiB one.
// Measured on the H200: a 512-token request (32 runs of 2 MiB) moved at 0.69-0.70x of a D2D
// copy instead of 0.63-0.64x.
constexpr int kFewOps = 64;

template <int kOps>
struct CopyParams {
  uint64_t src[kOps];
  uint64_t dst[kOps];
  uint32_t first[kOps];   // index of the op's first chunk among the launch's (flat kernel)
  uint32_t chunks[kOps];  // chunks of the op (the last one may be short)
  uint32_t tail[kOps];    // bytes of the last chunk
  int count;              // ops in this launch
  uint32_t total_chunks;
};

// How the blocks of one launch share the work. kThreads threads a block, kLoads 16-byte loads
// in flight per thread, chunks of 2^kChunkShift bytes a block.
enum class Order { kGrid, kFlat };
template <Order kOrder, int kThreads, int kLoads, int kChunkShift>
struct Shape {
  static constexpr Order order = kOrder;
  static constexpr int threads = kThreads;
  static constexpr int loads = kLoads;
  static constexpr uint64_t chunk = uint64_t{1} << kChunkShift;
};

// Copies n 16-byte words from s to d with the block's threads: S::loads loads issued before
// their stores (with one load then one store per step, the pointers possibly aliasing as far as
// the compiler knew, a thread had one load in flight and a large run moved at 0.68x of a D2D
// copy).
template <class S>
__device__ __forceinline__ void CopyChunk(const uint4* __restrict__ s, uint4* __restrict__ d,
                                          int n) {
  int i = threadIdx.x;
  for (; i + (S::loads - 1) * S::threads < n; i += S::loads * S::threads) {
    uint4 v[S::loads];
#pragma unroll
    for (int u = 0; u < S::loads; ++u) v[u] = __ldg(s + i + u * S::threads);
#pragma unroll
    for (int u = 0; u < S::loads; ++u) d[i + u * S::threads] = v[u];
  }
  for (; i < n; i += S::threads) d[i] = __ldg(s + i);
}

// kGrid: block (op, y) copies chunks y, y + gridDim.y, ... of op `blockIdx.x`, so consecutive
// blocks work on different ops. kFlat: block b copies chunk b of the launch's chunks in op
// order, so consecutive blocks copy consecutive chunks of one op, as one cudaMemcpy's do.
template <int kOps, class S>
__global__ void __launch_bounds__(S::threads)
    BatchedCopyKernel(const __grid_constant__ CopyParams<kOps> p, const std::byte* src,
                      std::byte* dst) {
  if constexpr (S::order == Order::kGrid) {
    const int op = blockIdx.x;
    for (uint32_t c = blockIdx.y; c < p.chunks[op]; c += gridDim.y) {
      const uint64_t bytes = c + 1 == p.chunks[op] ? p.tail[op] : S::chunk;
      CopyChunk<S>(reinterpret_cast<const uint4*>(src + p.src[op] + c * S::chunk),
                   reinterpret_cast<uint4*>(dst + p.dst[op] + c * S::chunk),
                   static_cast<int>(bytes / 16));
    }
  } else {
    for (uint32_t g = blockIdx.x; g < p.total_chunks; g += gridDim.x) {
      int lo = 0, hi = p.count - 1;  // the last op whose first chunk is <= g
      while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (p.first[mid] <= g) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
      const uint32_t c = g - p.first[lo];
      const uint64_t bytes = c + 1 == p.chunks[lo] ? p.tail[lo] : S::chunk;
      CopyChunk<S>(reinterpret_cast<const uint4*>(src + p.src[lo] + c * S::chunk),
                   reinterpret_cast<uint4*>(dst + p.dst[lo] + c * S::chunk),
                   static_cast<int>(bytes / 16));
    }
  }
}

template <int kOps, class S>
cudaError_t LaunchShape(std::span<const DeviceCopy> copies, const std::byte* src_base,
                        std::byte* dst_base, cudaStream_t stream) {
  // Large, so not on the stack; per thread, since Submit may run on any thread. A launch copies
  // its parameters, so the next launch may refill them at once.
  thread_local CopyParams<kOps> params;
  for (size_t first = 0; first < copies.size(); first += kOps) {
    const size_t n = std::min<size_t>(kOps, copies.size() - first);
    uint32_t max_chunks = 1, total = 0;
    for (size_t i = 0; i < n; ++i) {
      const DeviceCopy& c = copies[first + i];
      params.src[i] = c.src;
      params.dst[i] = c.dst;
      params.chunks[i] = static_cast<uint32_t>((c.bytes + S::chunk - 1) / S::chunk);
      params.tail[i] = static_cast<uint32_t>(c.bytes - (params.chunks[i] - 1) * S::chunk);
      params.first[i] = total;
      total += params.chunks[i];
      max_chunks = std::max(max_chunks, params.chunks[i]);
    }
    params.count = static_cast<int>(n);
    params.total_chunks = total;
    if constexpr (S::order == Order::kGrid) {
      dim3 grid(static_cast<unsigned>(n), std::min<uint32_t>(max_chunks, 65535));
      BatchedCopyKernel<kOps, S><<<grid, S::threads, 0, stream>>>(params, src_base, dst_base);
    } else {
      BatchedCopyKernel<kOps, S><<<std::min<uint32_t>(total, 1u << 20), S::threads, 0, stream>>>(
          params, src_base, dst_base);
    }
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// cudaMemcpy2DAsync for a layer-major request's runs (one size, constant strides) was measured
// on the H200 (2026-12-05, docs/results/gpu-h200-2026-12-05-ucx-device): 0.70x / 0.73x of a D2D
// copy at 2048 / 8192 tokens against this kernel's 0.87x / 0.93x; not kept.
// The default: flat order, 512 threads, 8 loads in flight each, 128 KiB a block. Measured on
// the H200 (2026-12-05, docs/results/gpu-h200-2026-12-05-copy-ucx) against the grid order of
// 256 threads and 64 KiB chunks it had: layer-major contiguous requests (32 runs of 2-32 MiB)
// at 0.71 / 0.88 / 0.93x of a D2D copy instead of 0.70 / 0.84 / 0.88x (512 / 2048 / 8192
// tokens), and no row slower beyond the noise; flat with 256 or 1024 threads, with 64 or 256 KiB
// chunks, with 4 or 16 loads a thread, and with streaming cache hints (ld/st .cs) were each at
// or below it. So was a persistent grid of 264 or 528 blocks looping over the chunks (H200,
// 2026-12-05 run 3: layer-major contiguous 2048 tokens 0.84-0.87x against 0.88-0.89x).
using Default = Shape<Order::kFlat, 512, 8, 17>;
// A few large runs (a contiguous request) go in blocks of 32 KiB: the kernel alone moved a
// layer-major request's 32 runs at 0.99-1.00x of one cudaMemcpyAsync of the same bytes with
// 32 KiB and 0.97-0.98x with 128 KiB (2048 and 8192 tokens, H100, four runs of the copy probe),
// and cuda-ipc's layer-major contiguous 2048 / 8192-token rows went from 0.91-0.93 / 0.95-0.97x
// of a D2D copy to 0.92-0.94 / 0.97-0.98x (four alternating rounds). Many runs (most of them one
// 64 KiB fragment) keep 128 KiB: with 32 KiB the scattered rows were slower (8192 tokens,
// block-major 0.87-0.91x against 0.92-0.94x). docs/results/gpu-h100-2026-12-06-copy-plan.
using FewRuns = Shape<Order::kFlat, 512, 8, 15>;

// PDSERVE_COPY_KERNEL=grid runs the kernel as it was before (for benchmarking against it); the
// other shapes measured are in docs/results/gpu-h200-2026-12-05-copy-ucx.
bool GridOrderChosen() {
  static const bool grid = [] {
    const char* e = std::getenv("PDSERVE_COPY_KERNEL");
    return e != nullptr && std::string_view(e) == "grid";
  }();
  return grid;
}

// PDSERVE_COPY_SHAPE=128k: few runs in 128 KiB blocks too, as before (for benchmarking).
bool BigBlocksChosen() {
  static const bool big = [] {
    const char* e = std::getenv("PDSERVE_COPY_SHAPE");
    return e != nullptr && std::string_view(e) == "128k";
  }();
  return big;
}

template <int kOps>
cudaError_t Launch(std::span<const DeviceCopy> copies, const std::byte* src_base,
                   std::byte* dst_base, cudaStream_t stream) {
  if (GridOrderChosen()) {
    return LaunchShape<kOps, Shape<Order::kGrid, 256, 8, 16>>(copies, src_base, dst_base, stream);
  }
  if (kOps == kFewOps && !BigBlocksChosen()) {
    return LaunchShape<kOps, FewRuns>(copies, src_base, dst_base, stream);
  }
  return LaunchShape<kOps, Default>(copies, src_base, dst_base, stream);
}

// Small parameter struct for few runs (env PDSERVE_COPY_FEW_OPS=0 turns it off, for
// benchmarking).
bool FewOpsLaunch() {
  static const bool on = [] {
    const char* v = std::getenv("PDSERVE_COPY_FEW_OPS");
    return v == nullptr || std::atoi(v) != 0;
  }();
  return on;
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
  const bool few = FewOpsLaunch() && copies.size() <= kFewOps;
  const cudaError_t e = few ? Launch<kFewOps>(copies, src_base, dst_base, stream)
                            : Launch<kOpsPerLaunch>(copies, src_base, dst_base, stream);
  PDSERVE_CUDA_RETURN_IF_ERROR(e);
  return absl::OkStatus();
}

}  // namespace pdserve::cuda

namespace pdserve::cuda {

absl::StatusOr<std::vector<std::byte>> CopyThroughDevice(
    std::span<const std::vector<DeviceCopy>> batches, std::span<const std::byte> src,
    std::span<const std::byte> dst) {
  DeviceBuffer s, d;
  RETURN_IF_ERROR(s.Reserve(src.size()));
  RETURN_IF_ERROR(d.Reserve(dst.size()));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemcpy(s.get(), src.data(), src.size(), cudaMemcpyHostToDevice));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemcpy(d.get(), dst.data(), dst.size(), cudaMemcpyHostToDevice));
  cudaStream_t stream = nullptr;
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const absl::Status enqueued = [&] {
    for (const std::vector<DeviceCopy>& copies : batches) {
      RETURN_IF_ERROR(EnqueueBatchedCopy(copies, s.get(), d.get(), stream));
    }
    return absl::OkStatus();
  }();
  const cudaError_t synced = cudaStreamSynchronize(stream);
  cudaStreamDestroy(stream);
  RETURN_IF_ERROR(enqueued);
  PDSERVE_CUDA_RETURN_IF_ERROR(synced);
  std::vector<std::byte> out(dst.size());
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemcpy(out.data(), d.get(), out.size(), cudaMemcpyDeviceToHost));
  return out;
}

absl::StatusOr<std::vector<std::byte>> CopyThroughDevice(std::span<const DeviceCopy> copies,
                                                         std::span<const std::byte> src,
                                                         std::span<const std::byte> dst) {
  const std::vector<DeviceCopy> one(copies.begin(), copies.end());
  return CopyThroughDevice(std::span(&one, 1), src, dst);
}

}  // namespace pdserve::cuda
