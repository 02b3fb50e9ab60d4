#pragma once

// The synthetic model's elements (common/synthetic_model.h) made on the GPU in bulk.

#include <cstdint>

#include "kvcache/cuda/mma_primitives.cuh"

namespace pdserve::cuda {

// The eight element bytes of one chunk hash (model::ElementChunkHash), each times `scale` (a power
// of two, so exact), as four bf16 pairs, low dims first. No quarter-rate I2F: byte b, made
// unsigned by flipping its sign bit, becomes the low mantissa of 2^23, and one FFMA takes
// (2^23 + b + 128) * scale - (2^23 + 128) * scale = b * scale exactly.
__device__ __forceinline__ uint4 ElementBytesAsBf16(uint64_t h, float scale) {
  const uint32_t lo = static_cast<uint32_t>(h) ^ 0x80808080u;
  const uint32_t hi = static_cast<uint32_t>(h >> 32) ^ 0x80808080u;
  const float offset = -8388736.0f * scale;
  auto element = [&](uint32_t w, int k) {
    return fmaf(__uint_as_float(__byte_perm(w, 0x4B000000u, 0x7540 + k)), scale, offset);
  };
  return make_uint4(PackBf16(element(lo, 0), element(lo, 1)),
                    PackBf16(element(lo, 2), element(lo, 3)),
                    PackBf16(element(hi, 0), element(hi, 1)),
                    PackBf16(element(hi, 2), element(hi, 3)));
}

}  // namespace pdserve::cuda
