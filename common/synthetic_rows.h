#pragma once

// The synthetic model's two hot loops on the CPU, for whole rows: generating a K/V row from its
// seed, and the checksum of a stored row. They produce exactly what the per-element definitions
// in synthetic_model.h produce (tests compare them); they exist because the mock must stay out of
// its own measurement: an H100 prefill of an 8B model writes KV at several GB/s of prompt, and
// one CPU core has to generate the same bytes, and verify them on the decode side, as fast.
//
// An AVX-512 path is picked once at run time where the CPU has AVX-512F+DQ+BW+VL (64-bit lane
// multiplies for the hashes, 16-bit masked loads for the probe); the portable path is used elsewhere and by the tests as the
// reference.

#include <cstdint>

#include "common/model_config.h"

namespace pdserve::model {

// Writes the head_dim elements of the row whose seed is `row_seed` in `dtype` to `dst`
// (head_dim is a multiple of 8).
void GenerateRow(uint64_t row_seed, int head_dim, DType dtype, void* dst);

// Sum over the `words` 64-bit words of `row` of WordTerm(word, row_salt, index).
uint64_t ChecksumRow(const void* row, int words, uint64_t row_salt);

// The probe's score: sum over the head_dim elements of query[i] * key_row[i] (key_row stored in
// `dtype`). The decode worker computes one per position of every running request at every step
// (it was most of the decode worker's CPU in roofline mode with a scalar loop). Every product is
// a multiple of 1/4096 and every partial sum stays below 2^10, so the float sum is exact in any
// order: the vector path equals the portable one bit for bit.
float ProbeDot(const float* query, const void* key_row, int head_dim, DType dtype);

namespace rows_internal {
// The portable implementations, and whether the vector ones are in use (for tests).
void GenerateRowPortable(uint64_t row_seed, int head_dim, DType dtype, void* dst);
uint64_t ChecksumRowPortable(const void* row, int words, uint64_t row_salt);
float ProbeDotPortable(const float* query, const void* key_row, int head_dim, DType dtype);
bool VectorPathInUse();
}  // namespace rows_internal

}  // namespace pdserve::model
