#include "cli/model_flags.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace pdserve::cli {

std::shared_ptr<ModelFlags> ModelFlags::Add(CLI::App* cmd, const std::string& note) {
  std::shared_ptr<ModelFlags> f(new ModelFlags(cmd));
  cmd->add_option("--preset", f->flags_.preset,
                  absl::StrCat("model preset: ", absl::StrJoin(PresetNames(), ", "),
                               " (default tiny)", note.empty() ? "" : "; ", note));
  cmd->add_option("--block-size", f->flags_.block_size,
                  "tokens per KV block (default: the preset's, 16)");
  cmd->add_option("--dtype", f->flags_.dtype, "KV dtype: bf16, fp16 or fp32 (default bf16)");
  cmd->add_option("--num-layers", f->flags_.num_layers, "layers (default: the preset's)");
  cmd->add_option("--max-model-len", f->flags_.max_model_len,
                  "longest prompt + output in tokens (default: the preset's)");
  cmd->add_option("--config", f->config_path_,
                  "JSON file with preset, block_size, dtype, num_layers, max_model_len "
                  "(flags given explicitly win)");
  return f;
}

absl::StatusOr<ModelOverrides> ModelFlags::Overrides() const {
  ModelOverrides o;  // the preset defaults to tiny
  if (!config_path_.empty()) {
    ASSIGN_OR_RETURN(o, LoadModelOverridesFile(config_path_));
  }
  if (cmd_->count("--preset") > 0) o.preset = flags_.preset;
  if (cmd_->count("--block-size") > 0) o.block_size = flags_.block_size;
  if (cmd_->count("--dtype") > 0) o.dtype = flags_.dtype;
  if (cmd_->count("--num-layers") > 0) o.num_layers = flags_.num_layers;
  if (cmd_->count("--max-model-len") > 0) o.max_model_len = flags_.max_model_len;
  // A flag set to 0 would silently mean "the preset's": say it is out of range instead.
  if (cmd_->count("--block-size") > 0 && o.block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--block-size must be in [1, 1024], got ", o.block_size));
  }
  absl::StatusOr<ModelConfig> resolved = ResolveModelConfig(o);
  if (!resolved.ok()) {
    return absl::Status(resolved.status().code(),
                        absl::StrCat(config_path_.empty() ? "" : config_path_ + ": ",
                                     resolved.status().message()));
  }
  return o;
}

absl::StatusOr<ModelConfig> ModelFlags::Resolve() const {
  ASSIGN_OR_RETURN(ModelOverrides o, Overrides());
  return ResolveModelConfig(o);
}

}  // namespace pdserve::cli
