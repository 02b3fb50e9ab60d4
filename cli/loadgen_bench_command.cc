#include <memory>

#include "bench/loadgen_bench.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

void AddLoadgenBenchCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  CLI::App* cmd = bench->add_subcommand(
      "loadgen", "Load generator vs the built-in echo target: requested vs achieved rate");
  auto opts = std::make_shared<bench::LoadgenBenchOptions>();
  cmd->add_option("--rates", opts->rates, "requested rates, req/s")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--seconds", opts->seconds, "of arrivals per rate")->capture_default_str();
  cmd->add_option("--input-len", opts->input_len)->capture_default_str();
  cmd->add_option("--output-len", opts->output_len)->capture_default_str();
  cmd->add_option("--arrival-process", opts->arrival, "poisson, gamma, constant")
      ->capture_default_str();
  cmd->add_option("--num-channels", opts->num_channels)->capture_default_str();
  cmd->add_option("--tokens-per-chunk", opts->tokens_per_chunk)->capture_default_str();
  cmd->add_option("--seed", opts->seed)->capture_default_str();
  cmd->add_option("--json", opts->json_path, "write results as JSON here");
  cmd->callback([opts] { ExitWith(bench::RunLoadgenBench(*opts)); });
}

const bool registered = RegisterCommand("bench loadgen", AddLoadgenBenchCommand);

}  // namespace
}  // namespace pdserve::cli
