#pragma once

#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace pdserve::loadgen {

inline constexpr double kInfiniteRate = std::numeric_limits<double>::infinity();

// How inter-arrival gaps are drawn (open loop: arrivals never wait for responses, except under
// --max-concurrency, where a due request waits for a free slot as in vllm bench serve).
enum class ArrivalProcess {
  kPoisson,   // exponential gaps, mean 1/rate (gamma with shape 1)
  kGamma,     // gaps from gamma(shape=b, scale=1/(rate*b)): CV = 1/sqrt(b)
  kConstant,  // every gap exactly 1/rate
};

struct ArrivalOptions {
  double request_rate = kInfiniteRate;  // requests/s; infinity sends everything at once
  ArrivalProcess process = ArrivalProcess::kPoisson;
  double burstiness = 1.0;  // gamma shape b; only kGamma uses it; inf: constant gaps (vllm)
  // vllm bench serve rescales the cumulative delays so that the last request is due at exactly
  // num_prompts / rate; this keeps the aggregate rate exact while the gaps keep their shape.
  bool normalize_total_span = true;
};

absl::StatusOr<ArrivalProcess> ParseArrivalProcess(const std::string& name);
std::string ArrivalProcessName(ArrivalProcess process);
// "inf" (any case) or a positive number.
absl::StatusOr<double> ParseRequestRate(const std::string& text);
std::string RequestRateName(double rate);  // "inf" or "%g"

absl::Status ValidateArrivalOptions(const ArrivalOptions& options);

// Due times of `n` requests in seconds after the start of the run, non-decreasing. As in vllm,
// request i is due after the sum of gaps 0..i (the first request waits one gap too); with an
// infinite rate every request is due at 0. Same options and seed, same schedule.
std::vector<double> ArrivalOffsets(const ArrivalOptions& options, int n, uint64_t seed);

}  // namespace pdserve::loadgen
