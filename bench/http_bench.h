#pragma once

// `pdserve bench http`: what the OpenAI-compatible HTTP front end costs next to gRPC, on one
// cluster.
//
// compare: the gRPC loadgen and the HTTP loadgen (`loadgen --backend openai`) run at the same
//   time against one cluster, each at half of `rate`, `rounds` times; prints TTFT p50 of each
//   (pooled over rounds), the HTTP - gRPC difference with its bootstrap interval and the
//   ratio, with the client - server TTFT gap (the front end's own legs) per API. The baseline
//   (gRPC) shares the cluster and the host with the HTTP load at every moment.
// streams: `streams` streamed completions sent at once over HTTP with long outputs and slow
//   decode steps, so that all are open together; checks that every one completes with every
//   token verified and reports peak open streams (first token received, last not yet), errors,
//   and the router's peak RSS and thread count.
//
// Results under `out_dir`: http_bench.json (the figures), runs/*.json and *.csv (each load run
// as `pdserve loadgen` writes it), summary.md.

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace pdserve::bench {

struct HttpBenchOptions {
  std::string mode = "all";  // compare | streams | all
  std::string preset = "tiny";
  std::string out_dir;  // empty: results/bench-http-<date>
  uint64_t seed = 0;
  // compare
  double rate = 20;  // req/s, Poisson, both APIs together (each gets half)
  int prompts = 200;
  int input_len = 128;
  int output_len = 32;
  int rounds = 3;
  // streams
  int streams = 2000;
  int stream_input_len = 16;
  int stream_output_len = 128;
  int decode_step_ms = 100;  // the decode worker's minimum step: keeps streams open together
  int http_threads = 1;      // the load generator's io threads
};

absl::Status RunHttpBench(const HttpBenchOptions& options);

}  // namespace pdserve::bench
