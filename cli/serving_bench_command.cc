// `pdserve bench` with no subcommand: the main job (KV transfer backends across workloads and rates).
#include <memory>

#include "bench/serving_bench.h"
#include "cli/commands.h"

namespace pdserve::cli {
namespace {

void AddServingBenchCommand(CLI::App& app) {
  CLI::App* bench = GetOrAddSubcommand(app, "bench", "Benchmarks");
  bench->description(
      "Benchmarks. Without a subcommand: the serving benchmark comparing KV transfer backends "
      "across workloads and request rates, and P/D against colocated workers (the main job; "
      "--quick for a 4-minute version)");
  bench->require_subcommand(0, 1);
  auto o = std::make_shared<bench::ServingBenchOptions>();
  bench->add_option("--backends", o->backends, "transfer backends: local, local-zc (zero-copy: the prefill kernels write the decode worker's reserved blocks in place), ucx (UCX chooses), ucx-posix, ucx-tcp, ucx-cma; and colocated (no transfer: --prefill + --decode colocated workers, the deployment every P/D backend is compared with). The first backend that is not colocated is the baseline of the transfer comparisons")
      ->delimiter(',')->capture_default_str();
  bench->add_option("--matrix", o->matrix, "full (the default: input 128/512/2048 x output 64/128/512 x 1/4/16 req/s, about 19 min for the four default backends on a 2-core host) or quick (input 128/2048 x output 64, the same rates, about 4 min)")
      ->check(CLI::IsMember({"full", "default", "quick"}))
      ->capture_default_str();
  bench->add_flag_callback("--quick", [o] { o->matrix = "quick"; }, "same as --matrix quick");
  bench->add_option("--preset", o->preset)->capture_default_str();
  bench->add_option("--compute", o->compute, "real, roofline or cuda")->capture_default_str();
  bench->add_option("--gpu", o->gpu, "GPU modelled by --compute roofline")->capture_default_str();
  bench->add_option("--device", o->device, "cpu or cuda (GPU workers: --compute cuda, local runs as cuda-ipc, ucx on device memory when the linked UCX can (PDSERVE_UCX_ROOT build), else as ucx-staged; default backends local,ucx,colocated, 8 GiB pools; --quick: inputs 512,2048, outputs 128)")->capture_default_str();
  bench->add_option("--prefill", o->num_prefill, "prefill workers")->capture_default_str();
  bench->add_option("--decode", o->num_decode, "decode workers")->capture_default_str();
  bench->add_option("--prefill-gpus", o->prefill_gpus,
                    "GPU of each prefill worker (pdserve cluster --prefill-gpus; colocated workers "
                    "take these and the decode GPUs, one each)")
      ->delimiter(',');
  bench->add_option("--decode-gpus", o->decode_gpus, "GPU of each decode worker")->delimiter(',');
  bench->add_option("--pool-gib", o->pool_gib, "KV pool per prefill worker (GiB)")->capture_default_str();
  bench->add_option("--decode-pool-gib", o->decode_pool_gib, "KV pool per decode worker (GiB); -1: room for 24 requests of the largest cell, at most 8 GiB; 0: as --pool-gib")
      ->capture_default_str();
  bench->add_option("--stream-chunk-tokens", o->stream_chunk_tokens,
                    "roofline: prefill workers send each prompt's KV in chunks of this many "
                    "tokens while the modelled prefill runs, hiding the transfer under it "
                    "(0: the whole prompt after the prefill)")
      ->capture_default_str();
  bench->add_option("--layout", o->layout, "KV layout of every pool: layer-major (a fragment per layer and block) or block-major (one per block)")
      ->check(CLI::IsMember({"layer-major", "block-major"}))
      ->capture_default_str();
  bench->add_option("--input-lens", o->input_lens)->delimiter(',');
  bench->add_option("--output-lens", o->output_lens)->delimiter(',');
  bench->add_option("--rates", o->rates, "request rates (req/s)")->delimiter(',');
  bench->add_option("--cell-seconds", o->cell_seconds, "time budget of one cell (arrivals + the modelled tail of the last request); 0: the matrix's (full 11, quick 6)");
  bench->add_option("--min-prompts", o->min_prompts, "fewest prompts per cell; 0: the matrix's (full 6, quick 4)");
  bench->add_option("--max-prompts", o->max_prompts, "most prompts per cell; 0: the matrix's (full 48, quick 32)");
  bench->add_option("--transfer-baseline", o->transfer_baseline, "measure one request's KV transfer with the two-process microbenchmark before each cluster (the report's serving / microbenchmark ratios)")
      ->capture_default_str();
  bench->add_option("--verify", o->verify, "check every token against the model")
      ->capture_default_str();
  bench->add_option("--api", o->api, "how the load reaches the router: grpc (Router.Generate) or http (the OpenAI-compatible /v1/completions, streamed)")
      ->check(CLI::IsMember({"grpc", "http"}))
      ->capture_default_str();
  bench->add_option("--seed", o->seed)->capture_default_str();
  bench->add_option("--result-dir", o->result_dir, "default results/bench-<date>");
  bench->add_flag("--find-capacity", o->find_capacity,
                  "before the sweep, find each backend's highest rate within the SLOs per "
                  "workload (probe loads, doubling then bisecting) and add rates at 0.25, 0.5, "
                  "0.75, 0.9 and 1.1x the baseline backend's capacity to --rates");
  bench->add_option("--slo", o->slo,
                    "SLOs of every cell's goodput (P/D against colocated) and of --find-capacity, "
                    "as loadgen --goodput: ttft:MS tpot:MS e2el:MS (default ttft:500 tpot:50)");
  bench->add_option("--resume", o->resume_dir,
                    "continue the interrupted sweep in DIR (its report-inputs.json, rewritten "
                    "after every cell) with the options it ran with; the cells it finished are "
                    "kept, the others run with the same seeds and prompts");
  bench->callback([bench, o] {
    if (!bench->get_subcommands().empty()) return;  // a sub-benchmark ran
    if (o->device == "cuda" && o->compute == "roofline") o->compute = "cuda";
    o->command_line = InvocationLine();
    ExitWith(bench::RunServingBench(*o));
  });
}

const bool registered = RegisterCommand("bench", AddServingBenchCommand);

}  // namespace
}  // namespace pdserve::cli
