#include "common/model_config.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace pdserve {

absl::StatusOr<DType> ParseDType(std::string_view name) {
  if (name == "bf16" || name == "bfloat16") return DType::kBF16;
  if (name == "fp16" || name == "float16" || name == "half") return DType::kFP16;
  if (name == "fp32" || name == "float32" || name == "float") return DType::kFP32;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", std::string(name), "' (expected bf16, fp16 or fp32)"));
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return "bf16";
    case DType::kFP16: return "fp16";
    case DType::kFP32: return "fp32";
  }
  return "?";
}

int DTypeBytes(DType dtype) { return dtype == DType::kFP32 ? 4 : 2; }

absl::Status ModelConfig::Validate() const {
  if (num_layers <= 0 || num_q_heads <= 0 || num_kv_heads <= 0 || head_dim <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("model '", name, "': shapes must be positive"));
  }
  if (num_q_heads % num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", name, "': q heads (", num_q_heads, ") not a multiple of kv heads (",
        num_kv_heads, ")"));
  }
  // One hash yields eight elements, and the checksum reads KV rows as 64-bit words.
  if (head_dim % 8 != 0 || head_dim > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", name, "': head_dim must be a multiple of 8, at most 1024"));
  }
  if (block_size <= 0 || block_size > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size must be in [1, 1024], got ", block_size));
  }
  if (vocab_size <= 1) return absl::InvalidArgumentError("vocab_size must be > 1");
  if (max_model_len <= 0) return absl::InvalidArgumentError("max_model_len must be > 0");
  return absl::OkStatus();
}

std::vector<std::string> PresetNames() { return {"tiny", "small", "llama3-8b", "llama3-70b"}; }

absl::StatusOr<ModelConfig> PresetConfig(std::string_view name) {
  ModelConfig c;
  c.name = std::string(name);
  if (name == "tiny") {
    c.num_layers = 2; c.num_q_heads = 4; c.num_kv_heads = 2; c.head_dim = 16;
    c.hidden_size = 64; c.intermediate_size = 128; c.vocab_size = 1024; c.max_model_len = 4096;
  } else if (name == "small") {
    c.num_layers = 4; c.num_q_heads = 8; c.num_kv_heads = 4; c.head_dim = 64;
    c.hidden_size = 512; c.intermediate_size = 1408; c.vocab_size = 32000; c.max_model_len = 8192;
  } else if (name == "llama3-8b") {
    c.num_layers = 32; c.num_q_heads = 32; c.num_kv_heads = 8; c.head_dim = 128;
    c.hidden_size = 4096; c.intermediate_size = 14336; c.vocab_size = 128256;
    c.max_model_len = 8192;
  } else if (name == "llama3-70b") {
    c.num_layers = 80; c.num_q_heads = 64; c.num_kv_heads = 8; c.head_dim = 128;
    c.hidden_size = 8192; c.intermediate_size = 28672; c.vocab_size = 128256;
    c.max_model_len = 8192;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown preset '", std::string(name), "' (expected one of ",
                                                   absl::StrJoin(PresetNames(), ", "), ")"));
  }
  return c;
}

absl::StatusOr<ModelOverrides> LoadModelOverridesFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open config file ", path));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  ModelOverrides o;
  try {
    if (j.contains("preset")) o.preset = j["preset"].get<std::string>();
    if (j.contains("block_size")) o.block_size = j["block_size"].get<int>();
    if (j.contains("dtype")) o.dtype = j["dtype"].get<std::string>();
    if (j.contains("num_layers")) o.num_layers = j["num_layers"].get<int>();
    if (j.contains("max_model_len")) o.max_model_len = j["max_model_len"].get<int>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  return o;
}

absl::StatusOr<ModelConfig> ResolveModelConfig(const ModelOverrides& overrides) {
  absl::StatusOr<ModelConfig> config = PresetConfig(overrides.preset);
  if (!config.ok()) return config.status();
  if (overrides.block_size != 0) config->block_size = overrides.block_size;
  if (!overrides.dtype.empty()) {
    absl::StatusOr<DType> dtype = ParseDType(overrides.dtype);
    if (!dtype.ok()) return dtype.status();
    config->dtype = *dtype;
  }
  if (overrides.num_layers != 0) config->num_layers = overrides.num_layers;
  if (overrides.max_model_len != 0) config->max_model_len = overrides.max_model_len;
  if (absl::Status s = config->Validate(); !s.ok()) return s;
  return config;
}

ModelOverrides OverridesOf(const ModelConfig& config) {
  ModelOverrides o;
  o.preset = config.name;
  o.block_size = config.block_size;
  o.dtype = std::string(DTypeName(config.dtype));
  o.num_layers = config.num_layers;
  o.max_model_len = config.max_model_len;
  return o;
}

std::string ModelDifference(const ModelConfig& a, const ModelConfig& b) {
  std::vector<std::string> diffs;
  auto field = [&diffs](const char* name, const auto& x, const auto& y) {
    if (x != y) diffs.push_back(absl::StrCat(name, " ", x, " vs ", y));
  };
  field("preset", a.name, b.name);
  field("block_size", a.block_size, b.block_size);
  field("dtype", std::string(DTypeName(a.dtype)), std::string(DTypeName(b.dtype)));
  field("num_layers", a.num_layers, b.num_layers);
  field("max_model_len", a.max_model_len, b.max_model_len);
  // Shapes come from the preset: they differ only between builds with different presets.
  field("num_q_heads", a.num_q_heads, b.num_q_heads);
  field("num_kv_heads", a.num_kv_heads, b.num_kv_heads);
  field("head_dim", a.head_dim, b.head_dim);
  field("vocab_size", a.vocab_size, b.vocab_size);
  return absl::StrJoin(diffs, ", ");
}

std::string ModelSummary(const ModelConfig& c) {
  std::string out = absl::StrCat(c.name, " (block size ", c.block_size, ", ", std::string(DTypeName(c.dtype)));
  absl::StatusOr<ModelConfig> preset = PresetConfig(c.name);
  if (!preset.ok() || preset->num_layers != c.num_layers) {
    absl::StrAppend(&out, ", ", c.num_layers, " layers");
  }
  if (!preset.ok() || preset->max_model_len != c.max_model_len) {
    absl::StrAppend(&out, ", max_model_len ", c.max_model_len);
  }
  return out + ")";
}

std::string DescribeModel(const ModelConfig& c) {
  std::string out;
  absl::StrAppendFormat(&out, "preset              %s\n", c.name);
  absl::StrAppendFormat(&out, "layers              %d\n", c.num_layers);
  absl::StrAppendFormat(&out, "query heads         %d\n", c.num_q_heads);
  absl::StrAppendFormat(&out, "kv heads            %d\n", c.num_kv_heads);
  absl::StrAppendFormat(&out, "head dim            %d\n", c.head_dim);
  absl::StrAppendFormat(&out, "hidden size         %d\n", c.hidden_size);
  absl::StrAppendFormat(&out, "vocab size          %d\n", c.vocab_size);
  absl::StrAppendFormat(&out, "dtype               %s\n", DTypeName(c.dtype));
  absl::StrAppendFormat(&out, "max model len       %d tokens\n", c.max_model_len);
  absl::StrAppendFormat(&out, "block size          %d tokens\n", c.block_size);
  absl::StrAppendFormat(&out, "kv bytes per token  %d bytes\n", c.KvBytesPerToken());
  absl::StrAppendFormat(&out, "kv bytes per block  %d bytes\n", c.KvBytesPerBlock());
  return out;
}

}  // namespace pdserve
