#include "loadgen/arrival_schedule.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loadgen/rng.h"

namespace pdserve::loadgen {

absl::StatusOr<ArrivalProcess> ParseArrivalProcess(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "poisson") return ArrivalProcess::kPoisson;
  if (lower == "gamma") return ArrivalProcess::kGamma;
  if (lower == "constant") return ArrivalProcess::kConstant;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown arrival process '", name, "' (poisson, gamma, constant)"));
}

std::string ArrivalProcessName(ArrivalProcess process) {
  switch (process) {
    case ArrivalProcess::kPoisson: return "poisson";
    case ArrivalProcess::kGamma: return "gamma";
    case ArrivalProcess::kConstant: return "constant";
  }
  return "?";
}

absl::StatusOr<double> ParseRequestRate(const std::string& text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "inf" || lower == "infinity") return kInfiniteRate;
  double rate = 0;
  if (!absl::SimpleAtod(lower, &rate) || !(rate > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request rate must be a positive number or 'inf', got '", text, "'"));
  }
  return rate;
}

std::string RequestRateName(double rate) {
  return std::isinf(rate) ? std::string("inf") : absl::StrFormat("%g", rate);
}

absl::Status ValidateArrivalOptions(const ArrivalOptions& options) {
  if (!(options.request_rate > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request rate must be > 0, got ", options.request_rate));
  }
  if (!(options.burstiness > 0)) {  // inf is vllm's constant gaps; NaN fails here
    return absl::InvalidArgumentError(
        absl::StrCat("burstiness must be a number > 0 or inf, got ", options.burstiness));
  }
  return absl::OkStatus();
}

std::vector<double> ArrivalOffsets(const ArrivalOptions& options, int n, uint64_t seed) {
  std::vector<double> offsets(std::max(n, 0), 0.0);
  if (n <= 0 || std::isinf(options.request_rate)) return offsets;
  const double rate = options.request_rate;
  Rng rng(seed ^ 0xA77A1D5C4ED11ull);
  double t = 0;
  for (int i = 0; i < n; ++i) {
    double gap = 0;
    switch (options.process) {
      case ArrivalProcess::kPoisson: gap = rng.Exponential(1.0 / rate); break;
      case ArrivalProcess::kGamma:
        // vllm: "when burstiness tends to infinity, the delay time becomes constant".
        gap = std::isinf(options.burstiness)
                  ? 1.0 / rate
                  : rng.Gamma(options.burstiness, 1.0 / (rate * options.burstiness));
        break;
      case ArrivalProcess::kConstant: gap = 1.0 / rate; break;
    }
    t += gap;
    offsets[i] = t;
  }
  if (options.normalize_total_span && t > 0) {
    const double factor = (n / rate) / t;
    for (double& o : offsets) o *= factor;
  }
  return offsets;
}

}  // namespace pdserve::loadgen
