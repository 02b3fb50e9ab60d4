#pragma once

// The synthetic model: no weights, every byte real.
//  - K/V/Q element values are a pure function of (token, position, layer, head, dim, kind).
//  - The token generated at sequence position p is a pure function of the request seed, p, an
//    integer checksum of the exact KV bytes the decode step read (positions 0..p-1, every layer,
//    KV head, K and V) and the attention probe (below). Each 64-bit word of a KV row is mixed
//    with its logical position, layer, head and kind and hashed (TermHash), and the terms are
//    summed with wrap-around, so the sum does not depend on the order of reduction (a parallel
//    GPU reduction gives the CPU's answer, and a running sum carried step by step equals a full
//    re-read) while a lost, stale or misplaced word changes it, and structured faults (the same
//    bit flipped in two words) do not cancel.
//  - The attention probe ties the token to what attention computes, not only to the bytes: the
//    position of the highest score q.k over the sequence for one (layer, q head), so a wrong
//    query, causal mask or GQA head mapping changes the output. Element values are multiples of
//    1/64 in [-2, 2), so every score is a multiple of 1/4096 below 2^10 in magnitude: exact in
//    fp32 whatever the order of the sum, on CPU and GPU alike.

#include <cstdint>
#include <span>
#include <vector>

#include "common/dtype_bits.h"
#include "common/hd_macros.h"
#include "common/model_config.h"

namespace pdserve::model {

enum RowKind : uint32_t { kKey = 0, kValue = 1, kQuery = 2 };

inline constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
inline constexpr uint64_t kTermMultiplier = 0xD6E8FEB86659FD93ull;  // odd: a bijection on words

PDSERVE_HD uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

// Seed of one row of head_dim values: one token at one position, one layer, one head, one kind.
PDSERVE_HD uint64_t RowSeed(int32_t token, int32_t pos, int32_t layer, int32_t head,
                            uint32_t kind) {
  uint64_t x = (static_cast<uint64_t>(static_cast<uint32_t>(token)) << 32) |
               static_cast<uint32_t>(pos);
  x = Mix64(x + kGolden);
  x ^= (static_cast<uint64_t>(static_cast<uint32_t>(layer)) << 40) |
       (static_cast<uint64_t>(static_cast<uint32_t>(head)) << 8) | kind;
  return Mix64(x);
}

// Element `dim` of a row, a multiple of 1/64 in [-2, 2): exact in bf16, fp16 and fp32.
// One hash yields eight elements, which keeps materialising large KV cheap.
// ElementValue(seed, dim) == ElementByte(seed, dim) * kElementScale.
inline constexpr float kElementScale = 1.0f / 64.0f;

// The hash whose eight bytes (low first) are the elements of dims [8 chunk, 8 chunk + 8).
PDSERVE_HD uint64_t ElementChunkHash(uint64_t row_seed, int chunk) {
  return Mix64(row_seed + static_cast<uint64_t>(chunk) * kGolden);
}

PDSERVE_HD int8_t ElementByte(uint64_t row_seed, int dim) {
  const uint64_t h = ElementChunkHash(row_seed, dim >> 3);
  return static_cast<int8_t>(static_cast<uint8_t>(h >> ((dim & 7) * 8)));
}

PDSERVE_HD float ElementValue(uint64_t row_seed, int dim) {
  return static_cast<float>(ElementByte(row_seed, dim)) * kElementScale;
}

// Salt of the KV row at logical (position, layer, kv head, kind); independent of the token, so
// a right token at a wrong position is still caught.
PDSERVE_HD uint64_t RowSalt(int32_t pos, int32_t layer, int32_t head, uint32_t kind) {
  uint64_t x = (static_cast<uint64_t>(static_cast<uint32_t>(pos)) << 32) |
               (static_cast<uint64_t>(static_cast<uint32_t>(layer)) << 12) |
               (static_cast<uint64_t>(static_cast<uint32_t>(head)) << 2) | kind;
  return Mix64(x ^ 0xA0761D6478BD642Full);
}

// A cheap non-linear hash of one salted word. A plain multiply would be linear: flipping bit 63
// of two words would add 2^63 twice and cancel in the sum.
PDSERVE_HD uint64_t TermHash(uint64_t x) {
  x ^= x >> 32;
  x *= kTermMultiplier;
  x ^= x >> 29;
  return x;
}

// Contribution of word `word_index` of a row to the checksum.
PDSERVE_HD uint64_t WordTerm(uint64_t word, uint64_t row_salt, int word_index) {
  return TermHash(word ^ (row_salt + static_cast<uint64_t>(word_index) * kGolden));
}

// The attention probe reads one (layer, q head): the last layer and the last q head, whose KV
// head is the last one under GQA (so a kernel that maps q heads to KV heads wrongly reads
// another head's keys).
PDSERVE_HD int ProbeLayer(int num_layers) { return num_layers - 1; }
PDSERVE_HD int ProbeQHead(int num_q_heads) { return num_q_heads - 1; }
PDSERVE_HD int ProbeKvHead(int num_kv_heads) { return num_kv_heads - 1; }

// The token at `position` from the checksum of KV positions [0, position) and the probe (the
// argmax position of the probe head's scores for the query of the token at position - 1).
PDSERVE_HD int32_t NextToken(uint64_t seed, int32_t position, uint64_t checksum, int32_t probe,
                             int32_t vocab_size) {
  uint64_t x = Mix64(seed * kGolden + static_cast<uint64_t>(static_cast<uint32_t>(position)));
  x = Mix64(x ^ checksum);
  x = Mix64(x + static_cast<uint64_t>(static_cast<uint32_t>(probe)));
  return static_cast<int32_t>(x % static_cast<uint64_t>(vocab_size));
}

// Encodes a value as its storage bits in `dtype` (low bits of the return value).
PDSERVE_HD uint32_t EncodeElement(float v, DType dtype) {
  switch (dtype) {
    case DType::kBF16: return FloatToBf16Bits(v);
    case DType::kFP16: return FloatToFp16Bits(v);
    case DType::kFP32: return FloatBits(v);
  }
  return 0;
}

PDSERVE_HD float DecodeElement(const void* row, int dim, DType dtype) {
  switch (dtype) {
    case DType::kBF16: return Bf16BitsToFloat(static_cast<const uint16_t*>(row)[dim]);
    case DType::kFP16: return Fp16BitsToFloat(static_cast<const uint16_t*>(row)[dim]);
    case DType::kFP32: return static_cast<const float*>(row)[dim];
  }
  return 0.0f;
}

// Writes one K or V row (head_dim elements in `config.dtype`) to `dst`.
void WriteRow(const ModelConfig& config, int32_t token, int32_t pos, int32_t layer, int32_t head,
              uint32_t kind, void* dst);
// Query row in float: head_dim values for q head `qhead`.
void QueryRow(const ModelConfig& config, int32_t token, int32_t pos, int32_t layer, int32_t qhead,
              float* dst);

// Checksum terms of one stored row (RowBytes() bytes at `row`) read at logical (pos, layer, head,
// kind).
uint64_t RowChecksum(const ModelConfig& config, const void* row, int32_t pos, int32_t layer,
                     int32_t head, uint32_t kind);

// The probe's query row (head_dim floats) for the token at `pos`.
void ProbeQuery(const ModelConfig& config, int32_t token, int32_t pos, float* dst);
// q . k for one stored K row; exact for the model's values (see the header comment).
float ProbeScore(const ModelConfig& config, const float* query, const void* key_row);

// Running argmax of probe scores: the highest score wins, the lowest position on ties, so any
// order of visiting positions (CPU loop, GPU splits) gives one answer.
struct ProbeArgmax {
  float score = -3.0e38f;
  int32_t pos = -1;
  PDSERVE_HD void Offer(float s, int32_t p) {
    if (s > score || (s == score && p < pos)) {
      score = s;
      pos = p;
    }
  }
};

// Checksum of all of token `token`'s KV at position `pos`, computed from the model directly.
uint64_t PositionChecksum(const ModelConfig& config, int32_t token, int32_t pos);

// The expected output of generating `num_tokens` tokens after `prompt`, computed from scratch
// without any KV cache.
std::vector<int32_t> ReferenceGenerate(std::span<const int32_t> prompt, int num_tokens,
                                       const ModelConfig& config, uint64_t seed);

// A reproducible prompt of `len` tokens.
std::vector<int32_t> SyntheticPrompt(uint64_t seed, int len, int32_t vocab_size);

// The mock tokenizer: each whitespace-separated word becomes one token (a hash of the word).
std::vector<int32_t> TokenizeText(std::string_view text, int32_t vocab_size);

}  // namespace pdserve::model
