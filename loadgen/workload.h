#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pdserve::loadgen {

// One request to send: what it asks for and when it is due. Prompts are explicit token ids made
// with model::SyntheticPrompt, so --verify can recompute the expected output from them and `seed`.
struct RequestSpec {
  int index = 0;
  double arrival_s = 0;  // due time after the start of the run
  int input_len = 0;     // prompt tokens, shared prefix included
  int output_len = 0;    // max_tokens
  uint64_t seed = 0;     // the request's generation seed
  std::vector<int32_t> prompt;
};

// As `vllm bench serve --dataset-name random`: lengths uniform in
// [floor(len * (1 - r)), ceil(len * (1 + r))]; every prompt starts with the same `prefix_len`
// tokens, so a prompt has prefix_len + sampled input length tokens.
struct RandomWorkloadOptions {
  int input_len = 1024;
  int output_len = 128;
  double range_ratio = 0.0;  // in [0, 1)
  int prefix_len = 0;
};

// A trace row: arrival time (s), input and output length.
struct TraceEntry {
  double arrival_s = 0;
  int input_len = 0;
  int output_len = 0;
};

absl::Status ValidateRandomWorkload(const RandomWorkloadOptions& options);

// The request seed of request `index` of a run seeded with `run_seed`.
uint64_t RequestSeed(uint64_t run_seed, int index);

// `n` requests with arrival_s = 0 (the arrival schedule sets them). Deterministic in `seed`.
absl::StatusOr<std::vector<RequestSpec>> MakeRandomWorkload(const RandomWorkloadOptions& options,
                                                            int n, uint64_t seed,
                                                            int32_t vocab_size);

// JSONL, one object per line: {"arrival_s"|"timestamp": seconds, "input_len"|"input_length": n,
// "output_len"|"output_length": n}. Blank lines and lines starting with '#' are skipped. Rows come
// back ordered by arrival time; rows with equal times keep their file order.
absl::StatusOr<std::vector<TraceEntry>> ParseTrace(std::string_view jsonl);
absl::StatusOr<std::vector<TraceEntry>> LoadTraceFile(const std::string& path);

// Requests replaying `trace` (at most `max_requests`, all when <= 0), due at the trace's times
// shifted so that the first row is due at 0. `prefix_len` shared tokens start every prompt (they
// are part of the row's input length when it is long enough).
std::vector<RequestSpec> MakeTraceWorkload(const std::vector<TraceEntry>& trace, int max_requests,
                                           uint64_t seed, int32_t vocab_size, int prefix_len);

}  // namespace pdserve::loadgen
