// Prefill on the GPU: K/V generation into the paged pool, and causal GQA attention over the
// prompt read back from the pool (flash-attention 2 style: one 64-row query tile per block,
// 64-key tiles double-buffered in shared memory by cp.async, bf16 mma.sync with fp32
// accumulation and an online softmax in registers).

#include <cuda_bf16.h>

#include <cmath>

#include "common/synthetic_model.h"
#include "kvcache/cuda/attention_tile.cuh"
#include "kvcache/cuda/kernels.h"
#include "kvcache/cuda/mma_primitives.cuh"
#include "kvcache/cuda/synthetic_elements.cuh"

namespace pdserve::cuda {
namespace {

constexpr int kWriteThreads = 256;

constexpr int kWriteRowsPerWarp = 32;

// One warp writes 32 K/V rows of one token. Each lane hashes one row's seed (two Mix64s); the
// warp then stores the rows' 16-byte chunks in order, so the lanes of one store cover whole
// rows (coalesced), and each chunk's eight elements are one more Mix64 of its row seed, taken
// from the owning lane by a shuffle: three hashes a chunk become about one. (GPU pools are bf16
// only: cuda_attention.cc refuses other dtypes.)
__global__ void WriteKvKernel(PrefillArgs a) {
  const int t = blockIdx.x;
  const int chunks_per_row = a.shape.head_dim / 8;
  const int rows = a.shape.num_layers * a.shape.num_kv_heads * 2;
  const int lane = threadIdx.x % 32;
  const int row0 = (blockIdx.y * (kWriteThreads / 32) + threadIdx.x / 32) * kWriteRowsPerWarp;
  if (row0 >= rows) return;  // the whole warp
  const ChunkDev ch = a.chunks[a.token_chunk[t]];
  const int pos = ch.start_pos + (t - ch.token_off);
  const uint32_t block = a.tables[ch.table_off + (pos >> a.geo.block_shift)];
  const int slot = pos & (a.geo.block_size - 1);
  const int row = min(row0 + lane, rows - 1);
  const uint32_t kind = row & 1;
  const int head = (row >> 1) % a.shape.num_kv_heads;
  const int layer = (row >> 1) / a.shape.num_kv_heads;
  const uint64_t row_seed = model::RowSeed(a.tokens[t], pos, layer, head, kind);
  const int64_t row_off = a.geo.RowOffset(block, slot, layer, head, kind);
  const int chunks = min(kWriteRowsPerWarp, rows - row0) * chunks_per_row;
  for (int c = lane; c < kWriteRowsPerWarp * chunks_per_row; c += 32) {
    const int r = c / chunks_per_row, col = c % chunks_per_row;
    const uint64_t seed = __shfl_sync(0xffffffffu, row_seed, r);
    const int64_t off = __shfl_sync(0xffffffffu, row_off, r);
    if (c >= chunks) continue;
    *reinterpret_cast<uint4*>(a.pool + off + col * 16) =
        ElementBytesAsBf16(model::ElementChunkHash(seed, col), model::kElementScale);
  }
}

constexpr int kBM = kPrefillTileRows;  // query rows per block (4 warps x 16)
constexpr int kBN = kAttentionTileKeys;  // keys per tile
constexpr int kWarps = 4;

template <int D>
constexpr int SmemStride() { return D + 8; }  // bf16 elements; +16 B keeps ldmatrix conflict-free

template <int D>
constexpr size_t PrefillSmemBytes() {
  return size_t{4} * kBN * SmemStride<D>() * sizeof(uint16_t);  // K and V, two stages each
}

template <int D>
__global__ void __launch_bounds__(kWarps * 32)
    PrefillAttentionKernel(PrefillArgs a, float scale_log2) {
  constexpr int kStride = SmemStride<D>();
  constexpr int kChunksPerRow = D / 8;
  extern __shared__ __align__(16) uint16_t smem[];
  uint16_t* k_smem = smem;                       // [2][kBN][kStride]
  uint16_t* v_smem = smem + 2 * kBN * kStride;   // [2][kBN][kStride]

  const int layer = blockIdx.x / a.shape.num_q_heads;
  const int qhead = blockIdx.x % a.shape.num_q_heads;
  const int kvhead = qhead / (a.shape.num_q_heads / a.shape.num_kv_heads);
  const TileDev tile = a.tiles[blockIdx.y];
  const ChunkDev ch = a.chunks[tile.chunk];
  const uint32_t* table = a.tables + ch.table_off;
  const int total = ch.start_pos + ch.num_tokens;  // keys [0, total)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, tig = lane & 3;

  // This thread's two query rows (g and g + 8 of the warp's 16); rows past the chunk repeat the
  // last row and are not written.
  const int r0 = tile.q0 + warp * 16 + g, r1 = r0 + 8;
  const int c0 = min(r0, ch.num_tokens - 1), c1 = min(r1, ch.num_tokens - 1);
  const int pos0 = ch.start_pos + c0, pos1 = ch.start_pos + c1;

  // Q straight from the synthetic model into mma A fragments (values exact in bf16).
  uint32_t qf[D / 16][4];
  {
    const uint64_t s0 = model::RowSeed(a.tokens[ch.token_off + c0], pos0, layer, qhead, model::kQuery);
    const uint64_t s1 = model::RowSeed(a.tokens[ch.token_off + c1], pos1, layer, qhead, model::kQuery);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int dim = kk * 16 + half * 8 + 2 * tig;
        qf[kk][half * 2 + 0] = PackBf16(model::ElementValue(s0, dim), model::ElementValue(s0, dim + 1));
        qf[kk][half * 2 + 1] = PackBf16(model::ElementValue(s1, dim), model::ElementValue(s1, dim + 1));
      }
    }
  }

  const int first_pos = ch.start_pos + tile.q0;
  const int last_pos = ch.start_pos + min(tile.q0 + kBM, ch.num_tokens) - 1;
  const int num_tiles = last_pos / kBN + 1;

  auto load_tile = [&](int t, int buf) {
    uint16_t* kd = k_smem + buf * kBN * kStride;
    uint16_t* vd = v_smem + buf * kBN * kStride;
    for (int c = threadIdx.x; c < kBN * kChunksPerRow; c += kWarps * 32) {
      const int row = c / kChunksPerRow, col = c % kChunksPerRow;
      CpAsyncKvChunk(a, table, t * kBN + row, total, layer, kvhead, col,
                     kd + row * kStride + col * 8, vd + row * kStride + col * 8);
    }
  };

  float o[D / 2];  // accumulator layout: n-tile i of dims is o[4i, 4i + 4)
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  SoftmaxState st;

  load_tile(0, 0);
  CpAsyncCommit();
  for (int t = 0; t < num_tiles; ++t) {
    const int buf = t & 1;
    if (t + 1 < num_tiles) {
      load_tile(t + 1, buf ^ 1);
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const uint16_t* ks = k_smem + buf * kBN * kStride;
    const uint16_t* vs = v_smem + buf * kBN * kStride;

    // S = Q K^T for 16 rows x 64 keys.
    float s[kBN / 2];
#pragma unroll
    for (int i = 0; i < kBN / 2; ++i) s[i] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int nt2 = 0; nt2 < kBN / 16; ++nt2) {
        uint32_t b[4];
        const int key = nt2 * 16 + ((lane >> 4) & 1) * 8 + (lane & 7);
        const int dim = kk * 16 + ((lane >> 3) & 1) * 8;
        LdMatrixX4(b, ks + key * kStride + dim);
        Mma16816(Frag4(s, 2 * nt2), qf[kk], b[0], b[1]);
        Mma16816(Frag4(s, 2 * nt2 + 1), qf[kk], b[2], b[3]);
      }
    }

    uint32_t p[kBN / 16][4];
    float corr0, corr1;
    if (SoftmaxTile(s, p, st, corr0, corr1, t * kBN + kBN - 1 > first_pos, t * kBN, pos0, pos1,
                    tig, scale_log2)) {
      RescaleRows(o, corr0, corr1);
    }

    // O += P V.
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
#pragma unroll
      for (int dt2 = 0; dt2 < D / 16; ++dt2) {
        uint32_t b[4];
        const int key = kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7);
        const int dim = dt2 * 16 + ((lane >> 4) & 1) * 8;
        LdMatrixX4Trans(b, vs + key * kStride + dim);
        Mma16816(Frag4(o, 2 * dt2), p[kk], b[0], b[1]);
        Mma16816(Frag4(o, 2 * dt2 + 1), p[kk], b[2], b[3]);
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites the other stage
  }

  StoreAttentionRows<D>(a, ch, layer, qhead, r0, r1, tig, o, st);
}

template <int D>
cudaError_t LaunchPrefillFor(const PrefillArgs& args, cudaStream_t stream) {
  constexpr size_t smem = PrefillSmemBytes<D>();
  static const cudaError_t attr = cudaFuncSetAttribute(
      PrefillAttentionKernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (attr != cudaSuccess) return attr;
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(D));
  dim3 grid(args.shape.num_layers * args.shape.num_q_heads, args.num_tiles);
  PrefillAttentionKernel<D><<<grid, kWarps * 32, smem, stream>>>(args, scale_log2);
  return cudaGetLastError();
}

__global__ void FillBf16Kernel(uint16_t* data, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    const uint64_t h = model::Mix64(seed + i * model::kGolden);
    const float v = static_cast<float>(static_cast<int32_t>(h >> 40) - (1 << 23)) / (1 << 23);
    data[i] = static_cast<uint16_t>(model::EncodeElement(v, DType::kBF16));
  }
}

}  // namespace

cudaError_t LaunchFillBf16(uint16_t* data, size_t n, uint64_t seed, cudaStream_t stream) {
  FillBf16Kernel<<<1024, 256, 0, stream>>>(data, n, seed);
  return cudaGetLastError();
}

bool PrefillShapeSupported(int head_dim) {
  return head_dim == 16 || head_dim == 64 || head_dim == 128;
}

cudaError_t LaunchWriteKv(const PrefillArgs& args, cudaStream_t stream) {
  if (args.total_tokens == 0) return cudaSuccess;
  const int rows_per_token = args.shape.num_layers * args.shape.num_kv_heads * 2;
  constexpr int kRowsPerBlock = kWriteThreads / 32 * kWriteRowsPerWarp;
  dim3 grid(args.total_tokens, (rows_per_token + kRowsPerBlock - 1) / kRowsPerBlock);
  WriteKvKernel<<<grid, kWriteThreads, 0, stream>>>(args);
  return cudaGetLastError();
}

cudaError_t LaunchPrefillAttention(const PrefillArgs& args, cudaStream_t stream) {
  if (args.num_tiles == 0) return cudaSuccess;
  switch (args.shape.head_dim) {
    case 16: return LaunchPrefillFor<16>(args, stream);
    case 64: return LaunchPrefillFor<64>(args, stream);
    case 128: return LaunchPrefillFor<128>(args, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace pdserve::cuda
