#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pdserve::transfer::testing {

// Pseudo-random bytes that depend on the seed and on the byte's position in the pool, so that
// a block copied to the wrong place, or from the wrong place, never compares equal.
inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline void FillPattern(std::byte* data, size_t bytes, uint64_t seed) {
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t v = SplitMix64(seed * 0x100000001b3ull + i);
    std::memcpy(data + i, &v, 8);
  }
}

}  // namespace pdserve::transfer::testing
