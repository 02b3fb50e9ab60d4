// Decode attention for head_dim 128 with the tensor cores doing the attention math, so that the
// pass is bound by the K/V read and the checksum's integer hash, not by fp32 dot products.
//
// Why: the CUDA-core kernel (decode_kernels.cu) spends per K/V row pair 8 FMAs x GQ heads for
// q.k, four shuffle+add steps per head to reduce them over the row's 16 lanes, the exponentials
// and 8 FMAs x GQ for p.v, on top of the hash; on an H200 that is more instructions than the
// memory system leaves time for (0.46-0.53x of a D2D copy where the hash alone ran at 0.82-0.96x).
// Here a warp takes 16 keys at a time and does q.k and p.v as bf16 mma.sync (m16n8k16, fp32
// accumulators), loading the K and V rows straight into the fragment layouts, so no shared
// memory, no shuffle reductions, and one exponential per lane per key pair.
//
// Lane (g = lane / 4, t = lane % 4) of a warp, for the 16 keys [pos, pos + 16):
//  - K: rows pos + g and pos + g + 8, 16-byte chunks t, t + 4, t + 8, t + 12 (8 dims each). Dot
//    products do not care which dims go to which k slot as long as Q uses the same map, so chunk
//    t + 4c word w is k slots {2t, 2t+1} (w even) or {2t+8, 2t+9} (w odd) of mma 2c + w / 2, and
//    Q's A fragment (row = head g) holds the same dims. S = Q K^T comes out as head g, keys
//    {2t, 2t+1} (n-tile 0) and {8+2t, 9+2t} (n-tile 1): exactly P's B fragment for the next mma.
//  - V: rows pos + {2t, 2t+1, 2t+8, 2t+9}, chunks g and g + 8. O^T = V^T P^T with V^T as the A
//    operand (rows = dims): word w of chunk g + 8h holds dims d, d + 1 (d = 8(g + 8h) + 2w),
//    which become rows g and g + 8 of mma 4h + w, so one byte permute per register pairs two
//    keys' values of one dim. The accumulators hold O for heads {2t, 2t+1}, those two dims.
//  - P goes to the tensor cores as bf16 hi + lo (two mma): the product keeps ~16 bits of P,
//    close to the fp32 path's result (the tests compare with the CPU at 1e-3).
// Every K/V byte is loaded by exactly one lane, which also hashes it (the checksum is a sum, so
// any split of the words over lanes gives the CPU's value). The probe's scores stay fp32 FMAs
// on CUDA cores (exact in any order, synthetic_model.h), in a second pass of the probe block.
//
// Two loops (Overlap below): load a tile then do its math, relying on 12 warps an SM to cover
// the loads, or issue the next tile's loads into a second register buffer first.

#include <cuda_bf16.h>

#include <cmath>

#include "common/synthetic_model.h"
#include "kvcache/cuda/attention_tile.cuh"
#include "kvcache/cuda/decode_common.cuh"
#include "kvcache/cuda/kernels.h"
#include "kvcache/cuda/mma_primitives.cuh"
#include "kvcache/cuda/synthetic_elements.cuh"

namespace pdserve::cuda {
namespace {

constexpr int kD = 128;
constexpr int kTileKeys = 16;
constexpr int kBlockKeys = kTileKeys * kDecodeWarps;  // one tile per warp per step

// One warp's 16 keys in registers (see the header comment for which lane holds what).
struct KvTile {
  uint4 k[2][4];  // [key g + 8j][chunk t + 4c]
  uint4 v[4][2];  // [key 2t, 2t+1, 2t+8, 2t+9][chunk g + 8h]
};

struct LaneCtx {
  const std::byte* head_base;  // this (layer, kv head)'s K rows; V rows are kind_stride further
  const uint32_t* table;
  DeviceGeometry geo;
  int end;
  int g, t, lane;
};

__device__ __forceinline__ int VKey(int t, int r) { return 2 * t + (r & 1) + 8 * (r >> 1); }

__device__ __forceinline__ const std::byte* RowPtr(const LaneCtx& c, int p) {
  const uint32_t block = __ldg(c.table + (p >> c.geo.block_shift));
  return c.head_base + block * c.geo.block_stride + (p & (c.geo.block_size - 1)) * c.geo.row_bytes;
}

__device__ __forceinline__ void LoadK(const LaneCtx& c, int pos, KvTile& tl) {
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int p = pos + c.g + 8 * j;
    if (p < c.end) {
      const std::byte* row = RowPtr(c, p);
#pragma unroll
      for (int ch = 0; ch < 4; ++ch) tl.k[j][ch] = LoadStreaming16(row + (c.t + 4 * ch) * 16);
    } else {
#pragma unroll
      for (int ch = 0; ch < 4; ++ch) tl.k[j][ch] = make_uint4(0, 0, 0, 0);
    }
  }
}

__device__ __forceinline__ void LoadV(const LaneCtx& c, int pos, KvTile& tl) {
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int p = pos + VKey(c.t, r);
    if (p < c.end) {
      const std::byte* row = RowPtr(c, p) + c.geo.kind_stride;
      tl.v[r][0] = LoadStreaming16(row + c.g * 16);
      tl.v[r][1] = LoadStreaming16(row + (c.g + 8) * 16);
    } else {
      tl.v[r][0] = tl.v[r][1] = make_uint4(0, 0, 0, 0);
    }
  }
}

__device__ __forceinline__ void LoadTile(const LaneCtx& c, int pos, KvTile& tl) {
  LoadK(c, pos, tl);
  LoadV(c, pos, tl);
}

// Checksum terms of the tile's words this lane loaded. Lane L computes the row salt of key
// pos + L % 16, kind L / 16 (RowSalts), and the others take theirs by shuffle (one Mix64 a lane,
// not six).
__device__ __forceinline__ uint64_t RowSalts(const LaneCtx& c, int pos, int layer, int kvhead) {
  return model::RowSalt(pos + (c.lane & 15), layer, kvhead, c.lane >> 4);
}

__device__ __forceinline__ uint64_t HashK(const LaneCtx& c, int pos, uint64_t mine,
                                          const KvTile& tl) {
  constexpr uint64_t G = model::kGolden;
  uint64_t sum = 0;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    // Chunk t + 4ch holds words 2t + 8ch and 2t + 8ch + 1 of the row.
    const uint64_t base = Shfl64(mine, c.g + 8 * j) + static_cast<uint64_t>(2 * c.t) * G;
    if (pos + c.g + 8 * j < c.end) {
#pragma unroll
      for (int ch = 0; ch < 4; ++ch)
        sum += WordTermSum(tl.k[j][ch], base, 8 * ch * G, (8 * ch + 1) * G);
    }
  }
  return sum;
}

__device__ __forceinline__ uint64_t HashV(const LaneCtx& c, int pos, uint64_t mine,
                                          const KvTile& tl) {
  constexpr uint64_t G = model::kGolden;
  uint64_t sum = 0;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    // Chunk g + 8h holds words 2g + 16h and 2g + 16h + 1.
    const uint64_t base = Shfl64(mine, 16 + VKey(c.t, r)) + static_cast<uint64_t>(2 * c.g) * G;
    if (pos + VKey(c.t, r) < c.end) {
      sum += WordTermSum(tl.v[r][0], base, 0, G);
      sum += WordTermSum(tl.v[r][1], base, 16 * G, 17 * G);
    }
  }
  return sum;
}

__device__ __forceinline__ float Bf16Low(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float Bf16High(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }

// The probe head's exact fp32 scores over this warp's keys, in a pass of its own after the main
// loop (probe block only: one (layer, kv head) of all, so re-reading its K rows costs ~1/500 of
// the step's bytes, and the main loop keeps no registers for it). Lane (g, t) dots key g + 8j
// over its 32 dims with the probe query's same dims, held by lane (GQ - 1, t).
template <int GQ>
__device__ __forceinline__ model::ProbeArgmax ProbePass(const LaneCtx& c, int first,
                                                        const uint32_t (&q)[4][4]) {
  model::ProbeArgmax probe;
  uint32_t qp[4][4];
#pragma unroll
  for (int ch = 0; ch < 4; ++ch) {
#pragma unroll
    for (int w = 0; w < 4; ++w) qp[ch][w] = __shfl_sync(0xffffffffu, q[ch][w], (GQ - 1) * 4 + c.t);
  }
#pragma unroll 1
  for (int pos = first; pos < c.end; pos += kBlockKeys) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int p = pos + c.g + 8 * j;
      float d = 0.0f;
      if (p < c.end) {
        const std::byte* row = RowPtr(c, p);
#pragma unroll
        for (int ch = 0; ch < 4; ++ch) {
          const uint4 k = LoadStreaming16(row + (c.t + 4 * ch) * 16);
#pragma unroll
          for (int w = 0; w < 4; ++w) {
            d = fmaf(Bf16Low(qp[ch][w]), Bf16Low(Word(k, w)), d);
            d = fmaf(Bf16High(qp[ch][w]), Bf16High(Word(k, w)), d);
          }
        }
      }
      d += __shfl_xor_sync(0xffffffffu, d, 1);
      d += __shfl_xor_sync(0xffffffffu, d, 2);
      if (c.t == 0 && p < c.end) probe.Offer(d, p);
    }
  }
  return probe;
}

// Online softmax state of head g (m, l: this lane's part of the sum) and O^T's accumulators.
struct AttnState {
  float m = -INFINITY, l = 0.0f;
  float acc[8][4] = {};
};

// S = Q K^T for the tile, the online softmax update (rescaling the accumulators), and P as
// bf16 hi + lo: the B fragments of keys {2t, 2t+1} and {2t+8, 2t+9} of head g.
template <int GQ>
__device__ __forceinline__ void ScoreTile(const LaneCtx& c, int pos, const KvTile& tl,
                                          const uint32_t (&q)[4][4], float scale_log2,
                                          AttnState& st, uint32_t (&hi)[2], uint32_t (&lo)[2]) {
  float s[2][4];
#pragma unroll
  for (int j = 0; j < 2; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) s[j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
      const int ch = kk >> 1, w = 2 * (kk & 1);
      const uint32_t a[4] = {q[ch][w], 0u, q[ch][w + 1], 0u};
      Mma16816(s[j], a, Word(tl.k[j][ch], w), Word(tl.k[j][ch], w + 1));
    }
  }
  // Head g, keys 8j + 2t + e (rows g + 8 of S are the zero rows of A).
  float p[2][2];
  float mx = -INFINITY;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      p[j][e] = pos + 8 * j + 2 * c.t + e < c.end ? s[j][e] * scale_log2 : -INFINITY;
      mx = fmaxf(mx, p[j][e]);
    }
  }
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float m_new = fmaxf(st.m, mx);  // finite: key pos is always valid
  const float corr = Exp2Approx(st.m - m_new);
  st.m = m_new;
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < 2; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      p[j][e] = Exp2Approx(p[j][e] - m_new);
      sum += p[j][e];
    }
  }
  st.l = st.l * corr + sum;
  if (__any_sync(0xffffffffu, corr != 1.0f)) {
    // The accumulators hold heads 2t and 2t + 1, whose corrections live in lanes 8t and 8t + 4.
    const float c0 = __shfl_sync(0xffffffffu, corr, 8 * c.t);
    const float c1 = __shfl_sync(0xffffffffu, corr, 8 * c.t + 4);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      st.acc[i][0] *= c0;
      st.acc[i][1] *= c1;
      st.acc[i][2] *= c0;
      st.acc[i][3] *= c1;
    }
  }
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    hi[j] = PackBf16(p[j][0], p[j][1]);
    lo[j] = PackBf16(p[j][0] - Bf16Low(hi[j]), p[j][1] - Bf16High(hi[j]));
  }
}

// O^T += V^T P^T for the tile.
__device__ __forceinline__ void ApplyV(const KvTile& tl, const uint32_t (&hi)[2],
                                       const uint32_t (&lo)[2], AttnState& st) {
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int h = i >> 2, w = i & 3;
    const uint32_t x0 = Word(tl.v[0][h], w), x1 = Word(tl.v[1][h], w);
    const uint32_t x2 = Word(tl.v[2][h], w), x3 = Word(tl.v[3][h], w);
    const uint32_t a[4] = {__byte_perm(x0, x1, 0x5410), __byte_perm(x0, x1, 0x7632),
                           __byte_perm(x2, x3, 0x5410), __byte_perm(x2, x3, 0x7632)};
    Mma16816(st.acc[i], a, hi[0], hi[1]);
    Mma16816(st.acc[i], a, lo[0], lo[1]);
  }
}

// How a warp overlaps its loads with its math. kSplitLoads (the default) loads a tile's K rows,
// makes S, then loads the V rows into the registers K no longer needs: 128 registers, so 4
// blocks = 16 warps an SM cover each other's waits. That beat loading the whole tile first
// (kSerial: 167 registers, 3 blocks an SM) at every shape on the H100 (8 x 2048: 0.97-0.98 of
// the checksum pass against 0.94; docs/results/gpu-h100-2026-12-06-decode-split-loads): a grid
// of 2048 blocks is 3.9 rounds of 4 blocks an SM, but 5.2 rounds of 3 (the last 17% full).
// kRegisters first loads the next tile into a second register buffer (255 registers: 2 blocks
// an SM). Measured slower and removed: cp.async staging in shared memory (2 or 3 deep;
// docs/results/gpu-h200-2026-12-04-decode-kernel), an L2 prefetch of the next 1-3 tiles
// (docs/results/gpu-h200-2026-12-06-decode-prefetch), kSerial at 4 blocks an SM (120 bytes of
// spills), and K of the next tile loaded with V of this one, at 3 or 4 blocks an SM.
enum Overlap { kSplitLoads, kSerial, kRegisters };

constexpr int MinBlocks(Overlap o) { return o == kSplitLoads ? 4 : o == kSerial ? 3 : 2; }

template <int GQ, Overlap kOverlap>
__global__ void __launch_bounds__(kDecodeWarps * 32, MinBlocks(kOverlap))
    DecodeMmaKernel(DecodeArgs a, float scale_log2) {
  static_assert(GQ <= 8, "the n = 8 columns of O^T are the group's query heads");
  __shared__ float sm_ml[kDecodeWarps * GQ * 2];
  __shared__ float sm_acc[kDecodeWarps * GQ * kD];

  const DecodeWorkDev w = a.work[blockIdx.x];
  const int kvhead = blockIdx.y, layer = blockIdx.z;
  const DecodeSeqDev s = a.seqs[w.seq];
  const int begin = w.split * a.partition;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  LaneCtx c;
  c.head_base = a.pool + layer * a.geo.layer_stride + kvhead * a.geo.head_stride;
  c.table = a.tables + s.table_off;
  c.geo = a.geo;
  c.end = min(s.seq_len, begin + a.partition);
  c.g = lane >> 2;
  c.t = lane & 3;
  c.lane = lane;

  const bool probe_block = layer == model::ProbeLayer(a.shape.num_layers) &&
                           kvhead == model::ProbeKvHead(a.shape.num_kv_heads);
  // Q's A fragment: head g's dims of chunks t + 4c, bf16 (the elements are exact in bf16); the
  // softmax scale is applied to the fp32 scores instead. Heads past the group are zero rows.
  uint32_t q[4][4] = {};
  if (c.g < GQ) {
    const uint64_t seed =
        model::RowSeed(s.last_token, s.seq_len - 1, layer, kvhead * GQ + c.g, model::kQuery);
#pragma unroll
    for (int ch = 0; ch < 4; ++ch) {
      const uint4 e =
          ElementBytesAsBf16(model::ElementChunkHash(seed, c.t + 4 * ch), model::kElementScale);
      q[ch][0] = e.x;
      q[ch][1] = e.y;
      q[ch][2] = e.z;
      q[ch][3] = e.w;
    }
  }

  uint64_t xsum = 0;
  AttnState st;
  auto process = [&](int pos, const KvTile& tl) {
    const uint64_t mine = RowSalts(c, pos, layer, kvhead);
    xsum += HashK(c, pos, mine, tl) + HashV(c, pos, mine, tl);
    uint32_t hi[2], lo[2];
    ScoreTile<GQ>(c, pos, tl, q, scale_log2, st, hi, lo);
    ApplyV(tl, hi, lo, st);
  };
  const int first = begin + kTileKeys * warp;
  int pos = first;
  if constexpr (kOverlap == kRegisters) {
    KvTile ta, tb;
    if (pos < c.end) LoadTile(c, pos, ta);
#pragma unroll 1
    for (; pos < c.end; pos += 2 * kBlockKeys) {
      const int next = pos + kBlockKeys;
      if (next < c.end) LoadTile(c, next, tb);
      process(pos, ta);
      if (next >= c.end) break;
      if (next + kBlockKeys < c.end) LoadTile(c, next + kBlockKeys, ta);
      process(next, tb);
    }
  } else if constexpr (kOverlap == kSplitLoads) {
    // K's registers are free again once S is made; V's loads take them.
#pragma unroll 1
    for (; pos < c.end; pos += kBlockKeys) {
      KvTile tl;
      LoadK(c, pos, tl);
      const uint64_t mine = RowSalts(c, pos, layer, kvhead);
      xsum += HashK(c, pos, mine, tl);
      uint32_t hi[2], lo[2];
      ScoreTile<GQ>(c, pos, tl, q, scale_log2, st, hi, lo);
      LoadV(c, pos, tl);
      xsum += HashV(c, pos, mine, tl);
      ApplyV(tl, hi, lo, st);
    }
  } else {
#pragma unroll 1
    for (; pos < c.end; pos += kBlockKeys) {
      KvTile tl;
      LoadTile(c, pos, tl);
      process(pos, tl);
    }
  }

  model::ProbeArgmax probe;
  if (probe_block) probe = ProbePass<GQ>(c, first, q);
  const int slot = s.split_off + w.split;
  FinishChecksumAndProbe(a, w.seq, slot, xsum, probe, probe_block);
  {
    st.l += __shfl_xor_sync(0xffffffffu, st.l, 1);
    st.l += __shfl_xor_sync(0xffffffffu, st.l, 2);
    if (c.t == 0 && c.g < GQ) {
      sm_ml[(warp * GQ + c.g) * 2] = st.m;
      sm_ml[(warp * GQ + c.g) * 2 + 1] = st.l;
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int d = 8 * (c.g + 8 * (i >> 2)) + 2 * (i & 3);
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int h = 2 * c.t + e;
        if (h < GQ) {
          sm_acc[(warp * GQ + h) * kD + d] = st.acc[i][e];
          sm_acc[(warp * GQ + h) * kD + d + 1] = st.acc[i][e + 2];
        }
      }
    }
    __syncthreads();
    StoreBlockPartial<kD, GQ, kDecodeWarps>(a, sm_ml, sm_acc, slot, layer, kvhead);
  }
}

template <int GQ>
cudaError_t LaunchMain(const DecodeArgs& a, float scale_log2, DecodeVariant variant,
                       cudaStream_t stream) {
  dim3 grid(a.num_work, a.shape.num_kv_heads, a.shape.num_layers);
  // Auto: with fewer blocks than two rounds of 3 an SM (one short batch, split), each warp's
  // own overlap matters more than how many warps an SM holds; measured on the H200: 8 x 512..8192
  // tokens (2048 blocks) ran faster serial, 1 x 8192 (768 blocks) with the register buffer
  // (serial then; the split loads were measured on 1024 blocks and more).
  const int64_t blocks = int64_t{grid.x} * grid.y * grid.z;
  const bool registers = variant == DecodeVariant::kMmaRegisters ||
                         (variant == DecodeVariant::kMma && blocks < 2 * 3 * int64_t{a.num_sms});
  if (registers) {
    DecodeMmaKernel<GQ, kRegisters><<<grid, kDecodeWarps * 32, 0, stream>>>(a, scale_log2);
  } else if (variant == DecodeVariant::kMmaSerial) {
    DecodeMmaKernel<GQ, kSerial><<<grid, kDecodeWarps * 32, 0, stream>>>(a, scale_log2);
  } else {
    DecodeMmaKernel<GQ, kSplitLoads><<<grid, kDecodeWarps * 32, 0, stream>>>(a, scale_log2);
  }
  return cudaGetLastError();
}

}  // namespace

bool DecodeMmaShapeSupported(int head_dim, int group) {
  return head_dim == kD && (group == 4 || group == 8);
}

cudaError_t LaunchDecodeMmaMain(const DecodeArgs& a, float scale_log2, DecodeVariant variant,
                                cudaStream_t stream) {
  const int group = a.shape.num_q_heads / a.shape.num_kv_heads;
  if (!DecodeMmaShapeSupported(a.shape.head_dim, group)) return cudaErrorInvalidValue;
  return group == 4 ? LaunchMain<4>(a, scale_log2, variant, stream)
                    : LaunchMain<8>(a, scale_log2, variant, stream);
}

}  // namespace pdserve::cuda
