#include <memory>

#include "bench/control_plane_bench.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

void AddControlPlaneBenchCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  CLI::App* cmd = bench->add_subcommand(
      "control-plane",
      "Sequential requests on a small cluster: where the first token's time goes, stage by stage");
  auto o = std::make_shared<bench::ControlPlaneBenchOptions>();
  cmd->add_option("--binary", o->binary, "pdserve executable for the cluster (default: this one)");
  cmd->add_option("--preset", o->preset)->capture_default_str();
  cmd->add_option("--transfer", o->transfer, "local | ucx")->capture_default_str();
  cmd->add_option("--compute", o->compute, "real | roofline")->capture_default_str();
  cmd->add_option("--num-prefill", o->num_prefill)->capture_default_str();
  cmd->add_option("--num-decode", o->num_decode)->capture_default_str();
  cmd->add_option("--requests", o->requests, "measured requests")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "requests sent first, not counted")
      ->capture_default_str();
  cmd->add_option("--input-len", o->input_len)->capture_default_str();
  cmd->add_option("--output-len", o->output_len)->capture_default_str();
  cmd->add_option("--gap-ms", o->gap_ms, "idle time between requests")->capture_default_str();
  cmd->add_flag("--no-fast-lane", o->no_fast_lane,
                "the router reaches the workers by gRPC only (the way before)");
  cmd->add_flag("--no-nudge", o->no_nudge,
                "an arriving request does not nudge the prefill worker's fast lane (the way "
                "before)");
  cmd->add_flag("--no-inline-step", o->no_inline_step,
                "the decode loop thread makes every token, the first one too (the way before)");
  cmd->add_flag("--allocate-first", o->allocate_first,
                "the router asks for decode blocks before the prefill starts (the order before)");
  cmd->add_option("--seed", o->seed)->capture_default_str();
  cmd->add_option("--floor-hops", o->floor_hops,
                  "bare hand-offs timed as the host's floor before and after (0: none)")
      ->capture_default_str();
  cmd->add_option("--json", o->json_path, "write the figures as JSON here");
  cmd->callback([o] { ExitWith(bench::RunControlPlaneBench(*o)); });
}

const bool registered = RegisterCommand("bench control-plane", AddControlPlaneBenchCommand);

}  // namespace
}  // namespace pdserve::cli
