#include "kvcache/cuda/kv_staging.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"
#include "kvcache/cuda/cuda_check.h"

namespace pdserve::cuda {

absl::Status CopyKvBlocks(const KvCache& src, const KvCache& dst, std::span<const BlockId> blocks) {
  const KvGeometry& g = src.geometry();
  const KvGeometry& h = dst.geometry();
  if (g.layout() != h.layout() || g.block_bytes() != h.block_bytes() ||
      g.num_blocks() != h.num_blocks()) {
    return absl::InvalidArgumentError("staging copy between KV pools of different shapes");
  }
  if (blocks.empty()) return absl::OkStatus();
  std::vector<BlockId> sorted(blocks.begin(), blocks.end());
  std::sort(sorted.begin(), sorted.end());
  if (sorted.back() >= g.num_blocks()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("block %d outside a pool of %d blocks", sorted.back(), g.num_blocks()));
  }
  const std::byte* s = src.memory().data();
  std::byte* d = dst.memory().data();
  const int64_t frag = g.transfer_fragment_bytes();
  // Runs of consecutive blocks are contiguous per fragment in both layouts; a layer-major run
  // that spans the whole pool is one copy.
  size_t i = 0;
  while (i < sorted.size()) {
    size_t j = i + 1;
    while (j < sorted.size() && sorted[j] == sorted[j - 1] + 1) ++j;
    const int64_t run_bytes = static_cast<int64_t>(j - i) * frag;
    for (int f = 0; f < g.fragments_per_block(); ++f) {
      const int64_t off = g.FragmentOffset(sorted[i], f);
      PDSERVE_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(d + off, s + off, static_cast<size_t>(run_bytes), cudaMemcpyDefault, 0));
    }
    i = j;
  }
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(0));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<PinnedHostRange>> PinnedHostRange::Pin(std::byte* data,
                                                                     size_t bytes) {
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaHostRegister(data, bytes, cudaHostRegisterDefault));
  return std::unique_ptr<PinnedHostRange>(new PinnedHostRange(data));
}

PinnedHostRange::~PinnedHostRange() { cudaHostUnregister(data_); }

absl::StatusOr<std::unique_ptr<GpuKvPool>> GpuKvPool::Create(KvCache& transport_pool) {
  if (!CudaAvailable()) {
    return absl::UnavailableError("--compute cuda: no CUDA device is available on this host");
  }
  std::unique_ptr<GpuKvPool> pool(new GpuKvPool(transport_pool));
  if (transport_pool.memory().kind() != MemoryKind::kCuda) {
    KvMemory& host = transport_pool.memory();
    absl::StatusOr<std::unique_ptr<PinnedHostRange>> pinned =
        PinnedHostRange::Pin(host.data(), host.size());
    if (!pinned.ok()) return pinned.status();
    pool->pinned_ = std::move(*pinned);
    const KvGeometry& g = transport_pool.geometry();
    absl::StatusOr<std::unique_ptr<KvCache>> mirror =
        CreateDeviceKvCache(transport_pool.config(), g.num_blocks(), g.layout());
    if (!mirror.ok()) return mirror.status();
    pool->mirror_ = std::move(*mirror);
  }
  absl::StatusOr<std::unique_ptr<CudaAttention>> attention =
      CudaAttention::Create(pool->device_pool());
  if (!attention.ok()) return attention.status();
  pool->attention_ = std::move(*attention);
  return pool;
}

absl::Status GpuKvPool::PrefillInto(const KvCache& pool, std::span<const BlockId> blocks,
                                    std::span<const int32_t> tokens, int start_pos) {
  const PrefillChunk chunk{.block_table = blocks, .tokens = tokens, .start_pos = start_pos};
  const std::span<const PrefillChunk> batch(&chunk, 1);
  if (&pool == &transport_pool_) return attention_->Prefill(batch);
  if (pool.memory().kind() != MemoryKind::kCuda) {
    return absl::InvalidArgumentError("GPU prefill into a pool that is not in device memory");
  }
  CudaAttention* attention;
  {
    // A view lives as long as its peer is loaded: a few per worker, bound once each.
    std::lock_guard lock(peers_mu_);
    std::unique_ptr<CudaAttention>& a = peer_attention_[&pool];
    if (a == nullptr) {
      absl::StatusOr<std::unique_ptr<CudaAttention>> made = CudaAttention::Create(pool);
      if (!made.ok()) {
        peer_attention_.erase(&pool);
        return made.status();
      }
      a = std::move(*made);
    }
    attention = a.get();
  }
  // Prefill returns once the kernels ended: the bytes are in the peer's pool when it does.
  return attention->Prefill(batch);
}

absl::Status GpuKvPool::StageOut(std::span<const BlockId> blocks) {
  if (!mirror_) return absl::OkStatus();
  return CopyKvBlocks(*mirror_, transport_pool_, blocks);
}

absl::Status GpuKvPool::StageIn(std::span<const BlockId> blocks) {
  if (!mirror_) return absl::OkStatus();
  return CopyKvBlocks(transport_pool_, *mirror_, blocks);
}

}  // namespace pdserve::cuda
