#pragma once

#include <cstdint>
#include <cstring>

#include "common/hd_macros.h"

namespace pdserve {

// Conversions done with integer operations so that host and device agree bit for bit.
// The synthetic model only produces values that all three dtypes represent exactly (k/64 for
// |k| <= 128), so no rounding mode question arises for K/V; these are exact for those values.

PDSERVE_HD uint32_t FloatBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

PDSERVE_HD float BitsToFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// Round to nearest even; NaN not expected.
PDSERVE_HD uint16_t FloatToBf16Bits(float f) {
  uint32_t u = FloatBits(f);
  uint32_t rounding = 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>((u + rounding) >> 16);
}

PDSERVE_HD float Bf16BitsToFloat(uint16_t b) { return BitsToFloat(static_cast<uint32_t>(b) << 16); }

// Exact for normal fp16 values (the model's values are multiples of 1/64 in [-2, 2]).
PDSERVE_HD uint16_t FloatToFp16Bits(float f) {
  uint32_t u = FloatBits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t abs = u & 0x7FFFFFFFu;
  if (abs == 0) return static_cast<uint16_t>(sign);
  int32_t exp = static_cast<int32_t>(abs >> 23) - 127 + 15;
  if (exp <= 0) return static_cast<uint16_t>(sign);          // flush tiny values
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00u);  // saturate to inf
  uint32_t mant = abs & 0x7FFFFFu;
  uint32_t half = (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

PDSERVE_HD float Fp16BitsToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    if (mant == 0) return BitsToFloat(sign);
    float v = static_cast<float>(mant) / 16777216.0f;  // subnormal: mant * 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return BitsToFloat(sign | 0x7F800000u | (mant << 13));
  return BitsToFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

}  // namespace pdserve
