#include "loadgen/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/synthetic_model.h"
#include "loadgen/rng.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {
namespace {

constexpr uint64_t kLengthSalt = 0x1E4C7B5D2A9F0361ull;
constexpr uint64_t kPrefixSalt = 0x7F4A7C159E3779B9ull;
constexpr uint64_t kPromptSalt = 0x2545F4914F6CDD1Dull;

std::vector<int32_t> SharedPrefix(uint64_t run_seed, int prefix_len, int32_t vocab_size) {
  return model::SyntheticPrompt(model::Mix64(run_seed ^ kPrefixSalt), prefix_len, vocab_size);
}

// Prompt = shared prefix + a body made from the request's own seed.
std::vector<int32_t> MakePrompt(const std::vector<int32_t>& prefix, uint64_t request_seed,
                                int body_len, int32_t vocab_size) {
  std::vector<int32_t> prompt;
  prompt.reserve(prefix.size() + body_len);
  prompt.insert(prompt.end(), prefix.begin(), prefix.end());
  std::vector<int32_t> body =
      model::SyntheticPrompt(model::Mix64(request_seed ^ kPromptSalt), body_len, vocab_size);
  prompt.insert(prompt.end(), body.begin(), body.end());
  return prompt;
}

absl::StatusOr<double> NumberField(const nlohmann::json& row, std::initializer_list<const char*> names,
                                   int line) {
  for (const char* name : names) {
    auto it = row.find(name);
    if (it != row.end() && it->is_number()) return it->get<double>();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("trace line ", line, ": missing number field '", *names.begin(), "'"));
}

}  // namespace

absl::Status ValidateRandomWorkload(const RandomWorkloadOptions& options) {
  if (options.input_len < 0 || options.prefix_len < 0 || options.input_len + options.prefix_len < 1) {
    return absl::InvalidArgumentError("random input length + prefix length must be >= 1");
  }
  if (options.output_len < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("random output length must be >= 1, got ", options.output_len));
  }
  if (!(options.range_ratio >= 0.0 && options.range_ratio < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("random range ratio must be in [0, 1), got ", options.range_ratio));
  }
  return absl::OkStatus();
}

uint64_t RequestSeed(uint64_t run_seed, int index) {
  return model::Mix64(run_seed * model::kGolden + static_cast<uint64_t>(index) + 1);
}

absl::StatusOr<std::vector<RequestSpec>> MakeRandomWorkload(const RandomWorkloadOptions& options,
                                                            int n, uint64_t seed,
                                                            int32_t vocab_size) {
  if (absl::Status s = ValidateRandomWorkload(options); !s.ok()) return s;
  const double r = options.range_ratio;
  const int in_lo = static_cast<int>(std::floor(options.input_len * (1.0 - r)));
  const int in_hi = static_cast<int>(std::ceil(options.input_len * (1.0 + r)));
  const int out_lo = std::max(1, static_cast<int>(std::floor(options.output_len * (1.0 - r))));
  const int out_hi = static_cast<int>(std::ceil(options.output_len * (1.0 + r)));
  const std::vector<int32_t> prefix = SharedPrefix(seed, options.prefix_len, vocab_size);
  Rng rng(seed ^ kLengthSalt);
  std::vector<RequestSpec> specs(std::max(n, 0));
  for (int i = 0; i < n; ++i) {
    RequestSpec& spec = specs[i];
    spec.index = i;
    int body = static_cast<int>(rng.UniformInt(in_lo, in_hi));
    if (body + options.prefix_len < 1) body = 1;  // never an empty prompt
    spec.output_len = static_cast<int>(rng.UniformInt(out_lo, out_hi));
    spec.seed = RequestSeed(seed, i);
    spec.prompt = MakePrompt(prefix, spec.seed, body, vocab_size);
    spec.input_len = static_cast<int>(spec.prompt.size());
  }
  return specs;
}

absl::StatusOr<std::vector<TraceEntry>> ParseTrace(std::string_view jsonl) {
  std::vector<TraceEntry> rows;
  std::istringstream in{std::string(jsonl)};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!row.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat("trace line ", number, ": not a JSON object"));
    }
    TraceEntry entry;
    auto t = NumberField(row, {"arrival_s", "timestamp"}, number);
    auto in_len = NumberField(row, {"input_len", "input_length"}, number);
    auto out_len = NumberField(row, {"output_len", "output_length"}, number);
    if (!t.ok()) return t.status();
    if (!in_len.ok()) return in_len.status();
    if (!out_len.ok()) return out_len.status();
    entry.arrival_s = *t;
    entry.input_len = static_cast<int>(*in_len);
    entry.output_len = static_cast<int>(*out_len);
    if (entry.arrival_s < 0 || entry.input_len < 1 || entry.output_len < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trace line ", number, ": needs arrival >= 0 and input and output lengths >= 1"));
    }
    rows.push_back(entry);
  }
  if (rows.empty()) return absl::InvalidArgumentError("trace has no rows");
  std::stable_sort(rows.begin(), rows.end(), [](const TraceEntry& a, const TraceEntry& b) {
    return a.arrival_s < b.arrival_s;
  });
  return rows;
}

absl::StatusOr<std::vector<TraceEntry>> LoadTraceFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open trace file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto rows = ParseTrace(ss.str());
  if (!rows.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", rows.status().message()));
  }
  return rows;
}

std::vector<RequestSpec> MakeTraceWorkload(const std::vector<TraceEntry>& trace, int max_requests,
                                           uint64_t seed, int32_t vocab_size, int prefix_len) {
  const int n = max_requests > 0 ? std::min<int>(max_requests, trace.size()) : trace.size();
  const std::vector<int32_t> full_prefix = SharedPrefix(seed, prefix_len, vocab_size);
  const double t0 = trace.empty() ? 0.0 : trace.front().arrival_s;
  std::vector<RequestSpec> specs(n);
  for (int i = 0; i < n; ++i) {
    RequestSpec& spec = specs[i];
    spec.index = i;
    spec.arrival_s = trace[i].arrival_s - t0;
    spec.output_len = trace[i].output_len;
    spec.seed = RequestSeed(seed, i);
    const int shared = std::min(prefix_len, trace[i].input_len);
    const std::vector<int32_t> prefix(full_prefix.begin(), full_prefix.begin() + shared);
    spec.prompt = MakePrompt(prefix, spec.seed, trace[i].input_len - shared, vocab_size);
    spec.input_len = static_cast<int>(spec.prompt.size());
  }
  return specs;
}

}  // namespace pdserve::loadgen
