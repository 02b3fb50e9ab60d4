#pragma once

// `--dataset-name sharegpt --dataset-path FILE`, as `vllm bench serve` reads it: a JSON array of
// conversations ({"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value":
// ...}, ...]}); each entry gives one request, its prompt the first turn, its output length the
// second turn's length (or --sharegpt-output-len). Entries are shuffled with the run's seed and
// filtered as vLLM's ShareGPTDataset filters them (prompt and output >= 4 tokens, prompt <= 1024,
// prompt + output <= 2048; the output check is skipped with a fixed output length); when fewer
// entries pass than requests are asked for, they are reused in order (vLLM oversamples too).
//
// Lengths are in the mock tokenizer's tokens (model::TokenizeText: one token per
// whitespace-separated word), about 0.75x of what a BPE tokenizer such as Llama 3's makes of the
// same English text: the distribution's shape is ShareGPT's, its scale is smaller.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "loadgen/workload.h"

namespace pdserve::loadgen {

struct ShareGptOptions {
  int fixed_output_len = 0;  // > 0: every request's output length (--sharegpt-output-len)
  int min_len = 4;
  int max_prompt_len = 1024;
  int max_total_len = 2048;
};

// `n` requests (arrival_s 0: the arrival schedule sets them) from the dataset's text. The
// prompt is the first turn's text tokenized, so --verify recomputes the output from it.
absl::StatusOr<std::vector<RequestSpec>> MakeShareGptWorkload(std::string_view json_text, int n,
                                                              uint64_t seed, int32_t vocab_size,
                                                              const ShareGptOptions& options);
absl::StatusOr<std::vector<RequestSpec>> LoadShareGptWorkload(const std::string& path, int n,
                                                              uint64_t seed, int32_t vocab_size,
                                                              const ShareGptOptions& options);

}  // namespace pdserve::loadgen
