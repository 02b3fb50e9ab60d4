#include "cli/commands.h"
#include "cli/worker_flags.h"
#include "decode_worker/decode_process.h"

namespace pdserve::cli {
namespace {

void AddDecodeCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "decode", "Run a decode worker: continuous batching over its KV pool");
  auto flags = AddWorkerFlags(cmd);
  AddDecodeEngineFlags(cmd, *flags);
  cmd->add_option("--fault", flags->options.fault,
                  "fault injection for tests: fail-decode (every step fails) or stall-decode "
                  "(the engine hangs while the process answers)")
      ->check(CLI::IsMember({"fail-decode", "stall-decode"}));
  cmd->callback([flags] {
    service::BlockTerminationSignals();
    absl::StatusOr<service::WorkerProcessOptions> options = flags->Resolve();
    if (!options.ok()) ExitWith(options.status());
    ExitWith(decode::RunDecodeWorker(*std::move(options)));
  });
}

const bool registered = RegisterCommand("decode", AddDecodeCommand);

}  // namespace
}  // namespace pdserve::cli
