#pragma once

// Staging of whole KV blocks between a host pool and a device pool of the same geometry (the
// same block ids in both), for workers whose transfer backend needs host memory (ucx without
// CUDA transports: `ucx-staged`) while their kernels run on the GPU. Plain C++: no CUDA types.
// Available when PDSERVE_HAS_CUDA is defined.

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <span>

#include "absl/status/statusor.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "kvcache/kv_cache.h"

namespace pdserve::cuda {

// Copies the listed blocks from `src` to `dst` (one on the host, one on the device, same
// geometry), coalescing runs of consecutive blocks into one copy per fragment, and returns when
// the bytes landed. InvalidArgument for pools of different shapes or a block outside them.
absl::Status CopyKvBlocks(const KvCache& src, const KvCache& dst, std::span<const BlockId> blocks);

// Page-locks a host range (cudaHostRegister) for the lifetime of the object, so that staging
// copies run at PCIe speed instead of through the driver's bounce buffers.
class PinnedHostRange {
 public:
  static absl::StatusOr<std::unique_ptr<PinnedHostRange>> Pin(std::byte* data, size_t bytes);
  ~PinnedHostRange();
  PinnedHostRange(const PinnedHostRange&) = delete;
  PinnedHostRange& operator=(const PinnedHostRange&) = delete;

 private:
  explicit PinnedHostRange(std::byte* data) : data_(data) {}
  std::byte* data_;
};

// What a worker with --compute cuda computes on: the transport's pool when it is in device
// memory (cuda-ipc), else a device mirror of the host pool (same geometry and block ids; the
// host pool is page-locked and the worker stages blocks between the two: ucx-staged). The
// transport's pool keeps the allocator; the mirror's is unused.
class GpuKvPool {
 public:
  static absl::StatusOr<std::unique_ptr<GpuKvPool>> Create(KvCache& transport_pool);

  bool staged() const { return mirror_ != nullptr; }
  KvCache& device_pool() { return mirror_ ? *mirror_ : transport_pool_; }
  CudaAttention& attention() { return *attention_; }
  // Device -> host pool (after prefill) and host -> device pool (before decode); no-ops when
  // not staged.
  absl::Status StageOut(std::span<const BlockId> blocks);
  absl::Status StageIn(std::span<const BlockId> blocks);
  // One prompt chunk into `blocks` of `pool`: this worker's own pool (the transport's: its
  // device pool, mirror or not) or another device pool this process reaches (a zero-copy
  // window's view of a decode worker's pool opened over CUDA IPC), with kernels bound to it
  // at its first use.
  absl::Status PrefillInto(const KvCache& pool, std::span<const BlockId> blocks,
                           std::span<const int32_t> tokens, int start_pos);

 private:
  explicit GpuKvPool(KvCache& transport_pool) : transport_pool_(transport_pool) {}
  KvCache& transport_pool_;
  std::unique_ptr<PinnedHostRange> pinned_;
  std::unique_ptr<KvCache> mirror_;
  std::unique_ptr<CudaAttention> attention_;
  std::mutex peers_mu_;
  std::map<const KvCache*, std::unique_ptr<CudaAttention>> peer_attention_;
};

}  // namespace pdserve::cuda
