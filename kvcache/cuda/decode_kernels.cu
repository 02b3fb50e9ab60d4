// Decode on the GPU: paged attention of one query token per sequence over its KV, split over
// the sequence when the batch is small, with the checksum of every K/V word read fused into
// the same pass, then a combine of the splits and the next token.
//
// A block handles one (sequence, split, layer, kv head) and all query heads of that KV head's
// group, so each K/V row is read from HBM exactly once per step. A row of head_dim bf16 is read
// by G = head_dim / 8 lanes, 16 bytes each; a warp covers 32 / G rows per load, four loads deep.
// This CUDA-core kernel serves the small head dims (16, 64); head_dim 128 runs the tensor-core
// pass of decode_mma_kernel.cu, which this file's launcher calls before the same combine.

#include <cmath>
#include <cstdlib>
#include <string_view>

#include "common/synthetic_model.h"
#include "kvcache/cuda/decode_common.cuh"
#include "kvcache/cuda/kernels.h"

namespace pdserve::cuda {
namespace {

constexpr int kUnroll = 4;

__device__ __forceinline__ void Unpack8(const uint4& v, float (&f)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
  }
}

template <int D, int GQ, bool kAttn>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    DecodeKernel(DecodeArgs a, float scale_log2) {
  constexpr int G = D / 8;   // lanes per row
  constexpr int R = 32 / G;  // rows per warp per load
  constexpr int kGroups = kDecodeWarps * R;
  constexpr int kKeysPerIter = kGroups * kUnroll;
  __shared__ float sm_ml[kAttn ? kGroups * GQ * 2 : 1];
  __shared__ float sm_acc[kAttn ? kGroups * GQ * D : 1];

  const DecodeWorkDev w = a.work[blockIdx.x];
  const int kvhead = blockIdx.y, layer = blockIdx.z;
  const DecodeSeqDev s = a.seqs[w.seq];
  const int begin = w.split * a.partition;
  const int end = min(s.seq_len, begin + a.partition);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sub = lane / G, gl = lane % G;
  const uint32_t* table = a.tables + s.table_off;
  const std::byte* base =
      a.pool + layer * a.geo.layer_stride + kvhead * a.geo.head_stride + gl * 16;
  const uint64_t c0 = static_cast<uint64_t>(2 * gl) * model::kGolden;
  const uint64_t c1 = static_cast<uint64_t>(2 * gl + 1) * model::kGolden;
  uint64_t xsum = 0;

  // The attention probe: one (layer, kv head) block pair reads the probe q head's exact scores
  // (unscaled: every partial sum is a multiple of 1/4096, exact in fp32 in any order).
  const bool probe_block = layer == model::ProbeLayer(a.shape.num_layers) &&
                           kvhead == model::ProbeKvHead(a.shape.num_kv_heads);
  model::ProbeArgmax probe;
  float qp[8];
  if (probe_block) {
    const uint64_t seed = model::RowSeed(s.last_token, s.seq_len - 1, layer,
                                         model::ProbeQHead(a.shape.num_q_heads), model::kQuery);
#pragma unroll
    for (int e = 0; e < 8; ++e) qp[e] = model::ElementValue(seed, gl * 8 + e);
  }

  float q[GQ][8], m[GQ], l[GQ], acc[GQ][8];
  if constexpr (kAttn) {
#pragma unroll
    for (int h = 0; h < GQ; ++h) {
      const uint64_t seed =
          model::RowSeed(s.last_token, s.seq_len - 1, layer, kvhead * GQ + h, model::kQuery);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        q[h][e] = model::ElementValue(seed, gl * 8 + e) * scale_log2;
        acc[h][e] = 0.0f;
      }
      m[h] = -INFINITY;
      l[h] = 0.0f;
    }
  }

  for (int iter = begin; iter < end; iter += kKeysPerIter) {
    const int first = iter + warp * R * kUnroll;
    uint4 kv[kUnroll][2];
    bool valid[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int p = first + u * R + sub;
      valid[u] = p < end;
      if (valid[u]) {
        const uint32_t block = table[p >> a.geo.block_shift];
        const std::byte* row =
            base + block * a.geo.block_stride + (p & (a.geo.block_size - 1)) * a.geo.row_bytes;
        kv[u][0] = __ldg(reinterpret_cast<const uint4*>(row));
        kv[u][1] = __ldg(reinterpret_cast<const uint4*>(row + a.geo.kind_stride));
      } else {
        kv[u][0] = kv[u][1] = make_uint4(0, 0, 0, 0);
      }
    }
    // Row salts: where a row has enough lanes, lane 2u + kind of each row group computes the
    // salt of step u's K or V row and the others read it by shuffle.
    uint64_t salts[kUnroll][2];
    if constexpr (G >= 2 * kUnroll) {
      const int su = (gl >> 1) % kUnroll;
      const uint64_t mine = model::RowSalt(first + su * R + sub, layer, kvhead, gl & 1);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        salts[u][0] = Shfl64(mine, sub * G + 2 * u);
        salts[u][1] = Shfl64(mine, sub * G + 2 * u + 1);
      }
    } else {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        salts[u][0] = model::RowSalt(first + u * R + sub, layer, kvhead, model::kKey);
        salts[u][1] = model::RowSalt(first + u * R + sub, layer, kvhead, model::kValue);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (valid[u]) {
        xsum += WordTermSum(kv[u][0], salts[u][0], c0, c1);
        xsum += WordTermSum(kv[u][1], salts[u][1], c0, c1);
      }
    }
    if (probe_block) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float kf[8];
        Unpack8(kv[u][0], kf);
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) d = fmaf(qp[e], kf[e], d);
#pragma unroll
        for (int off = G / 2; off > 0; off /= 2) d += __shfl_xor_sync(0xffffffffu, d, off);
        if (valid[u] && gl == 0) probe.Offer(d, first + u * R + sub);
      }
    }
    if constexpr (kAttn) {
      float sc[kUnroll][GQ];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float kf[8];
        Unpack8(kv[u][0], kf);
#pragma unroll
        for (int h = 0; h < GQ; ++h) {
          float d = 0.0f;
#pragma unroll
          for (int e = 0; e < 8; ++e) d = fmaf(q[h][e], kf[e], d);
#pragma unroll
          for (int off = G / 2; off > 0; off /= 2) d += __shfl_xor_sync(0xffffffffu, d, off);
          sc[u][h] = valid[u] ? d : -INFINITY;
        }
      }
#pragma unroll
      for (int h = 0; h < GQ; ++h) {
        float mx = m[h];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) mx = fmaxf(mx, sc[u][h]);
        const float ref = mx == -INFINITY ? 0.0f : mx;  // a group that has seen no key yet
        const float corr = exp2f(m[h] - ref);
        m[h] = mx;
        l[h] *= corr;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[h][e] *= corr;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) sc[u][h] = exp2f(sc[u][h] - ref);
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        float vf[8];
        Unpack8(kv[u][1], vf);
#pragma unroll
        for (int h = 0; h < GQ; ++h) {
          l[h] += sc[u][h];
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[h][e] = fmaf(sc[u][h], vf[e], acc[h][e]);
        }
      }
    }
  }

  const int slot = s.split_off + w.split;
  FinishChecksumAndProbe(a, w.seq, slot, xsum, probe, probe_block);
  if constexpr (kAttn) {
    const int group = warp * R + sub;
#pragma unroll
    for (int h = 0; h < GQ; ++h) {
      if (gl == 0) {
        sm_ml[(group * GQ + h) * 2] = m[h];
        sm_ml[(group * GQ + h) * 2 + 1] = l[h];
      }
#pragma unroll
      for (int e = 0; e < 8; ++e) sm_acc[(group * GQ + h) * D + gl * 8 + e] = acc[h][e];
    }
    __syncthreads();
    StoreBlockPartial<D, GQ, kGroups>(a, sm_ml, sm_acc, slot, layer, kvhead);
  }
}

// One block per (sequence, kv head, layer): merges the splits' softmax states; block (s, 0, 0)
// also turns the finished checksum into the next token.
template <int D, int GQ>
__global__ void CombineKernel(DecodeArgs a) {
  const int seq = blockIdx.x, kvhead = blockIdx.y, layer = blockIdx.z;
  const DecodeSeqDev s = a.seqs[seq];
  if (kvhead == 0 && layer == 0 && threadIdx.x == 0) {
    model::ProbeArgmax probe;
    for (int sp = 0; sp < s.num_splits; ++sp) {
      const int32_t p = a.probe_pos[s.split_off + sp];
      if (p >= 0) probe.Offer(a.probe_score[s.split_off + sp], p);
    }
    a.probes[seq] = probe.pos;
    a.tokens[seq] =
        model::NextToken(s.seed, s.seq_len, a.checksums[seq], probe.pos, a.shape.vocab_size);
  }
  if (!a.compute_attention) return;
  const size_t slot_stride = static_cast<size_t>(a.shape.num_layers) * a.shape.num_kv_heads * GQ;
  const size_t base = (static_cast<size_t>(layer) * a.shape.num_kv_heads + kvhead) * GQ;
  for (int idx = threadIdx.x; idx < GQ * D; idx += blockDim.x) {
    const int h = idx / D, d = idx % D;
    float mx = -INFINITY;
    for (int sp = 0; sp < s.num_splits; ++sp) {
      mx = fmaxf(mx, a.part_ml[((s.split_off + sp) * slot_stride + base + h) * 2]);
    }
    float sum_l = 0.0f, sum_acc = 0.0f;
    for (int sp = 0; sp < s.num_splits; ++sp) {
      const size_t p = (s.split_off + sp) * slot_stride + base + h;
      const float f = exp2f(a.part_ml[p * 2] - mx);
      sum_l += f * a.part_ml[p * 2 + 1];
      sum_acc += f * a.part_acc[p * D + d];
    }
    const int qhead = kvhead * GQ + h;
    a.out[((static_cast<size_t>(seq) * a.shape.num_layers + layer) * a.shape.num_q_heads + qhead) * D + d] =
        sum_acc / sum_l;
  }
}

template <int D, int GQ>
cudaError_t LaunchFor(const DecodeArgs& a, cudaStream_t stream) {
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(D));
  const DecodeVariant variant = ChosenDecodeVariant();
  // The checksum-only pass (no attention) has no math to hand to the tensor cores; this file's
  // kernel reads at the same speed with fewer registers (measured on the H200, 2026-12-04).
  if (a.compute_attention && variant != DecodeVariant::kCudaCores &&
      DecodeMmaShapeSupported(D, GQ)) {
    if (cudaError_t err = LaunchDecodeMmaMain(a, scale_log2, variant, stream); err != cudaSuccess) {
      return err;
    }
  } else {
    dim3 grid(a.num_work, a.shape.num_kv_heads, a.shape.num_layers);
    if (a.compute_attention) {
      DecodeKernel<D, GQ, true><<<grid, kDecodeWarps * 32, 0, stream>>>(a, scale_log2);
    } else {
      DecodeKernel<D, GQ, false><<<grid, kDecodeWarps * 32, 0, stream>>>(a, scale_log2);
    }
    if (cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
  }
  dim3 combine(a.num_seqs, a.shape.num_kv_heads, a.shape.num_layers);
  CombineKernel<D, GQ><<<combine, 128, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

DecodeVariant ChosenDecodeVariant() {
  static const DecodeVariant variant = [] {
    const char* v = std::getenv("PDSERVE_DECODE_KERNEL");
    const std::string_view name = v == nullptr ? "mma" : v;
    if (name == "mma-registers") return DecodeVariant::kMmaRegisters;
    if (name == "mma-serial") return DecodeVariant::kMmaSerial;
    if (name == "mma-split-loads") return DecodeVariant::kMmaSplitLoads;
    if (name == "cuda-cores") return DecodeVariant::kCudaCores;
    return DecodeVariant::kMma;
  }();
  return variant;
}

bool DecodeShapeSupported(int head_dim, int group) {
  if (head_dim == 16) return group == 2;
  if (head_dim == 64) return group == 2;
  if (head_dim == 128) return group == 4 || group == 8;
  return false;
}

cudaError_t LaunchDecode(const DecodeArgs& a, cudaStream_t stream) {
  if (a.num_seqs == 0) return cudaSuccess;
  const int group = a.shape.num_q_heads / a.shape.num_kv_heads;
  switch (a.shape.head_dim * 16 + group) {
    case 16 * 16 + 2: return LaunchFor<16, 2>(a, stream);
    case 64 * 16 + 2: return LaunchFor<64, 2>(a, stream);
    case 128 * 16 + 4: return LaunchFor<128, 4>(a, stream);
    case 128 * 16 + 8: return LaunchFor<128, 8>(a, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace pdserve::cuda
