#include "common/synthetic_rows.h"

#include <array>
#include <cstdlib>
#include <cstring>

#include "common/synthetic_model.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define PDSERVE_ROWS_X86 1
#endif

namespace pdserve::model {
namespace {

// Storage bits of every element value (a signed byte times 1/64) per dtype, indexed by the byte.
template <typename T, typename Encode>
std::array<T, 256> ByteTable(Encode encode) {
  std::array<T, 256> t{};
  for (int b = 0; b < 256; ++b) {
    t[b] = encode(static_cast<float>(static_cast<int8_t>(static_cast<uint8_t>(b))) * kElementScale);
  }
  return t;
}

const std::array<uint16_t, 256> kBf16 =
    ByteTable<uint16_t>([](float v) { return static_cast<uint16_t>(FloatToBf16Bits(v)); });
const std::array<uint16_t, 256> kFp16 =
    ByteTable<uint16_t>([](float v) { return static_cast<uint16_t>(FloatToFp16Bits(v)); });
const std::array<float, 256> kFp32 = ByteTable<float>([](float v) { return v; });

template <typename T>
void ChunksFromTable(uint64_t seed, int first_chunk, int chunks, const std::array<T, 256>& table,
                     T* out) {
  for (int c = first_chunk; c < chunks; ++c) {
    const uint64_t h = ElementChunkHash(seed, c);
    for (int e = 0; e < 8; ++e) out[c * 8 + e] = table[(h >> (8 * e)) & 0xFF];
  }
}

void GeneratePortableFrom(uint64_t seed, int first_chunk, int head_dim, DType dtype, void* dst) {
  const int chunks = head_dim / 8;
  switch (dtype) {
    case DType::kBF16:
      ChunksFromTable(seed, first_chunk, chunks, kBf16, static_cast<uint16_t*>(dst));
      break;
    case DType::kFP16:
      ChunksFromTable(seed, first_chunk, chunks, kFp16, static_cast<uint16_t*>(dst));
      break;
    case DType::kFP32:
      ChunksFromTable(seed, first_chunk, chunks, kFp32, static_cast<float*>(dst));
      break;
  }
}

#if PDSERVE_ROWS_X86
#define PDSERVE_AVX512 __attribute__((target("avx512f,avx512dq")))
// GCC 12's AVX-512 headers start some conversions from _mm*_undefined_*() and warn about it
// (a known false positive): keep the build's warnings for our own code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

PDSERVE_AVX512 inline __m512i Mix64x8(__m512i x) {
  x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 30));
  x = _mm512_mullo_epi64(x, _mm512_set1_epi64(static_cast<long long>(0xBF58476D1CE4E5B9ull)));
  x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 27));
  x = _mm512_mullo_epi64(x, _mm512_set1_epi64(static_cast<long long>(0x94D049BB133111EBull)));
  return _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
}

PDSERVE_AVX512 inline __m512i LaneSteps(uint64_t step) {
  return _mm512_set_epi64(static_cast<long long>(7 * step), static_cast<long long>(6 * step),
                          static_cast<long long>(5 * step), static_cast<long long>(4 * step),
                          static_cast<long long>(3 * step), static_cast<long long>(2 * step),
                          static_cast<long long>(step), 0);
}

// Sixteen element bytes -> their values in `dtype` at element `first` of the row.
PDSERVE_AVX512 inline void StoreElements(__m128i bytes, __m512 scale, DType dtype, void* dst,
                                         int first) {
  const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes)), scale);
  switch (dtype) {
    case DType::kBF16:
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(dst) + first),
                          _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(f), 16)));
      break;
    case DType::kFP16:
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(dst) + first),
                          _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      break;
    case DType::kFP32:
      _mm512_storeu_ps(static_cast<float*>(dst) + first, f);
      break;
  }
}

// Eight chunk hashes at a time (64 elements): each byte of lane c is element 8c + byte, as in
// ElementByte; bytes -> int32 -> float x 1/64 -> the dtype's bits (exact for these values, so
// truncating to bf16 equals rounding).
PDSERVE_AVX512 void GenerateRowAvx512(uint64_t seed, int head_dim, DType dtype, void* dst) {
  const int chunks = head_dim / 8;
  const __m512i steps = LaneSteps(kGolden);
  const __m512 scale = _mm512_set1_ps(kElementScale);
  int c = 0;
  for (; c + 8 <= chunks; c += 8) {
    const __m512i h = Mix64x8(_mm512_add_epi64(
        _mm512_set1_epi64(static_cast<long long>(seed + static_cast<uint64_t>(c) * kGolden)),
        steps));
    StoreElements(_mm512_extracti32x4_epi32(h, 0), scale, dtype, dst, c * 8);
    StoreElements(_mm512_extracti32x4_epi32(h, 1), scale, dtype, dst, c * 8 + 16);
    StoreElements(_mm512_extracti32x4_epi32(h, 2), scale, dtype, dst, c * 8 + 32);
    StoreElements(_mm512_extracti32x4_epi32(h, 3), scale, dtype, dst, c * 8 + 48);
  }
  if (c < chunks) GeneratePortableFrom(seed, c, head_dim, dtype, dst);
}

PDSERVE_AVX512 uint64_t ChecksumRowAvx512(const void* row, int words, uint64_t salt) {
  const auto* w = static_cast<const uint64_t*>(row);
  __m512i key = _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(salt)),
                                 LaneSteps(kGolden));
  const __m512i inc = _mm512_set1_epi64(static_cast<long long>(8 * kGolden));
  const __m512i mul = _mm512_set1_epi64(static_cast<long long>(kTermMultiplier));
  __m512i acc = _mm512_setzero_si512();
  int i = 0;
  for (; i + 8 <= words; i += 8) {
    __m512i x = _mm512_xor_si512(_mm512_loadu_si512(w + i), key);
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 32));
    x = _mm512_mullo_epi64(x, mul);
    x = _mm512_xor_si512(x, _mm512_srli_epi64(x, 29));
    acc = _mm512_add_epi64(acc, x);
    key = _mm512_add_epi64(key, inc);
  }
  uint64_t sum = static_cast<uint64_t>(_mm512_reduce_add_epi64(acc));
  for (; i < words; ++i) sum += WordTerm(w[i], salt, i);
  return sum;
}

// Sixteen key elements at a time as floats (bf16: the top half of a float; fp16: converted),
// multiplied into the query with exact FMAs; a masked tail for head dims of 8 mod 16.
#define PDSERVE_AVX512BW __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
PDSERVE_AVX512BW inline __m512 KeyElements(const void* key, int first, __mmask16 m, DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return _mm512_castsi512_ps(_mm512_slli_epi32(
          _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(
              m, static_cast<const uint16_t*>(key) + first)),
          16));
    case DType::kFP16:
      return _mm512_cvtph_ps(
          _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(key) + first));
    case DType::kFP32:
      return _mm512_maskz_loadu_ps(m, static_cast<const float*>(key) + first);
  }
  return _mm512_setzero_ps();
}

PDSERVE_AVX512BW float ProbeDotAvx512(const float* query, const void* key, int head_dim, DType dtype) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < head_dim; i += 16) {
    const __mmask16 m = head_dim - i >= 16 ? __mmask16{0xFFFF}
                                           : static_cast<__mmask16>((1u << (head_dim - i)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, query + i), KeyElements(key, i, m, dtype), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

bool CpuHasAvx512() {
  // PDSERVE_PORTABLE_ROWS=1 forces the portable path (to compare or to rule the vectors out).
  if (const char* env = std::getenv("PDSERVE_PORTABLE_ROWS"); env != nullptr && *env == '1') {
    return false;
  }
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}
const bool kVector = CpuHasAvx512();
#pragma GCC diagnostic pop
#else
const bool kVector = false;
#endif

}  // namespace

namespace rows_internal {

void GenerateRowPortable(uint64_t row_seed, int head_dim, DType dtype, void* dst) {
  GeneratePortableFrom(row_seed, 0, head_dim, dtype, dst);
}

uint64_t ChecksumRowPortable(const void* row, int words, uint64_t row_salt) {
  const auto* bytes = static_cast<const unsigned char*>(row);
  uint64_t sum = 0;
  for (int i = 0; i < words; ++i) {
    uint64_t word;
    std::memcpy(&word, bytes + static_cast<size_t>(i) * 8, 8);
    sum += WordTerm(word, row_salt, i);
  }
  return sum;
}

float ProbeDotPortable(const float* query, const void* key_row, int head_dim, DType dtype) {
  // Eight partial sums vectorise; every partial sum is exact, so the order does not matter.
  float acc[8] = {};
  for (int i = 0; i < head_dim; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += query[i + l] * DecodeElement(key_row, i + l, dtype);
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

bool VectorPathInUse() { return kVector; }

}  // namespace rows_internal

void GenerateRow(uint64_t row_seed, int head_dim, DType dtype, void* dst) {
#if PDSERVE_ROWS_X86
  if (kVector) return GenerateRowAvx512(row_seed, head_dim, dtype, dst);
#endif
  rows_internal::GenerateRowPortable(row_seed, head_dim, dtype, dst);
}

uint64_t ChecksumRow(const void* row, int words, uint64_t row_salt) {
#if PDSERVE_ROWS_X86
  if (kVector) return ChecksumRowAvx512(row, words, row_salt);
#endif
  return rows_internal::ChecksumRowPortable(row, words, row_salt);
}

float ProbeDot(const float* query, const void* key_row, int head_dim, DType dtype) {
#if PDSERVE_ROWS_X86
  if (kVector) return ProbeDotAvx512(query, key_row, head_dim, dtype);
#endif
  return rows_internal::ProbeDotPortable(query, key_row, head_dim, dtype);
}

}  // namespace pdserve::model
