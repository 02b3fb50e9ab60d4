#include <memory>

#include "bench/kernel_bench.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

void AddKernelBenchCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  CLI::App* kernels = bench->add_subcommand("kernels", "CPU attention kernels vs memcpy and FMA peak");
  auto opts = std::make_shared<bench::KernelBenchOptions>();
  kernels->add_option("--preset", opts->preset)->capture_default_str();
  kernels->add_option("--layout", opts->layout)->capture_default_str();
  kernels->add_option("--prompt-lens", opts->prompt_lens)->delimiter(',')->capture_default_str();
  kernels->add_option("--decode-batch", opts->decode_batch)->capture_default_str();
  kernels->add_option("--threads", opts->threads, "0 = all cores")->capture_default_str();
  kernels->add_option("--min-seconds", opts->min_seconds)->capture_default_str();
  kernels->add_option("--json", opts->json_path, "write results as JSON here");
  kernels->callback([=] { ExitWith(bench::RunKernelBench(*opts)); });
}

const bool registered = RegisterCommand("bench kernels", AddKernelBenchCommand);

}  // namespace

}  // namespace pdserve::cli
