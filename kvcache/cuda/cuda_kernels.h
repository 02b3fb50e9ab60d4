#pragma once

// The GPU path over a paged KV pool in device memory, as plain C++ (no CUDA types), so that
// workers and benchmarks can use it without CUDA headers. Available when the build defines
// PDSERVE_HAS_CUDA (the library pdserve_kvcache_cuda exports it); every function needs a device
// at run time and returns Unavailable when there is none.
//
// The kernels give the CPU path's bytes and tokens exactly (K/V rows, checksums, next tokens)
// and its float outputs within bf16 tolerance. Supported shapes: bf16, block_size a power of
// two, head_dim 16 or 64 with 2 query heads per KV head, or 128 with 4 or 8 (every preset);
// other shapes give Unimplemented.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kvcache/cpu_attention.h"
#include "kvcache/kv_cache.h"
#include "kvcache/kv_memory.h"

namespace pdserve::cuda {

// True when a CUDA device can be used (driver present, at least one device).
bool CudaAvailable();
// Devices this process sees (CUDA_VISIBLE_DEVICES applied); 0 without a driver.
int DeviceCount();
// "NVIDIA H100 80GB HBM3, 132 SMs, ..." or an error.
absl::StatusOr<std::string> DeviceDescription(int device = 0);
// The device's PCI bus id ("0000:1b:00.0"): the same GPU whatever its ordinal in a process.
absl::StatusOr<std::string> DevicePciBusId(int device = 0);
// The bus id of the GPU holding `pool`; empty for a pool in host memory (or when CUDA cannot say).
std::string PoolGpuId(const KvCache& pool);

// Zeroed device memory (cudaMalloc) for a KV pool; kind() is MemoryKind::kCuda and data() is a
// device pointer (never dereference it on the host).
absl::StatusOr<std::unique_ptr<KvMemory>> AllocateDeviceMemory(size_t bytes, int device = 0);
absl::StatusOr<std::unique_ptr<KvCache>> CreateDeviceKvCache(const ModelConfig& config,
                                                             uint32_t num_blocks, KvLayout layout,
                                                             int device = 0);
// Byte copies between host buffers and device KV memory (tests, debugging, staging).
absl::Status CopyDeviceToHost(const KvMemory& src, size_t offset, std::span<std::byte> dst);
absl::Status CopyHostToDevice(std::span<const std::byte> src, const KvMemory& dst, size_t offset);

// One prompt chunk of a prefill batch: tokens at positions start_pos.. through its block table.
struct PrefillChunk {
  std::span<const BlockId> block_table;
  std::span<const int32_t> tokens;
  int start_pos = 0;
};

// Which prefill attention kernel runs: wgmma (Hopper; head dims 64 and 128, even GQA groups) where it applies,
// else the mma.sync flash-attention kernel; kMmaSync forces the latter (benchmark comparison).
enum class PrefillKernel { kAuto, kMmaSync };

// Kernels bound to one device KV pool: a stream, events and reusable device/pinned buffers
// (nothing is allocated per call once the buffers have grown to the batch sizes seen).
// Not thread-safe: one owner thread per instance.
class CudaAttention {
 public:
  // `cache` must live in device memory (CreateDeviceKvCache) and outlive this object.
  static absl::StatusOr<std::unique_ptr<CudaAttention>> Create(const KvCache& cache);
  ~CudaAttention();
  CudaAttention(const CudaAttention&) = delete;
  CudaAttention& operator=(const CudaAttention&) = delete;

  // Writes K/V of every chunk into the pool (the CPU's WriteKv, byte for byte).
  absl::Status WriteKv(std::span<const PrefillChunk> batch);
  // Writes K/V, then causal GQA attention of every chunk position over [0, its position].
  // `out`: empty, or host floats [chunk][position][layer][q head][dim] for the whole batch.
  absl::Status Prefill(std::span<const PrefillChunk> batch, std::span<float> out = {},
                       const AttentionOptions& options = {});
  // One decode step: paged attention of each sequence's last token over its KV with the
  // checksum fused in, and the next token. With write_last_kv, the K/V of last_token at
  // position seq_len - 1 is written first (the token the previous step produced).
  // DecodeSequence::out spans (host) receive [layer][q head][dim] when not empty.
  absl::StatusOr<std::vector<DecodeResult>> Decode(std::span<const DecodeSequence> batch,
                                                   const AttentionOptions& options = {},
                                                   bool write_last_kv = false);

  void set_prefill_kernel(PrefillKernel kernel);
  // "wgmma" or "mma.sync": the kernel Prefill runs with the current setting.
  std::string prefill_kernel_name() const;

  // "mma.sync" (or a variant's name) or "cuda cores": the kernel Decode runs for this model
  // (PDSERVE_DECODE_KERNEL picks another where the shape allows mma, for benchmarking).
  std::string decode_kernel_name() const;

  // Device time of the last call's kernels in milliseconds (CUDA events; uploads and copies
  // back excluded).
  double last_kernel_ms() const;
  // Splits of the sequence dimension chosen by the last Decode (1 = no split).
  int last_decode_max_splits() const;

  struct Impl;

 private:
  explicit CudaAttention(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Synthetic dense layers (--dense on): per layer the QKV, output, gate/up and down projections
// of the preset's hidden sizes as cuBLAS bf16 GEMMs (fp32 accumulation) over synthetic weights,
// so that a step costs what a real model of that shape costs on this GPU.
class DenseLayers {
 public:
  static absl::StatusOr<std::unique_ptr<DenseLayers>> Create(const ModelConfig& config,
                                                             int max_tokens, int device = 0);
  ~DenseLayers();
  // Runs every layer's GEMMs for `tokens` tokens (<= max_tokens) and waits for them.
  absl::Status Forward(int tokens);
  double last_ms() const;
  double FlopsPerToken() const;

  struct Impl;

 private:
  explicit DenseLayers(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Baselines measured in the same run as a benchmark.
struct DeviceBaselines {
  double d2d_copy_gbps = 0;  // cudaMemcpy device to device, bytes read + written per second
  double d2d_copy_bytes = 0;
  double gemm_tflops = 0;    // cuBLAS bf16 GEMM (fp32 accumulation), random data
  int gemm_size = 0;         // m = n = k
};
absl::StatusOr<DeviceBaselines> MeasureDeviceBaselines(size_t copy_bytes, int gemm_size,
                                                       int iterations, int device = 0);
// Median milliseconds of a D2D cudaMemcpyAsync of `bytes` (the transfer benchmark's baseline).
absl::StatusOr<double> MeasureD2DCopyMs(size_t bytes, int iterations, int device = 0);
// Median milliseconds of a cudaMemcpyPeerAsync of `bytes` from device `src` to device `dst`
// (the two-GPU transfer baseline), with peer access enabled where the GPUs allow it.
absl::StatusOr<double> MeasurePeerCopyMs(size_t bytes, int iterations, int src = 0, int dst = 1);
// "peer access 0->1: yes (NVLink or PCIe P2P)" / "... no (copies staged through the host)".
std::string PeerAccessSummary(int src = 0, int dst = 1);

}  // namespace pdserve::cuda
