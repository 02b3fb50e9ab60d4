#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::bench {

// `pdserve bench`, the main job: for each transfer backend, measure one request's KV transfer
// with the two-process microbenchmark, start a cluster (same preset, workers and pools), sweep
// the workloads and request rates with the load generator while sampling what each cell cost
// the host, tear the cluster down; then write a results folder (per-run JSON + CSV,
// summary.csv, report.md, plots) and print the headline comparison. The backend `colocated`
// (no transfer: prefill and decode on the same workers) runs the same cells, and the report sets
// every P/D backend against it. Every option is checked
// before anything starts; report.md and report-inputs.json are rewritten after every cell, with
// an ETA on stdout, so an interrupted sweep leaves a partial report and can be resumed.
struct ServingBenchOptions {
  // "local"; "ucx" (UCX picks its transports); "ucx-<tls>" = ucx with UCX_TLS=<tls>;
  // "colocated": no transfer, prefill and decode on the same workers (bench/serving_backends.h),
  // which every P/D backend is compared with in the report. The first backend that is not
  // colocated is the baseline of the transfer comparisons: colocated comes last.
  std::vector<std::string> backends = {"local", "ucx-posix", "ucx-tcp", "colocated"};
  // full (= default): the seed matrix, 128/512/2048 x 64/128/512 x 1/4/16 req/s; quick: see
  // bench/serving_plan.h. --quick sets it.
  std::string matrix = "full";
  std::string preset = "llama3-8b";
  std::string compute = "roofline";  // real | roofline | cuda
  std::string gpu = "h100";          // for roofline
  std::string device = "cpu";        // cpu | cuda
  int num_prefill = 1;
  int num_decode = 1;
  // GPU placement (cluster/gpu_placement.h, `pdserve cluster --prefill-gpus`): prefill worker i
  // on prefill_gpus[i % n], decode likewise; colocated workers take the prefill GPUs then the
  // decode GPUs, one each (the same devices). Empty: every worker on device 0.
  std::vector<int> prefill_gpus;
  std::vector<int> decode_gpus;
  double pool_gib = 2.0;  // per prefill worker (and decode worker if decode_pool_gib 0)
  // Per decode worker; < 0: room for 24 requests of the sweep's largest cell, at most 8 GiB
  // (bench/serving_plan.h DecodePoolGib).
  double decode_pool_gib = -1;
  std::string layout = "layer-major";  // KV layout of every pool: layer-major | block-major
  // Roofline: prefill workers stream each prompt's KV in chunks of this many tokens during the
  // modelled prefill (prefill --stream-chunk-tokens); 0: whole, after the prefill.
  int stream_chunk_tokens = 0;
  std::vector<int> input_lens;         // empty: from the matrix
  std::vector<int> output_lens;
  std::vector<double> rates;
  double cell_seconds = 0;  // time budget of a cell; 0: the matrix's
  int min_prompts = 0;      // 0: the matrix's
  int max_prompts = 0;
  bool transfer_baseline = true;  // the same-run microbenchmark of one request's KV
  bool verify = true;
  // How the load reaches the router: grpc (Router.Generate) or http (the OpenAI-compatible
  // /v1/completions, streamed; loadgen --backend openai).
  std::string api = "grpc";
  uint64_t seed = 0;
  // Before the sweep, find each backend's capacity per workload within `slo` (bench/capacity.h)
  // and add rates at fractions of the baseline backend's to the fixed ones.
  bool find_capacity = false;
  std::vector<std::string> slo;  // "ttft:MS", "tpot:MS", "e2el:MS"; empty: TTFT 500, TPOT 50
  std::string result_dir;    // empty: results/bench-<date>
  // Non-empty: continue the interrupted sweep in this folder with the options it ran with
  // (bench/serving_sweep.h); the other options are not used.
  std::string resume_dir;
  std::string command_line;  // recorded in the report
};

absl::Status RunServingBench(const ServingBenchOptions& options);

}  // namespace pdserve::bench
