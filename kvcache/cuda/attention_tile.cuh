#pragma once

// The per-thread pieces of flash attention that both prefill kernels (mma.sync and wgmma) share.
// Both hold S and O in the m16n8 accumulator layout: a thread owns rows g and g + 8 of its
// warp's 16 and, per 8-column n-tile j, elements [4j, 4j + 4) = (row g: cols 2t, 2t + 1; row g + 8:
// cols 2t, 2t + 1). A key tile is 64 keys.

#include <cmath>
#include <cstdint>

#include "kvcache/cuda/kernels.h"
#include "kvcache/cuda/mma_primitives.cuh"

namespace pdserve::cuda {

inline constexpr int kAttentionTileKeys = 64;

// Running max and sum (log2 units) of this thread's two rows.
struct SoftmaxState {
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
};

// 2^x by the special-function unit alone: exp2f adds range handling that costs three more
// instructions an element, and the softmax's arguments are never denormal-sensitive.
__device__ __forceinline__ float Exp2Approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// A row's running maximum moves only when a tile's maximum exceeds it by more than this (log2
// units), so P stays below 2^8 (exact enough in bf16, no fp32 overflow) and O is rescaled only
// rarely (FlashAttention-4's lazy rescaling): the final O / l is the same.
inline constexpr float kRescaleLog2 = 8.0f;

// Online softmax of one S tile (raw scores; `scale_log2` takes them to log2 units): masks keys
// after each row's position (the causal diagonal; keys past the end of the prompt are after
// every row's too), updates the state, and packs P to bf16 A fragments (keys [16kk, 16kk + 16)
// are n-tiles 2kk and 2kk + 1). Returns whether O must be rescaled by corr0 / corr1 (the same
// answer for the whole warp, so the caller's branch does not diverge).
__device__ __forceinline__ bool SoftmaxTile(float (&s)[32],
                                            uint32_t (&p)[kAttentionTileKeys / 16][4],
                                            SoftmaxState& st, float& corr0, float& corr1,
                                            bool needs_mask, int key0, int pos0, int pos1, int tig,
                                            float scale_log2) {
  constexpr int kTiles = kAttentionTileKeys / 8;
  if (needs_mask) {
#pragma unroll
    for (int nt = 0; nt < kTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = key0 + nt * 8 + 2 * tig + (e & 1);
        if (key > (e < 2 ? pos0 : pos1)) s[4 * nt + e] = -INFINITY;
      }
    }
  }
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    mx0 = fmaxf(mx0, fmaxf(s[4 * nt], s[4 * nt + 1]));
    mx1 = fmaxf(mx1, fmaxf(s[4 * nt + 2], s[4 * nt + 3]));
  }
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
  // Key 0 is in tile 0 and precedes every row, so the maxima are finite from tile 0 on (and the
  // first tile always moves them off -inf).
  mx0 *= scale_log2;
  mx1 *= scale_log2;
  const bool rescale =
      __any_sync(0xffffffffu, mx0 > st.m0 + kRescaleLog2 || mx1 > st.m1 + kRescaleLog2);
  corr0 = corr1 = 1.0f;
  if (rescale) {
    const float n0 = fmaxf(st.m0, mx0), n1 = fmaxf(st.m1, mx1);
    corr0 = Exp2Approx(st.m0 - n0);
    corr1 = Exp2Approx(st.m1 - n1);
    st.m0 = n0;
    st.m1 = n1;
    st.l0 *= corr0;
    st.l1 *= corr1;
  }
  const float b0 = -st.m0, b1 = -st.m1;
#pragma unroll
  for (int nt = 0; nt < kTiles; ++nt) {
    const float e0 = Exp2Approx(fmaf(s[4 * nt + 0], scale_log2, b0));
    const float e1 = Exp2Approx(fmaf(s[4 * nt + 1], scale_log2, b0));
    const float e2 = Exp2Approx(fmaf(s[4 * nt + 2], scale_log2, b1));
    const float e3 = Exp2Approx(fmaf(s[4 * nt + 3], scale_log2, b1));
    st.l0 += e0 + e1;
    st.l1 += e2 + e3;
    p[nt >> 1][(nt & 1) * 2 + 0] = PackBf16(e0, e1);
    p[nt >> 1][(nt & 1) * 2 + 1] = PackBf16(e2, e3);
  }
  return rescale;
}

// Starts the asynchronous copy of 16-byte chunk `col` of the K and V rows of key position `kpos`
// (one layer, one KV head) from the paged pool through the block table `table`. Positions at or
// past `total` fill zeros: they are masked, and zeros keep them finite.
__device__ __forceinline__ void CpAsyncKvChunk(const PrefillArgs& a, const uint32_t* table,
                                               int kpos, int total, int layer, int kvhead,
                                               int col, void* k_dst, void* v_dst) {
  const std::byte* src = a.pool;
  int bytes = 0;
  if (kpos < total) {
    const uint32_t block = table[kpos >> a.geo.block_shift];
    src = a.pool + a.geo.RowOffset(block, kpos & (a.geo.block_size - 1), layer, kvhead, 0) +
          col * 16;
    bytes = 16;
  }
  CpAsync16(k_dst, src, bytes);
  CpAsync16(v_dst, bytes ? src + a.geo.kind_stride : src, bytes);
}

template <int N>
__device__ __forceinline__ void RescaleRows(float (&o)[N], float corr0, float corr1) {
#pragma unroll
  for (int i = 0; i < N / 4; ++i) {
    o[4 * i + 0] *= corr0;
    o[4 * i + 1] *= corr0;
    o[4 * i + 2] *= corr1;
    o[4 * i + 3] *= corr1;
  }
}

// Normalises this thread's two rows of O (query rows r0 and r1 of chunk `ch`, head `qhead` of
// `layer`) and stores them to a.out as [token][layer][q head][dim]; rows past the chunk are not
// written. Without an output, a store the compiler cannot prove dead keeps the computation.
template <int D>
__device__ __forceinline__ void StoreAttentionRows(const PrefillArgs& a, const ChunkDev& ch,
                                                   int layer, int qhead, int r0, int r1, int tig,
                                                   const float (&o)[D / 2], SoftmaxState st) {
  st.l0 += __shfl_xor_sync(0xffffffffu, st.l0, 1);
  st.l0 += __shfl_xor_sync(0xffffffffu, st.l0, 2);
  st.l1 += __shfl_xor_sync(0xffffffffu, st.l1, 1);
  st.l1 += __shfl_xor_sync(0xffffffffu, st.l1, 2);
  const float inv0 = 1.0f / st.l0, inv1 = 1.0f / st.l1;
  const int q_heads = a.shape.num_q_heads;
  const size_t row_floats = static_cast<size_t>(a.shape.num_layers) * q_heads * D;
  const size_t head_off = (static_cast<size_t>(layer) * q_heads + qhead) * D;
  if (a.out != nullptr) {
#pragma unroll
    for (int i = 0; i < D / 8; ++i) {
      const int dim = i * 8 + 2 * tig;
      if (r0 < ch.num_tokens) {
        *reinterpret_cast<float2*>(a.out + (ch.token_off + r0) * row_floats + head_off + dim) =
            make_float2(o[4 * i] * inv0, o[4 * i + 1] * inv0);
      }
      if (r1 < ch.num_tokens) {
        *reinterpret_cast<float2*>(a.out + (ch.token_off + r1) * row_floats + head_off + dim) =
            make_float2(o[4 * i + 2] * inv1, o[4 * i + 3] * inv1);
      }
    }
  } else {
    float acc = 0.0f;
#pragma unroll
    for (int i = 0; i < D / 8; ++i) acc += o[4 * i] * inv0 + o[4 * i + 3] * inv1;
    if (acc == 1234567.0f) a.sink[0] = acc;
  }
}

}  // namespace pdserve::cuda
