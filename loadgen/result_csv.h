#pragma once

#include <string>

#include "absl/status/status.h"
#include "loadgen/benchmark_result.h"

namespace pdserve::loadgen {

// One row per measured request: client metrics (ms) next to the server's timeline (ms).
std::string FormatRequestsCsv(const BenchmarkResult& result);
absl::Status WriteRequestsCsv(const BenchmarkResult& result, const std::string& path);

}  // namespace pdserve::loadgen
