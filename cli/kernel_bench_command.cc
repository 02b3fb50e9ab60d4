#include <memory>

#include "bench/gpu_kernel_bench.h"
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
  // --device cuda runs bench/gpu_kernel_bench.cc (llama3-8b at 512,2048,8192 unless given).
  auto device = std::make_shared<std::string>("cpu");
  auto dense = std::make_shared<std::string>("off");
  kernels->add_option("--device", *device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  kernels->add_option("--dense", *dense, "cuda: also time the preset's dense GEMMs (on|off)")->check(CLI::IsMember({"on", "off"}))->capture_default_str();
  kernels->callback([=] {
    if (*device == "cpu") ExitWith(bench::RunKernelBench(*opts));
    bench::GpuKernelBenchOptions gpu{.layout = opts->layout, .decode_batch = opts->decode_batch,
                                     .dense = *dense == "on", .json_path = opts->json_path};
    if (kernels->count("--preset") > 0) gpu.preset = opts->preset;
    if (kernels->count("--prompt-lens") > 0) gpu.prompt_lens = opts->prompt_lens;
    ExitWith(bench::RunGpuKernelBench(gpu));
  });
}

const bool registered = RegisterCommand("bench kernels", AddKernelBenchCommand);

}  // namespace

}  // namespace pdserve::cli
