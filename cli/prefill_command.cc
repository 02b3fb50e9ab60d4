#include "cli/commands.h"
#include "cli/worker_flags.h"
#include "prefill_worker/prefill_process.h"

namespace pdserve::cli {
namespace {

void AddPrefillCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "prefill", "Run a prefill worker: prompt kernels into its KV pool, then KV transfer");
  auto flags = AddWorkerFlags(cmd);
  cmd->add_option("--chunk-tokens", flags->options.chunk_tokens,
                  "longest prompt chunk per kernel call")
      ->capture_default_str();
  cmd->add_option("--claim-checksum-mib", flags->options.claim_checksum_mib,
                  "roofline: send the checksum of a prompt's KV with it from this many MiB on, "
                  "for the decode worker to check in the background (< 0: 96; 0: never)")
      ->capture_default_str();
  cmd->add_option("--min-batch-us", flags->options.min_batch_us,
                  "every prefill batch lasts at least this long (slows prefill down for tests)")
      ->capture_default_str();
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
