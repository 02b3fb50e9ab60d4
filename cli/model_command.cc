#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "common/model_config.h"
#include "common/status_macros.h"

namespace pdserve::cli {
namespace {

absl::Status RunModelInfo(ModelOverrides overrides, const std::string& config_path) {
  if (!config_path.empty()) {
    ModelOverrides from_file;
    ASSIGN_OR_RETURN(from_file, LoadModelOverridesFile(config_path));
    // Flags given explicitly win over the file.
    if (overrides.preset.empty()) overrides.preset = from_file.preset;
    if (overrides.block_size == 0) overrides.block_size = from_file.block_size;
    if (overrides.dtype.empty()) overrides.dtype = from_file.dtype;
    if (overrides.num_layers == 0) overrides.num_layers = from_file.num_layers;
  }
  if (overrides.preset.empty()) overrides.preset = "tiny";
  ASSIGN_OR_RETURN(ModelConfig config, ResolveModelConfig(overrides));
  std::fputs(DescribeModel(config).c_str(), stdout);
  return absl::OkStatus();
}

void AddModelCommand(CLI::App& app) {
  CLI::App* model = app.add_subcommand("model", "Inspect the synthetic model presets");
  model->require_subcommand(1);
  CLI::App* info = model->add_subcommand("info", "Print a preset's shapes and KV sizes");
  auto overrides = std::make_shared<ModelOverrides>();
  overrides->preset.clear();
  auto config_path = std::make_shared<std::string>();
  info->add_option("--preset", overrides->preset, "tiny, small, llama3-8b, llama3-70b");
  info->add_option("--block-size", overrides->block_size, "tokens per KV block (default 16)");
  info->add_option("--dtype", overrides->dtype, "bf16, fp16 or fp32 (default bf16)");
  info->add_option("--config", *config_path, "JSON file with preset/block_size/dtype");
  info->callback([=] { ExitWith(RunModelInfo(*overrides, *config_path)); });
}

const bool registered = RegisterCommand("model", AddModelCommand);

}  // namespace

}  // namespace pdserve::cli
