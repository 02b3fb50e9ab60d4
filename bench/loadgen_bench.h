#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace pdserve::bench {

// `pdserve bench loadgen`: can the load generator hold a request rate? For each rate it runs the
// loadgen against the built-in echo target (in this process, over gRPC on 127.0.0.1) and prints
// requested vs achieved arrival rate and their ratio, next to a baseline measured in the same
// run: the same schedule followed by a timer-only loop that sends nothing.
struct LoadgenBenchOptions {
  std::vector<double> rates = {1000, 2000, 4000};
  double seconds = 5;  // of arrivals per rate
  int input_len = 32;
  int output_len = 4;
  std::string arrival = "poisson";
  int num_channels = 2;
  int tokens_per_chunk = 1;
  uint64_t seed = 0;
  std::string json_path;
};

absl::Status RunLoadgenBench(const LoadgenBenchOptions& options);

}  // namespace pdserve::bench
