#pragma once

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace pdserve::cli {

// Each subcommand registers itself on the root app. A command's callback ends with
// ExitWith(status): an error is printed for the operator and becomes exit code 1.
void AddModelCommand(CLI::App& app);
void AddBenchCommand(CLI::App& app);

[[noreturn]] void ExitWith(const absl::Status& status);
// Prints the error and throws CLI11's runtime error so that main returns 1; OK returns.
void Check(const absl::Status& status);

}  // namespace pdserve::cli
