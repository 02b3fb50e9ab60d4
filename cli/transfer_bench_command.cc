#include <algorithm>
#include <memory>

#include "bench/gpu_transfer_bench.h"
#include "bench/transfer_bench.h"
#include "bench/transfer_link.h"
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
  // Across a link between two network namespaces (bench/transfer_link.h,
  // scripts/bench-netns-link.sh): this process runs in one, the receiver in --receiver-netns.
  auto link = std::make_shared<bench::TransferLinkOptions>();
  transfer->add_option("--receiver-netns", link->receiver_netns,
                       "run the receiver in this network namespace: UCX tcp over the link "
                       "against ucx_perftest across it (needs --listen, --receiver-listen; root)");
  transfer->add_option("--listen", link->listen, "with --receiver-netns: this side's address");
  transfer->add_option("--receiver-listen", link->receiver_listen,
                       "with --receiver-netns: the receiver's address in its namespace");
  transfer
      ->add_option("--link-device", link->device,
                   "with --receiver-netns: the link's interface (UCX_NET_DEVICES for ucx_perftest)")
      ->capture_default_str();
  transfer->add_option("--csv", link->csv_path, "with --receiver-netns: write rows as CSV here");
  transfer->add_option("--label", link->label, "with --receiver-netns: label for the CSV rows");
  // --device cuda: the GPU transfer bench (cuda-ipc and ucx on device memory, vs D2D), the same
  // as `pdserve bench gpu-transfer` with its defaults.
  auto device = std::make_shared<std::string>("cpu");
  transfer->add_option("--device", *device, "cpu, or cuda: cuda-ipc and ucx between device pools "
                       "vs cudaMemcpy D2D (llama3-8b, 512/2048/8192 tokens, both layouts)")
      ->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  auto across = std::make_shared<bool>(false);
  transfer->add_flag("--across-gpus", *across,
                     "with --device cuda: the receiver on the second GPU, nccl added, ratios to "
                     "cudaMemcpyPeer");
  transfer->callback([=] {
    if (*device == "cuda") {
      bench::GpuTransferBenchOptions gpu;
      gpu.json_path = opts->json_path;
      gpu.across_gpus = *across;
      ExitWith(bench::RunGpuTransferBench(gpu));
    }
    if (!link->receiver_netns.empty() && opts->receiver_spec.empty()) {
      link->min_seconds = std::max(opts->min_seconds, 0.5);
      ExitWith(bench::RunTransferLinkBench(*link));
    }
    ExitWith(opts->receiver_spec.empty() ? bench::RunTransferBench(*opts)
                                         : bench::RunTransferBenchReceiver(opts->receiver_spec));
  });
}

const bool registered = RegisterCommand("bench transfer", AddTransferBenchCommand);

}  // namespace
}  // namespace pdserve::cli
