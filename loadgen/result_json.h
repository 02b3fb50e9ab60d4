#pragma once

#include <string>

#include "absl/status/status.h"
#include "loadgen/benchmark_result.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {

// The result in `vllm bench serve --save-result` field names, plus pdserve extras (server
// timeline aggregates and per-request timelines, generator fidelity, error counts, the target's
// model). Detailed per-request arrays are left out when `per_request` is false; with
// options.save_token_ids they include prompt_token_ids, output_token_ids, request_seeds and
// max_tokens, enough to re-verify the run offline (loadgen/saved_result.h).
nlohmann::ordered_json ResultToJson(const BenchmarkResult& result, bool per_request = true);

// vllm's default name: <backend>-<rate>qps[-concurrency<N>]-<model>-<date>.json, with '/' in the
// model id replaced.
std::string DefaultResultFilename(const BenchmarkResult& result);

absl::Status WriteResultJson(const BenchmarkResult& result, const std::string& path);

}  // namespace pdserve::loadgen
