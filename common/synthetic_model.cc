#include "common/synthetic_model.h"

#include <cstring>

#include "absl/strings/str_split.h"

namespace pdserve::model {

void WriteRow(const ModelConfig& config, int32_t token, int32_t pos, int32_t layer, int32_t head,
              uint32_t kind, void* dst) {
  const uint64_t seed = RowSeed(token, pos, layer, head, kind);
  switch (config.dtype) {
    case DType::kBF16:
    case DType::kFP16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int d = 0; d < config.head_dim; ++d) {
        out[d] = static_cast<uint16_t>(EncodeElement(ElementValue(seed, d), config.dtype));
      }
      break;
    }
    case DType::kFP32: {
      auto* out = static_cast<float*>(dst);
      for (int d = 0; d < config.head_dim; ++d) out[d] = ElementValue(seed, d);
      break;
    }
  }
}

void QueryRow(const ModelConfig& config, int32_t token, int32_t pos, int32_t layer, int32_t qhead,
              float* dst) {
  const uint64_t seed = RowSeed(token, pos, layer, qhead, kQuery);
  for (int d = 0; d < config.head_dim; ++d) dst[d] = ElementValue(seed, d);
}

uint64_t RowChecksum(const ModelConfig& config, const void* row, int32_t pos, int32_t layer,
                     int32_t head, uint32_t kind) {
  const uint64_t salt = RowSalt(pos, layer, head, kind);
  const int words = static_cast<int>(config.RowBytes() / 8);
  const auto* bytes = static_cast<const unsigned char*>(row);
  uint64_t sum = 0;
  for (int w = 0; w < words; ++w) {
    uint64_t word;
    std::memcpy(&word, bytes + w * 8, 8);
    sum += WordTerm(word, salt, w);
  }
  return sum;
}

uint64_t PositionChecksum(const ModelConfig& config, int32_t token, int32_t pos) {
  alignas(64) unsigned char row[1024 * 4];
  uint64_t sum = 0;
  for (int layer = 0; layer < config.num_layers; ++layer) {
    for (int head = 0; head < config.num_kv_heads; ++head) {
      for (uint32_t kind : {kKey, kValue}) {
        WriteRow(config, token, pos, layer, head, kind, row);
        sum += RowChecksum(config, row, pos, layer, head, kind);
      }
    }
  }
  return sum;
}

std::vector<int32_t> ReferenceGenerate(std::span<const int32_t> prompt, int num_tokens,
                                       const ModelConfig& config, uint64_t seed) {
  // The checksum over positions 0..p-1 is a sum, so it is carried forward one position at a
  // time; nothing is cached but that running sum.
  uint64_t checksum = 0;
  int32_t pos = 0;
  for (int32_t token : prompt) checksum += PositionChecksum(config, token, pos++);
  std::vector<int32_t> out;
  out.reserve(num_tokens);
  for (int i = 0; i < num_tokens; ++i) {
    const int32_t token = NextToken(seed, pos, checksum, config.vocab_size);
    out.push_back(token);
    if (i + 1 < num_tokens) checksum += PositionChecksum(config, token, pos);
    ++pos;
  }
  return out;
}

std::vector<int32_t> SyntheticPrompt(uint64_t seed, int len, int32_t vocab_size) {
  std::vector<int32_t> tokens(len);
  for (int i = 0; i < len; ++i) {
    tokens[i] = static_cast<int32_t>(Mix64(seed * kGolden + 0x51ED270B27ull + i) %
                                     static_cast<uint64_t>(vocab_size));
  }
  return tokens;
}

std::vector<int32_t> TokenizeText(std::string_view text, int32_t vocab_size) {
  std::vector<int32_t> tokens;
  for (absl::string_view word : absl::StrSplit(absl::string_view(text.data(), text.size()), absl::ByAnyChar(" \t\n\r"), absl::SkipEmpty())) {
    uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a, then mixed
    for (unsigned char c : word) h = (h ^ c) * 0x100000001B3ull;
    tokens.push_back(static_cast<int32_t>(Mix64(h) % static_cast<uint64_t>(vocab_size)));
  }
  return tokens;
}

}  // namespace pdserve::model
