// Causal GQA prefill attention on Hopper with warpgroup MMA (wgmma), over K/V read back from the
// paged pool. A block is two warpgroups: two query heads of one KV head over the same 64-row
// query tile (so the same causal extent), sharing every K/V tile they load.
//   Q tile: generated from the synthetic model straight into 128B-swizzled shared memory;
//   K/V: 64-key tiles gathered through the block table by cp.async, double-buffered;
//   S = Q K^T: wgmma with both operands in shared memory (K-major);
//   online softmax on the S accumulators in registers (exp2, fp32);
//   O += P V: wgmma with P from registers (bf16) and V in shared memory (MN-major).
// Two blocks share an SM (128 registers a thread), so one block's softmax and start-up overlap the
// other's matrix work. What made short prompts fast (ncu on the H100; figures in
// docs/results/gpu-h100-2026-11-24-kernels.md): every tile's gather waited on a global block-table
// load before its cp.async and before S could start, so the table now sits in shared memory and the
// gather is issued while S runs; Q is made from the element bytes without I2F, half a row per
// thread; the softmax uses ex2.approx, one FFMA an element and lazy rescaling (attention_tile.cuh).
// At 512 / 2048 tokens that took the kernel from 0.26x / 0.39x to 0.37x / 0.58x of cuBLAS. Variants
// tried: one head per block 0.20x / 0.30x / 0.35x (512 / 2048 / 8192); one block per SM with FA3's
// intra-warpgroup pipelining (S_j issued with P_{j-1} V_{j-1}, four stages, 175 registers) 0.22x /
// 0.35x / 0.41x, both before the changes above. The mma.sync kernel in prefill_kernels.cu stays for
// head dims and GQA groups this one does not cover, and as the benchmark's comparison.

#include <cmath>

#include "common/synthetic_model.h"
#include "kvcache/cuda/attention_tile.cuh"
#include "kvcache/cuda/kernels.h"
#include "kvcache/cuda/mma_primitives.cuh"
#include "kvcache/cuda/synthetic_elements.cuh"
#include "kvcache/cuda/wgmma_primitives.cuh"

namespace pdserve::cuda {
namespace {

constexpr int kRows = kPrefillTileRows;  // 64: the M of one warpgroup's wgmma
constexpr int kKeys = kAttentionTileKeys;  // keys per tile (the N of S = Q K^T)

constexpr int kThreads = 256;
static_assert(kRows * 2 == kThreads / 2, "two threads make one Q row of a warpgroup");

constexpr int kStages = 2;

template <int D>
struct Sm90Tile {
  static constexpr int kChunksPerRow = D / 8;
  static constexpr uint32_t kQBytes = kRows * D * 2;      // per warpgroup
  static constexpr uint32_t kKvBytes = kKeys * D * 2;     // one K or V tile
  static constexpr uint32_t kStageBytes = 2 * kKvBytes;   // K then V
  static constexpr uint32_t kColBlockBytes = kKeys * 128;
  static constexpr uint32_t kTableOffset = 2 * kQBytes + kStages * kStageBytes;
  static constexpr size_t kSmemBytes = kTableOffset + 1024;
};

// A chunk's block table is copied into shared memory when it has at most this many entries
// (32K tokens at 16 a block), so that a tile's gather reads block ids there rather than waiting
// on a global load before its cp.async; two blocks with their tables still fit on an SM.
constexpr int kMaxSmemTableEntries = 2048;

template <int D, bool kSmemTable>
__global__ void __launch_bounds__(kThreads, 2)
    PrefillAttentionSm90Kernel(PrefillArgs a, float scale_log2) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using T = Sm90Tile<D>;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t raw_addr = SharedAddress(smem_raw);
  uint8_t* smem = smem_raw + ((1024 - (raw_addr & 1023)) & 1023);
  const int wg = threadIdx.x / 128, wt = threadIdx.x % 128;
  uint8_t* q_smem = smem + wg * T::kQBytes;
  uint8_t* kv_smem = smem + 2 * T::kQBytes;  // [stage][K, V]
  const uint32_t q_addr = SharedAddress(q_smem);
  const uint32_t kv_addr = SharedAddress(kv_smem);

  const int group = a.shape.num_q_heads / a.shape.num_kv_heads;
  const int pairs = a.shape.num_kv_heads * (group / 2);  // per layer
  const int layer = blockIdx.x / pairs;
  const int pair = blockIdx.x % pairs;
  const int kvhead = pair / (group / 2);
  const int qhead = kvhead * group + (pair % (group / 2)) * 2 + wg;
  const TileDev tile = a.tiles[blockIdx.y];
  const ChunkDev ch = a.chunks[tile.chunk];
  const int total = ch.start_pos + ch.num_tokens;  // keys [0, total)
  const int warp = wt / 32, lane = threadIdx.x % 32;
  const int g = lane >> 2, tig = lane & 3;

  const int first_pos = ch.start_pos + tile.q0;
  const int last_pos = ch.start_pos + min(tile.q0 + kRows, ch.num_tokens) - 1;
  const int num_tiles = last_pos / kKeys + 1;

  // The block table: in shared memory when it fits. Tile 0's gather reads the global table while
  // the copy is under way; the first tile's barrier publishes the copy before tile 1's gather.
  const uint32_t* const global_table = a.tables + ch.table_off;
  const uint32_t* table = global_table;
  if constexpr (kSmemTable) {
    uint32_t* table_smem = reinterpret_cast<uint32_t*>(smem + T::kTableOffset);
    const int entries = (total + a.geo.block_size - 1) >> a.geo.block_shift;
    for (int i = threadIdx.x; i < entries; i += kThreads) table_smem[i] = global_table[i];
    table = table_smem;
  }

  // Every thread copies 16-byte chunk gcol of rows grow + i * kGatherRows of each K and V tile:
  // its pool address is a fixed base (layer, head, chunk) plus the row's block and slot, and its
  // shared-memory offset is fixed too (the rows it copies are 8k apart, so they share a swizzle).
  constexpr int kGatherRows = kThreads / T::kChunksPerRow;
  static_assert(kGatherRows % 8 == 0 && kKeys % kGatherRows == 0);
  const int grow = threadIdx.x / T::kChunksPerRow, gcol = threadIdx.x % T::kChunksPerRow;
  const uint32_t gather_smem = SwizzledChunkOffset(grow, gcol, kKeys);
  const std::byte* gather_base = a.pool + static_cast<int64_t>(layer) * a.geo.layer_stride +
                                 static_cast<int64_t>(kvhead) * a.geo.head_stride + gcol * 16;
  // A group is committed even when t is past the end, so that group counting stays uniform.
  auto load_tile = [&](int t, const uint32_t* tab) {
    if (t < num_tiles) {
      uint8_t* kd = kv_smem + (t % kStages) * T::kStageBytes + gather_smem;
#pragma unroll
      for (int i = 0; i < kKeys / kGatherRows; ++i) {
        const int key = t * kKeys + grow + i * kGatherRows;
        const std::byte* src = gather_base;
        int bytes = 0;
        if (key < total) {
          src += tab[key >> a.geo.block_shift] * a.geo.block_stride +
                 (key & (a.geo.block_size - 1)) * a.geo.row_bytes;
          bytes = 16;
        }
        CpAsync16(kd + i * kGatherRows * 128, src, bytes);
        CpAsync16(kd + i * kGatherRows * 128 + T::kKvBytes, src + (bytes ? a.geo.kind_stride : 0),
                  bytes);
      }
    }
    CpAsyncCommit();
  };
  load_tile(0, global_table);

  // This warpgroup's Q from the synthetic model, as the element bytes (exact in bf16; their
  // 1/64 is folded into the softmax scale, a power of two, so S is unchanged); rows past the
  // chunk repeat its last row and are not written out. Each thread makes half a row, so one row
  // seed serves eight chunks (at 512 tokens a block's Q is a large share of its integer work).
  {
    constexpr int kHalf = T::kChunksPerRow / 2;
    const int row = wt / 2, col0 = (wt & 1) * kHalf;
    const int r = min(tile.q0 + row, ch.num_tokens - 1);
    const uint64_t seed =
        model::RowSeed(a.tokens[ch.token_off + r], ch.start_pos + r, layer, qhead, model::kQuery);
#pragma unroll 4
    for (int i = 0; i < kHalf; ++i) {
      const int col = col0 + i;
      *reinterpret_cast<uint4*>(q_smem + SwizzledChunkOffset(row, col, kRows)) =
          ElementBytesAsBf16(model::ElementChunkHash(seed, col), 1.0f);
    }
  }

  const int r0 = tile.q0 + warp * 16 + g, r1 = r0 + 8;
  const int pos0 = ch.start_pos + min(r0, ch.num_tokens - 1);
  const int pos1 = ch.start_pos + min(r1, ch.num_tokens - 1);

  auto issue_s = [&](float (&s)[32], int t) {
    const uint32_t k_addr = kv_addr + (t % kStages) * T::kStageBytes;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t step = (kk & 3) * 32;
      const uint64_t da = SmemDescriptor(q_addr + (kk >> 2) * (kRows * 128) + step, 16, 1024);
      const uint64_t db = SmemDescriptor(k_addr + (kk >> 2) * T::kColBlockBytes + step, 16, 1024);
      WgmmaSS_N64(s, da, db, kk > 0);
    }
  };
  auto issue_pv = [&](float (&o)[D / 2], const uint32_t (&p)[kKeys / 16][4], int t) {
    const uint32_t v_addr = kv_addr + (t % kStages) * T::kStageBytes + T::kKvBytes;
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const uint64_t dv = SmemDescriptor(v_addr + kk * 16 * 128, T::kColBlockBytes, 1024);
      if constexpr (D == 128) {
        WgmmaRS_N128(o, p[kk], dv, 1);
      } else {
        WgmmaRS_N64(o, p[kk], dv, 1);
      }
    }
  };
  // Tile t is resident once every thread's copies of it have landed and been made visible to
  // the async proxy; the barrier also tells every thread that tile t - 1's stage is free (its
  // last reader, P V of t - 1, was waited for in the previous iteration), so tile t + 1 can go
  // there while tile t is used. The gather of t + 1 is issued after S_t's wgmma, so that its
  // block-table loads wait while the tensor cores work, not before they start.
  auto tile_ready = [&]() {
    CpAsyncWait<0>();
    FenceProxyAsync();
    __syncthreads();
  };

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  SoftmaxState st;
  uint32_t p[kKeys / 16][4];
  float s[32];
  float corr0, corr1;

  for (int t = 0; t < num_tiles; ++t) {
    tile_ready();
    PinRegisters(s);
    WgmmaFence();
    issue_s(s, t);
    WgmmaCommit();
    load_tile(t + 1, table);
    WgmmaWait<0>();
    PinRegisters(s);
    if (SoftmaxTile(s, p, st, corr0, corr1, t * kKeys + kKeys - 1 > first_pos, t * kKeys, pos0,
                    pos1, tig, scale_log2)) {
      RescaleRows(o, corr0, corr1);
    }
    PinRegisters(o);
    WgmmaFence();
    issue_pv(o, p, t);
    WgmmaCommit();
    WgmmaWait<0>();
    PinRegisters(o);
  }

  StoreAttentionRows<D>(a, ch, layer, qhead, r0, r1, tig, o, st);
#else
  static_assert(Sm90Tile<D>::kChunksPerRow > 0 && Sm90Tile<D>::kColBlockBytes > 0);
  __trap();
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

template <int D, bool kSmemTable>
cudaError_t LaunchSm90With(const PrefillArgs& args, cudaStream_t stream) {
  const size_t smem = Sm90Tile<D>::kSmemBytes + (kSmemTable ? kMaxSmemTableEntries * 4 : 0);
  static const cudaError_t attr =
      cudaFuncSetAttribute(PrefillAttentionSm90Kernel<D, kSmemTable>,
                           cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (attr != cudaSuccess) return attr;
  // Q holds element bytes: their 1/64 joins 1/sqrt(D) and log2(e).
  const float scale_log2 =
      1.4426950408889634f / sqrtf(static_cast<float>(D)) * model::kElementScale;
  dim3 grid(args.shape.num_layers * args.shape.num_q_heads / 2, args.num_tiles);
  PrefillAttentionSm90Kernel<D, kSmemTable><<<grid, kThreads, smem, stream>>>(args, scale_log2);
  return cudaGetLastError();
}

template <int D>
cudaError_t LaunchSm90For(const PrefillArgs& args, cudaStream_t stream) {
  return args.max_table_entries <= kMaxSmemTableEntries ? LaunchSm90With<D, true>(args, stream)
                                                         : LaunchSm90With<D, false>(args, stream);
}

}  // namespace

bool PrefillSm90ShapeSupported(int head_dim, int group) {
  return (head_dim == 64 || head_dim == 128) && group % 2 == 0;
}

cudaError_t LaunchPrefillAttentionSm90(const PrefillArgs& args, cudaStream_t stream) {
  if (args.num_tiles == 0) return cudaSuccess;
  switch (args.shape.head_dim) {
    case 64: return LaunchSm90For<64>(args, stream);
    case 128: return LaunchSm90For<128>(args, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace pdserve::cuda
