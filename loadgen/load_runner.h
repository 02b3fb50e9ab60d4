#pragma once

#include "absl/status/statusor.h"
#include "loadgen/benchmark_result.h"
#include "loadgen/load_options.h"

namespace pdserve::loadgen {

// Runs one open-loop load against options.target (a Router.Generate endpoint) or, with an
// OpenAI api, options.base_url (loadgen/load_client.h): builds the workload and schedule from
// options.seed, sends the warm-ups and waits for them, then sends the measured requests on
// schedule from a sender thread while the client's threads (gRPC callbacks, HTTP io threads)
// record every chunk, and computes the metrics. Failed requests are results (counted by reason), not errors;
// the status is an error only when the run could not happen (bad options, unreachable target).
// With options.verify, token mismatches are counted in result.verify_mismatches and fail their
// requests; the caller decides whether that fails the command.
absl::StatusOr<BenchmarkResult> RunLoad(const LoadOptions& options);

absl::Status ValidateLoadOptions(const LoadOptions& options);

}  // namespace pdserve::loadgen
