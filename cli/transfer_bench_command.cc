#include <memory>

#include "bench/transfer_bench.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

void AddTransferBenchCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  CLI::App* transfer = bench->add_subcommand(
      "transfer", "KV transfer between two processes: local and UCX vs memcpy and ucx_perftest");
  auto opts = std::make_shared<bench::TransferBenchOptions>();
  transfer->add_flag("--full", opts->full, "the whole sweep (several minutes)");
  transfer->add_option("--min-seconds", opts->min_seconds, "per measurement")
      ->capture_default_str();
  transfer->add_option("--json", opts->json_path, "write results as JSON here");
  transfer->add_option("--receiver", opts->receiver_spec)->group("");  // internal: child side
  transfer->callback([=] {
    ExitWith(opts->receiver_spec.empty() ? bench::RunTransferBench(*opts)
                                         : bench::RunTransferBenchReceiver(opts->receiver_spec));
  });
}

const bool registered = RegisterCommand("bench transfer", AddTransferBenchCommand);

}  // namespace
}  // namespace pdserve::cli
