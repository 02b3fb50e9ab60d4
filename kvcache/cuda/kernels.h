#pragma once

// Private: launchers of the kernels in prefill_kernels.cu and decode_kernels.cu, and the plain
// structs uploaded for them. Included by those files and cuda_attention.cc only.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kvcache/cuda/device_geometry.h"

namespace pdserve::cuda {

struct KernelShape {
  int num_layers = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
};

// One prompt chunk on the device.
struct ChunkDev {
  int32_t table_off;  // into the concatenated block tables
  int32_t num_tokens;
  int32_t start_pos;
  int32_t token_off;  // into the concatenated tokens (and output rows)
};

// One query tile of a chunk: rows [q0, q0 + kPrefillTileRows).
struct TileDev {
  int32_t chunk;
  int32_t q0;
};

struct PrefillArgs {
  KernelShape shape;
  DeviceGeometry geo;
  std::byte* pool = nullptr;
  const uint32_t* tables = nullptr;
  const ChunkDev* chunks = nullptr;
  const int32_t* tokens = nullptr;
  const int32_t* token_chunk = nullptr;  // chunk of each concatenated token
  int total_tokens = 0;
  const TileDev* tiles = nullptr;
  int num_tiles = 0;
  int max_table_entries = 0;  // the longest chunk's block table
  float* out = nullptr;  // [token][layer][q head][dim], or null
  float* sink = nullptr; // written only on an impossible value: keeps "compute, then drop" honest
};

inline constexpr int kPrefillTileRows = 64;

cudaError_t LaunchWriteKv(const PrefillArgs& args, cudaStream_t stream);
cudaError_t LaunchPrefillAttention(const PrefillArgs& args, cudaStream_t stream);
// The same attention with Hopper's wgmma (prefill_attention_sm90.cu): head dims 64 and 128 with
// an even number of query heads per KV head.
cudaError_t LaunchPrefillAttentionSm90(const PrefillArgs& args, cudaStream_t stream);
bool PrefillSm90ShapeSupported(int head_dim, int group);

struct DecodeSeqDev {
  uint64_t seed;
  int32_t table_off;
  int32_t seq_len;
  int32_t last_token;
  int32_t split_off;   // first partial-result slot of this sequence
  int32_t num_splits;
  int32_t pad;
};

struct DecodeWorkDev {
  int32_t seq;
  int32_t split;
};

struct DecodeArgs {
  KernelShape shape;
  DeviceGeometry geo;
  const std::byte* pool = nullptr;
  const uint32_t* tables = nullptr;
  const DecodeSeqDev* seqs = nullptr;
  int num_seqs = 0;
  const DecodeWorkDev* work = nullptr;  // one per (sequence, split); slot = split_off + split
  int num_work = 0;
  int partition = 0;                    // positions per split, a multiple of 64
  bool compute_attention = true;
  // Per slot, layer, kv head, q head of the group: running max, sum, and D accumulators.
  float* part_ml = nullptr;             // [slot][layer][kv head][group][2]
  float* part_acc = nullptr;            // [slot][layer][kv head][group][D]
  unsigned long long* checksums = nullptr;  // [seq], zeroed before the launch
  // The attention probe (synthetic_model.h): best score and its position per slot, then per seq.
  float* probe_score = nullptr;             // [slot]
  int32_t* probe_pos = nullptr;             // [slot]
  int32_t* probes = nullptr;                // [seq]
  int32_t* tokens = nullptr;                // [seq]
  float* out = nullptr;                     // [seq][layer][q head][dim]
  int num_sms = 1;                          // of the device (the mma kernel's choice of loop)
};

// Decode attention + fused checksum, then the split combine and the next token.
cudaError_t LaunchDecode(const DecodeArgs& args, cudaStream_t stream);
// Fills n bf16 values with a reproducible pattern in [-1, 1) (baselines and dense weights: never
// time on zeros).
cudaError_t LaunchFillBf16(uint16_t* data, size_t n, uint64_t seed, cudaStream_t stream);

bool DecodeShapeSupported(int head_dim, int group);

// The kernels LaunchDecode can run where the shape allows mma (benchmarking: the env variable
// PDSERVE_DECODE_KERNEL = mma | mma-registers | mma-serial | mma-split-loads | cuda-cores).
// kMma picks split loads or registers by the grid's size (decode_mma_kernel.cu says why).
enum class DecodeVariant { kMma, kMmaRegisters, kMmaSerial, kMmaSplitLoads, kCudaCores };
// The decode pass with mma.sync (decode_mma_kernel.cu): head_dim 128, 4 or 8 query heads per KV
// head, with attention (the checksum-only pass stays on decode_kernels.cu's kernel). Launches
// the main kernel only (LaunchDecode adds the combine).
bool DecodeMmaShapeSupported(int head_dim, int group);
cudaError_t LaunchDecodeMmaMain(const DecodeArgs& args, float scale_log2, DecodeVariant variant,
                                cudaStream_t stream);
// The variant chosen by PDSERVE_DECODE_KERNEL (read once); kMma when unset or unknown.
DecodeVariant ChosenDecodeVariant();
bool PrefillShapeSupported(int head_dim);

}  // namespace pdserve::cuda
