#include "common/synthetic_model.h"

#include <cstring>

#include "absl/strings/str_split.h"
#include "common/synthetic_rows.h"

namespace pdserve::model {

void WriteRow(const ModelConfig& config, int32_t token, int32_t pos, int32_t layer, int32_t head,
              uint32_t kind, void* dst) {
  GenerateRow(RowSeed(token, pos, layer, head, kind), config.head_dim, config.dtype, dst);
}

void QueryRow(const ModelConfig& config, int32_t token, int32_t pos, int32_t layer, int32_t qhead,
              float* dst) {
  GenerateRow(RowSeed(token, pos, layer, qhead, kQuery), config.head_dim, DType::kFP32, dst);
}

uint64_t RowChecksum(const ModelConfig& config, const void* row, int32_t pos, int32_t layer,
                     int32_t head, uint32_t kind) {
  return ChecksumRow(row, static_cast<int>(config.RowBytes() / 8),
                     RowSalt(pos, layer, head, kind));
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

void ProbeQuery(const ModelConfig& config, int32_t token, int32_t pos, float* dst) {
  QueryRow(config, token, pos, ProbeLayer(config.num_layers), ProbeQHead(config.num_q_heads), dst);
}

float ProbeScore(const ModelConfig& config, const float* query, const void* key_row) {
  return ProbeDot(query, key_row, config.head_dim, config.dtype);
}

std::vector<int32_t> ReferenceGenerate(std::span<const int32_t> prompt, int num_tokens,
                                       const ModelConfig& config, uint64_t seed) {
  // The checksum over positions 0..p-1 is a sum, so it is carried forward one position at a
  // time; besides that running sum only the probe head's keys are kept (as floats: the model's
  // values are exact in every dtype).
  const int d = config.head_dim;
  const int probe_layer = ProbeLayer(config.num_layers);
  const int probe_head = ProbeKvHead(config.num_kv_heads);
  std::vector<float> keys(static_cast<size_t>(prompt.size() + num_tokens) * d);
  std::vector<float> query(d);
  ModelConfig fp32 = config;
  fp32.dtype = DType::kFP32;
  uint64_t checksum = 0;
  int32_t pos = 0;
  auto append = [&](int32_t token) {
    checksum += PositionChecksum(config, token, pos);
    WriteRow(fp32, token, pos, probe_layer, probe_head, kKey, keys.data() + static_cast<size_t>(pos) * d);
    ++pos;
  };
  for (int32_t token : prompt) append(token);
  std::vector<int32_t> out;
  out.reserve(num_tokens);
  int32_t last = prompt.empty() ? 0 : prompt.back();
  for (int i = 0; i < num_tokens; ++i) {
    ProbeQuery(config, last, pos - 1, query.data());
    ProbeArgmax best;
    for (int32_t j = 0; j < pos; ++j) {
      best.Offer(ProbeScore(fp32, query.data(), keys.data() + static_cast<size_t>(j) * d), j);
    }
    last = NextToken(seed, pos, checksum, best.pos, config.vocab_size);
    out.push_back(last);
    if (i + 1 < num_tokens) append(last);
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
