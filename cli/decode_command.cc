#include "cli/commands.h"
#include "cli/worker_flags.h"
#include "decode_worker/decode_process.h"

namespace pdserve::cli {
namespace {

void AddDecodeCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "decode", "Run a decode worker: continuous batching over its KV pool");
  auto flags = AddWorkerFlags(cmd);
  cmd->add_option("--min-step-us", flags->options.min_step_us,
                  "every decode step lasts at least this long (slows decode down for tests)")
      ->capture_default_str();
  cmd->add_flag("--poison-freed-kv", flags->options.poison_freed_kv,
               "fill every freed KV block with a poison pattern, so that reading blocks a "
               "request no longer owns changes its tokens (tests, verification runs)");
  cmd->add_option("--fault", flags->options.fault,
                  "fault injection for tests: fail-decode (every step fails) or stall-decode "
                  "(the engine hangs while the process answers)")
      ->check(CLI::IsMember({"fail-decode", "stall-decode"}));
  auto lease_s = std::make_shared<double>(300);
  cmd->add_option("--allocation-lease-s", *lease_s,
                  "free an allocation that no Decode claimed within this time")
      ->capture_default_str();
  auto fence_lease_s = std::make_shared<double>(120);
  cmd->add_option("--fence-lease-s", *fence_lease_s,
                  "free KV blocks released before their KV landed after this long even if the "
                  "prefill worker neither finished nor confirmed it stopped (longer than its "
                  "batch plus its --transfer-timeout-s)")
      ->capture_default_str();
  cmd->callback([flags, lease_s, fence_lease_s] {
    service::BlockTerminationSignals();
    absl::StatusOr<service::WorkerProcessOptions> options = flags->Resolve();
    if (!options.ok()) ExitWith(options.status());
    options->allocation_lease = absl::Seconds(*lease_s);
    options->fence_lease = absl::Seconds(*fence_lease_s);
    ExitWith(decode::RunDecodeWorker(*std::move(options)));
  });
}

const bool registered = RegisterCommand("decode", AddDecodeCommand);

}  // namespace
}  // namespace pdserve::cli
