#include "cli/commands.h"
#include "cli/worker_flags.h"
#include "colocated_worker/colocated_process.h"

namespace pdserve::cli {
namespace {

void AddColocatedCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "colocated",
      "Run a colocated worker: prefill and decode on one KV pool and one device, no KV transfer "
      "(the baseline P/D is compared with; --transfer is ignored)");
  auto flags = AddWorkerFlags(cmd);
  AddPrefillEngineFlags(cmd, *flags);
  AddDecodeEngineFlags(cmd, *flags);
  cmd->callback([flags] {
    service::BlockTerminationSignals();
    absl::StatusOr<service::WorkerProcessOptions> options = flags->Resolve();
    if (!options.ok()) ExitWith(options.status());
    ExitWith(colocated::RunColocatedWorker(*std::move(options)));
  });
}

const bool registered = RegisterCommand("colocated", AddColocatedCommand);

}  // namespace
}  // namespace pdserve::cli
