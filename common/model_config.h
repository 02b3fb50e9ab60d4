#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pdserve {

enum class DType { kBF16, kFP16, kFP32 };

absl::StatusOr<DType> ParseDType(std::string_view name);
std::string_view DTypeName(DType dtype);
int DTypeBytes(DType dtype);

// Shapes of the mock model. Only what attention and the KV cache need is here; hidden_size and
// intermediate_size feed the roofline cost model and the optional dense GEMMs.
struct ModelConfig {
  std::string name;
  int num_layers = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  DType dtype = DType::kBF16;
  int block_size = 16;  // tokens per KV block
  int max_model_len = 0;

  int ElementBytes() const { return DTypeBytes(dtype); }
  int QueryHeadsPerKvHead() const { return num_q_heads / num_kv_heads; }
  // Bytes of one K (or V) row: one token, one layer, one KV head.
  int64_t RowBytes() const { return int64_t{head_dim} * ElementBytes(); }
  // 2 (K and V) x layers x kv_heads x head_dim x bytes per element.
  int64_t KvBytesPerToken() const {
    return int64_t{2} * num_layers * num_kv_heads * head_dim * ElementBytes();
  }
  int64_t KvBytesPerBlock() const { return KvBytesPerToken() * block_size; }
  int64_t BlocksForTokens(int64_t tokens) const { return (tokens + block_size - 1) / block_size; }

  absl::Status Validate() const;
};

// Presets: tiny (CI), small, llama3-8b, llama3-70b.
std::vector<std::string> PresetNames();
absl::StatusOr<ModelConfig> PresetConfig(std::string_view name);

// Overrides that may come from flags or a config file; unset fields keep the preset's values.
struct ModelOverrides {
  std::string preset = "tiny";
  int block_size = 0;
  std::string dtype;
  int num_layers = 0;
  int max_model_len = 0;
};

// Reads overrides from a JSON file: {"preset": "...", "block_size": 16, "dtype": "bf16", ...}.
absl::StatusOr<ModelOverrides> LoadModelOverridesFile(const std::string& path);
absl::StatusOr<ModelConfig> ResolveModelConfig(const ModelOverrides& overrides);

// The overrides that resolve to `config` again, every field explicit: what one process tells
// another (router, workers, clients) so that all of them serve and check the same model.
ModelOverrides OverridesOf(const ModelConfig& config);

// Empty when `a` and `b` are the same model; otherwise the fields that differ, as
// "dtype bf16 vs fp32, block_size 16 vs 32" (a's value first).
std::string ModelDifference(const ModelConfig& a, const ModelConfig& b);

// One line for logs and status: "tiny (block size 16, bf16)", plus layers and max length when
// they are not the preset's.
std::string ModelSummary(const ModelConfig& config);

std::string DescribeModel(const ModelConfig& config);

}  // namespace pdserve
