#pragma once

#include <string>

#include "absl/status/status.h"
#include "loadgen/benchmark_result.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {

// The result with every key of `vllm bench serve --save-result --save-detailed` and the same
// definitions (percentile fields for options.percentile_metrics only, as vllm), plus pdserve
// extras (server timeline aggregates and per-request timelines, generator fidelity, errors by
// cause, the target's model, metric_definitions). Detailed per-request arrays are left out when `per_request` is false; with
// options.save_token_ids they include prompt_token_ids, output_token_ids, request_seeds and
// max_tokens, enough to re-verify the run offline (loadgen/saved_result.h).
nlohmann::ordered_json ResultToJson(const BenchmarkResult& result, bool per_request = true);

// vllm's default name: <label or backend>-<rate>qps[-concurrency<N>]-<model>-<date>.json, the
// rate as Python prints a float ("4.0", "inf") and the model id's last path component.
std::string DefaultResultFilename(const BenchmarkResult& result);

absl::Status WriteResultJson(const BenchmarkResult& result, const std::string& path);

}  // namespace pdserve::loadgen
