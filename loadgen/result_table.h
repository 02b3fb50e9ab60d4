#pragma once

#include <string>

#include "loadgen/benchmark_result.h"

namespace pdserve::loadgen {

// The console summary in the layout of `vllm bench serve`, followed by the server-timeline
// breakdown, the generator's fidelity, errors by reason and the metric definitions.
std::string FormatResultTable(const BenchmarkResult& result);

}  // namespace pdserve::loadgen
