#include "cli/commands.h"
#include "cli/worker_flags.h"
#include "prefill_worker/prefill_process.h"

namespace pdserve::cli {
namespace {

void AddPrefillCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "prefill", "Run a prefill worker: prompt kernels into its KV pool, then KV transfer");
  auto flags = AddWorkerFlags(cmd);
  AddPrefillEngineFlags(cmd, *flags);
  cmd->callback([flags] {
    service::BlockTerminationSignals();
    absl::StatusOr<service::WorkerProcessOptions> options = flags->Resolve();
    if (!options.ok()) ExitWith(options.status());
    ExitWith(prefill::RunPrefillWorker(*std::move(options)));
  });
}

const bool registered = RegisterCommand("prefill", AddPrefillCommand);

}  // namespace
}  // namespace pdserve::cli
