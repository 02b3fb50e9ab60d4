#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "common/model_config.h"
#include "common/status_macros.h"

namespace pdserve::cli {
namespace {

absl::Status RunModelInfo(const ModelFlags& flags) {
  ASSIGN_OR_RETURN(ModelConfig config, flags.Resolve());
  std::fputs(DescribeModel(config).c_str(), stdout);
  return absl::OkStatus();
}

void AddModelCommand(CLI::App& app) {
  CLI::App* model = app.add_subcommand("model", "Inspect the synthetic model presets");
  model->require_subcommand(1);
  CLI::App* info = model->add_subcommand("info", "Print a preset's shapes and KV sizes");
  auto flags = ModelFlags::Add(info);
  info->callback([flags] { ExitWith(RunModelInfo(*flags)); });
}

const bool registered = RegisterCommand("model", AddModelCommand);

}  // namespace

}  // namespace pdserve::cli
