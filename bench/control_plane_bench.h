#pragma once

// `pdserve bench control-plane`: what the router and the workers' RPC plumbing add to a
// request's time to first token when nothing else runs (issue 15).
//
// Starts a small cluster (cluster/cluster.h; 1 prefill + 1 decode worker by default), sends
// `requests` requests one at a time (each after the previous one ended, `gap_ms` apart), checks
// every token against the synthetic model and prints, from the timelines the router returns,
// p50 / p90 of each stage of the first token's path, and the control plane's share:
//
//   gap = TTFT (first_token - arrival) - prefill (kernels) - transfer (KV bytes)
//
// with a bootstrap interval on its median, and that median against the host's floor: the same
// number of bare hand-offs between processes (handoff_floor.h). The timestamps come from three processes (router,
// prefill worker, decode worker) on one host: one wall clock, no skew between them.

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace pdserve::bench {

struct ControlPlaneBenchOptions {
  std::string binary;  // pdserve executable for the cluster; empty: this process's own
  std::string preset = "tiny";
  std::string transfer = "local";
  std::string compute = "real";
  int num_prefill = 1;
  int num_decode = 1;
  int requests = 300;  // measured, after the warm-up
  int warmup = 20;     // sent first and not counted (connections, first-touch of the pools)
  int input_len = 128;
  int output_len = 4;
  double gap_ms = 20;  // idle time between one request's end and the next one's start
  // The router asks for decode blocks before the prefill starts (`pdserve router
  // --allocate-first`), not alongside it: the order before, for comparisons.
  bool allocate_first = false;
  bool no_fast_lane = false;  // `pdserve router --no-fast-lane`: gRPC for every call
  bool no_nudge = false;      // `pdserve router --no-nudge`: no heads-up to the prefill worker
  // `pdserve decode --inline-first-step-kib 0`: the decode loop thread makes every token
  bool no_inline_step = false;
  uint64_t seed = 1;
  // The same-run baseline (handoff_floor.h): this many bare hand-offs between processes, timed
  // with the same idle time before each, before the cluster starts and after it stops. 3: the
  // first token's path wakes the router's executor, the prefill worker's reader and the decode
  // worker's notification thread (which starts the request and, on an idle engine, makes the
  // first token itself: DecodeEngineOptions::inline_step_kv_bytes). 0: not measured.
  int floor_hops = 3;
  // Also write the figures as JSON here: the stage table, the gap median and each measured
  // request's stamps ("timelines", with its gap).
  std::string json_path;
};

absl::Status RunControlPlaneBench(const ControlPlaneBenchOptions& options);

}  // namespace pdserve::bench
