#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::bench {

// `pdserve bench`, the main job: for each transfer backend, start a cluster (same preset, workers
// and pool), sweep the workloads and request rates with the load generator, tear the cluster
// down, then write a results folder (per-run JSON + CSV, summary.csv, report.md, plots) and print
// the headline comparison.
struct ServingBenchOptions {
  // "local"; "ucx" (UCX picks its transports); "ucx-<tls>" = ucx with UCX_TLS=<tls>.
  std::vector<std::string> backends = {"local", "ucx-posix", "ucx-tcp"};
  std::string matrix = "default";                        // default | full
  std::string preset = "llama3-8b";
  std::string compute = "roofline";  // real | roofline | cuda
  std::string gpu = "h100";          // for roofline
  std::string device = "cpu";        // cpu | cuda
  int num_prefill = 1;
  int num_decode = 1;
  double pool_gib = 2.0;             // per worker
  std::string layout = "layer-major";  // KV layout of every pool: layer-major | block-major
  std::vector<int> input_lens;       // empty: from the matrix
  std::vector<int> output_lens;
  std::vector<double> rates;
  double seconds_per_rate = 6;       // prompts per run = clamp(rate x this, min, max)
  int min_prompts = 8;
  int max_prompts = 64;
  bool verify = true;
  uint64_t seed = 0;
  std::string result_dir;            // empty: results/bench-<date>
  std::string command_line;          // recorded in the report
};

absl::Status RunServingBench(const ServingBenchOptions& options);

}  // namespace pdserve::bench
