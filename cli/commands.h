#pragma once

#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"

namespace pdserve::cli {

// Subcommands register themselves from their own file, so adding one touches no other file:
//
//   static const bool registered = RegisterCommand("generate", [](CLI::App& root) { ... });
//
// Registered functions run in name order on the root app. A command's callback ends with
// ExitWith(status): an error is printed for the operator and becomes exit code 1.
using CommandRegistrar = std::function<void(CLI::App& root)>;
bool RegisterCommand(const std::string& name, CommandRegistrar registrar);
void AddRegisteredCommands(CLI::App& root);

// The subcommand `name` of `parent`, created when missing (for shared parents such as "bench").
CLI::App* GetOrAddSubcommand(CLI::App& parent, const std::string& name,
                             const std::string& description);

// The command line this process was started with, for reports.
const std::string& InvocationLine();
void SetInvocationLine(int argc, char** argv);

[[noreturn]] void ExitWith(const absl::Status& status);
// Prints the error and makes main return 1; OK returns.
void Check(const absl::Status& status);

}  // namespace pdserve::cli
