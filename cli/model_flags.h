#pragma once

// The model flags every command that serves or checks the model shares (`pdserve cluster`,
// `router`, `prefill`, `decode`, `model info`): --preset, --block-size, --dtype, --num-layers,
// --max-model-len and --config model.json. Flags given on the command line win over the file;
// what neither sets keeps the preset's value (tiny when no preset is named anywhere).
//
//   auto model = ModelFlags::Add(cmd, "every worker must serve the same model");
//   cmd->callback([model] { ASSIGN_OR_RETURN(ModelOverrides o, model->Overrides()); ... });

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "common/model_config.h"

namespace pdserve::cli {

class ModelFlags {
 public:
  // Adds the flags to `cmd`; `note` ends the --preset help line (who must agree on the model).
  static std::shared_ptr<ModelFlags> Add(CLI::App* cmd, const std::string& note = "");

  // After parsing: the --config file's overrides with the flags given explicitly on top,
  // checked by resolving them (InvalidArgument for an unknown preset or dtype, a bad block size;
  // NotFound for a missing file).
  absl::StatusOr<ModelOverrides> Overrides() const;
  absl::StatusOr<ModelConfig> Resolve() const;

 private:
  explicit ModelFlags(CLI::App* cmd) : cmd_(cmd) {}

  CLI::App* cmd_;  // owned by the parent app, which outlives parsing
  ModelOverrides flags_;
  std::string config_path_;
};

}  // namespace pdserve::cli
