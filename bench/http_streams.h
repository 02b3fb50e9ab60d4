#pragma once

// The open-streams mode of `pdserve bench http` (bench/http_bench.h): many streamed HTTP
// completions open at once against one router.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "bench/http_bench.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {

// Runs o.streams requests at once over HTTP on a cluster of its own; adds its figures to `out`
// ("streams") and a section to `md`. Failed requests make the status an error (after the
// figures are written).
absl::Status RunOpenStreams(const HttpBenchOptions& o, const std::string& dir, nlohmann::json& out,
                            std::string& md);

// The most intervals [begin, end) open at one instant.
int PeakOverlap(std::vector<std::pair<double, double>> intervals);

}  // namespace pdserve::bench
