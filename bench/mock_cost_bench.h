#pragma once

// The mock's own work against the time it must hide in: one thread generating a prompt's K/V
// into a pool (what a roofline prefill worker does) and reading it back with the checksum (what
// a roofline decode worker does when the KV lands and when the request ends), as GB/s next to
// a one-thread memcpy of the same bytes and next to the rate the modelled GPU writes KV at.

#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {

struct MockCostOptions {
  std::vector<int> prompt_lens = {128, 512, 2048};
  std::string preset = "llama3-8b";
  std::string layout = "layer-major";
  std::string gpu = "h100";
  double min_seconds = 0.5;
};

// Prints a table and returns its rows as JSON.
absl::StatusOr<nlohmann::json> RunMockCostBench(const MockCostOptions& options);

}  // namespace pdserve::bench
