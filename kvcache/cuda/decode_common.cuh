#pragma once

// Device pieces that both decode kernels share (decode_kernels.cu: any head_dim with CUDA-core
// math; decode_mma_kernel.cu: head_dim 128 with mma.sync): 64-bit shuffles, the checksum term of
// a 16-byte chunk, the probe's merge, and the streaming 16-byte load.

#include <cmath>
#include <cstdint>

#include "common/synthetic_model.h"
#include "kvcache/cuda/kernels.h"

namespace pdserve::cuda {

inline constexpr int kDecodeWarps = 4;

__device__ __forceinline__ uint64_t Shfl64(uint64_t v, int src) {
  const uint32_t lo = __shfl_sync(0xffffffffu, static_cast<uint32_t>(v), src);
  const uint32_t hi = __shfl_sync(0xffffffffu, static_cast<uint32_t>(v >> 32), src);
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// WordTerm of a 16-byte chunk's two words (c0, c1: their index x golden).
__device__ __forceinline__ uint64_t WordTermSum(const uint4& v, uint64_t salt, uint64_t c0,
                                                uint64_t c1) {
  const uint64_t w0 = (static_cast<uint64_t>(v.y) << 32) | v.x;
  const uint64_t w1 = (static_cast<uint64_t>(v.w) << 32) | v.z;
  return model::TermHash(w0 ^ (salt + c0)) + model::TermHash(w1 ^ (salt + c1));
}

// Merges another thread's probe state (ProbeArgmax::Offer's order: score, then lower position).
__device__ __forceinline__ void ShflMergeProbe(model::ProbeArgmax& best, int mask) {
  const float s = __shfl_xor_sync(0xffffffffu, best.score, mask);
  const int32_t p = __shfl_xor_sync(0xffffffffu, best.pos, mask);
  if (p >= 0) best.Offer(s, p);
}

// A 16-byte read of K/V that nothing reads again in this step: no L1 allocation, so the block
// tables stay cached.
__device__ __forceinline__ uint4 LoadStreaming16(const std::byte* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// Word i (0..3) of a uint4; i is a compile-time constant after unrolling.
__device__ __forceinline__ uint32_t Word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// End of a block's pass: the warp's checksum into the sequence's sum (one atomic per warp;
// wrap-around adds commute, so the CPU's value comes out whatever the order) and, in the probe
// block, the block's best probe score into its slot. Block-uniform: every thread calls it.
__device__ __forceinline__ void FinishChecksumAndProbe(const DecodeArgs& a, int seq, int slot,
                                                       uint64_t xsum, model::ProbeArgmax probe,
                                                       bool probe_block) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int off = 16; off > 0; off /= 2) xsum += Shfl64(xsum, lane ^ off);
  if (lane == 0 && xsum != 0) {
    atomicAdd(a.checksums + seq, static_cast<unsigned long long>(xsum));
  }
  if (!probe_block) return;
  __shared__ float sm_probe_score[kDecodeWarps];
  __shared__ int32_t sm_probe_pos[kDecodeWarps];
#pragma unroll
  for (int off = 16; off > 0; off /= 2) ShflMergeProbe(probe, off);
  if (lane == 0) {
    sm_probe_score[warp] = probe.score;
    sm_probe_pos[warp] = probe.pos;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int wi = 1; wi < kDecodeWarps; ++wi) {
      if (sm_probe_pos[wi] >= 0) probe.Offer(sm_probe_score[wi], sm_probe_pos[wi]);
    }
    a.probe_score[slot] = probe.score;
    a.probe_pos[slot] = probe.pos;
  }
}

// Merges the softmax states of a block's kGroups row groups (sm_ml: [group][h][max, sum],
// sm_acc: [group][h][D], written before a __syncthreads) into the slot's partial result. A
// group that saw no key has max -inf and is skipped.
template <int D, int GQ, int kGroups>
__device__ __forceinline__ void StoreBlockPartial(const DecodeArgs& a, const float* sm_ml,
                                                  const float* sm_acc, int slot, int layer,
                                                  int kvhead) {
  const size_t part =
      ((static_cast<size_t>(slot) * a.shape.num_layers + layer) * a.shape.num_kv_heads + kvhead) *
      GQ;
  for (int idx = threadIdx.x; idx < GQ * D; idx += blockDim.x) {
    const int h = idx / D, d = idx % D;
    float mx = -INFINITY;
    for (int gi = 0; gi < kGroups; ++gi) mx = fmaxf(mx, sm_ml[(gi * GQ + h) * 2]);
    float sum_l = 0.0f, sum_acc = 0.0f;
    for (int gi = 0; gi < kGroups; ++gi) {
      const float mg = sm_ml[(gi * GQ + h) * 2];
      if (mg == -INFINITY) continue;
      const float f = exp2f(mg - mx);
      sum_l += f * sm_ml[(gi * GQ + h) * 2 + 1];
      sum_acc += f * sm_acc[(gi * GQ + h) * D + d];
    }
    a.part_acc[(part + h) * D + d] = sum_acc;
    if (d == 0) {
      a.part_ml[(part + h) * 2] = mx;
      a.part_ml[(part + h) * 2 + 1] = sum_l;
    }
  }
}

}  // namespace pdserve::cuda
