#include <memory>

#include "bench/gpu_transfer_bench.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

void AddGpuTransferBenchCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  CLI::App* cmd = bench->add_subcommand(
      "gpu-transfer",
      "KV transfer between two processes on one GPU (cuda-ipc, ucx) vs cudaMemcpy D2D, or on two "
      "GPUs (--across-gpus: also nccl) vs cudaMemcpyPeer; the same as `bench transfer --device "
      "cuda`");
  auto opts = std::make_shared<bench::GpuTransferBenchOptions>();
  cmd->add_option("--backends", opts->backends,
                  "cuda-ipc, ucx (device-memory pools), nccl (across GPUs); default cuda-ipc,ucx "
                  "and, with --across-gpus, nccl")
      ->delimiter(',');
  cmd->add_flag("--across-gpus", opts->across_gpus,
                "receiver on the second GPU; ratios to cudaMemcpyPeer GPU 0 -> 1");
  cmd->add_option("--preset", opts->preset)->capture_default_str();
  cmd->add_option("--layouts", opts->layouts)->delimiter(',')->capture_default_str();
  cmd->add_option("--request-tokens", opts->request_tokens)->delimiter(',')->capture_default_str();
  cmd->add_option("--iterations", opts->iterations)->capture_default_str();
  cmd->add_option("--json", opts->json_path, "write results as JSON here");
  cmd->add_option("--receiver", opts->receiver_layout)->group("");  // internal: child process
  cmd->add_option("--receiver-backend", opts->receiver_backend)->group("");
  cmd->callback([=] { ExitWith(bench::RunGpuTransferBench(*opts)); });
}

const bool registered = RegisterCommand("bench gpu-transfer", AddGpuTransferBenchCommand);

}  // namespace
}  // namespace pdserve::cli
