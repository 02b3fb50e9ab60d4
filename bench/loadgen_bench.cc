#include "bench/loadgen_bench.h"

#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "loadgen/echo_target.h"
#include "loadgen/load_runner.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {
namespace {

constexpr double kTargetRate = 2000;    // the rate the generator must hold
constexpr double kTolerance = 0.02;     // achieved within 2% of requested

// The baseline: follow the due times with the sender's own sleep loop, sending nothing, and
// return the achieved rate ((n - 1) / (last - first) of the wake-up times).
double TimerOnlyRate(const std::vector<double>& due) {
  const int64_t t0 = MonotonicNanos() + 2'000'000;
  int64_t first = 0, last = 0;
  for (size_t i = 0; i < due.size(); ++i) {
    const std::chrono::steady_clock::time_point at{
        std::chrono::nanoseconds(t0 + static_cast<int64_t>(due[i] * 1e9))};
    if (std::chrono::steady_clock::now() < at) std::this_thread::sleep_until(at);
    last = MonotonicNanos();
    if (i == 0) first = last;
  }
  return due.size() > 1 ? (due.size() - 1) / ((last - first) * 1e-9) : NAN;
}

// CPU seconds (user + system) this process has used so far: client and echo target together.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double Lag(const loadgen::GeneratorStats& g, double p) {
  for (const auto& [q, v] : g.send_lag_ms.percentiles) {
    if (q == p) return v;
  }
  return NAN;
}

}  // namespace

absl::Status RunLoadgenBench(const LoadgenBenchOptions& options) {
  loadgen::EchoTargetOptions echo;
  echo.reference_tokens = false;  // measure the generator, not the model
  echo.tokens_per_chunk = options.tokens_per_chunk;
  ASSIGN_OR_RETURN(auto target, loadgen::EchoTarget::Start(echo));
  ASSIGN_OR_RETURN(loadgen::ArrivalProcess process, loadgen::ParseArrivalProcess(options.arrival));

  std::printf(
      "pdserve bench loadgen  (built-in echo target in this process over gRPC on %s; %s arrivals,"
      " %.0f s per rate, in %d / out %d tokens, %d token(s) per chunk, %d channels, %u cores)\n",
      target->address().c_str(), options.arrival.c_str(), options.seconds, options.input_len,
      options.output_len, options.tokens_per_chunk, options.num_channels,
      std::thread::hardware_concurrency());
  std::string loadavg = "?";
  std::getline(std::ifstream("/proc/loadavg"), loadavg);
  std::printf("machine load average before the runs: %s\n", loadavg.c_str());
  std::printf("baseline: the same schedule followed by a timer-only loop (no gRPC)\n\n");
  std::printf("%10s %8s %12s %12s %10s %10s %12s %9s %9s %7s %9s %9s\n", "requested",
              "prompts", "baseline", "achieved", "achieved/", "achieved/", "completed", "p50 lag",
              "p99 lag", "failed", "p99 TTFT", "CPU/req");
  std::printf("%10s %8s %12s %12s %10s %10s %12s %9s %9s %7s %9s %9s\n", "req/s", "", "req/s",
              "req/s", "requested", "baseline", "req/s", "ms", "ms", "", "ms", "us");

  nlohmann::json json;
  json["target"] = "builtin echo (in-process)";
  json["arrival_process"] = options.arrival;
  json["input_len"] = options.input_len;
  json["output_len"] = options.output_len;
  json["loadavg_before"] = loadavg;
  json["runs"] = nlohmann::json::array();
  std::string verdict = absl::StrCat("no run at ", kTargetRate, " req/s or above");
  bool held = false;
  for (double rate : options.rates) {
    loadgen::LoadOptions o;
    o.target = target->address();
    o.num_prompts = std::max(2, static_cast<int>(std::lround(rate * options.seconds)));
    o.arrival.request_rate = rate;
    o.arrival.process = process;
    o.random.input_len = options.input_len;
    o.random.output_len = options.output_len;
    o.num_channels = options.num_channels;
    o.seed = options.seed;
    o.progress = loadgen::ProgressMode::kOff;
    o.request_timeout_s = 60;
    // Warm the connections and gRPC's threads before the measured requests.
    o.num_warmups = std::min(200, o.num_prompts / 10);
    const double baseline =
        TimerOnlyRate(loadgen::ArrivalOffsets(o.arrival, o.num_prompts, o.seed));
    const double cpu_before = ProcessCpuSeconds();
    ASSIGN_OR_RETURN(loadgen::BenchmarkResult r, loadgen::RunLoad(o));
    const double cpu_us_per_request =
        (ProcessCpuSeconds() - cpu_before) * 1e6 / (o.num_prompts + o.num_warmups);
    const loadgen::GeneratorStats& g = r.generator;
    const double ratio = g.send_rate / rate;
    std::printf("%10.0f %8d %12.1f %12.1f %10.4f %10.4f %12.1f %9.3f %9.3f %7d %9.3f %9.1f\n",
                rate, o.num_prompts, baseline, g.send_rate, ratio, g.send_rate / baseline,
                r.metrics.request_throughput, Lag(g, 50), Lag(g, 99), r.metrics.failed,
                r.metrics.ttft_ms.percentiles.back().second, cpu_us_per_request);
    json["runs"].push_back({{"requested_rate", rate},
                            {"num_prompts", o.num_prompts},
                            {"baseline_timer_only_rate", baseline},
                            {"scheduled_rate", g.scheduled_rate},
                            {"achieved_rate", g.send_rate},
                            {"achieved_to_requested", ratio},
                            {"achieved_to_baseline", g.send_rate / baseline},
                            {"request_throughput", r.metrics.request_throughput},
                            {"p50_send_lag_ms", Lag(g, 50)},
                            {"p99_send_lag_ms", Lag(g, 99)},
                            {"completed", r.metrics.completed},
                            {"failed", r.metrics.failed},
                            {"p99_ttft_ms", r.metrics.ttft_ms.percentiles.back().second},
                            {"cpu_us_per_request_client_and_target", cpu_us_per_request}});
    if (rate >= kTargetRate && r.metrics.failed == 0 &&
        std::fabs(ratio - 1.0) <= kTolerance && (!held || rate > json["held_rate"].get<double>())) {
      held = true;
      json["held_rate"] = rate;
      verdict = absl::StrCat("holds ", rate, " req/s: achieved ", std::lround(g.send_rate),
                             " req/s, ratio ", absl::StrFormat("%.4f", ratio),
                             " (within 2%), completed ",
                             absl::StrFormat("%.1f", r.metrics.request_throughput), " req/s");
    }
  }
  json["verdict"] = verdict;
  std::printf("\n%s\n", verdict.c_str());
  if (!options.json_path.empty()) {
    const auto parent = std::filesystem::path(options.json_path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    std::ofstream out(options.json_path);
    out << json.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", options.json_path));
    std::printf("JSON: %s\n", options.json_path.c_str());
  }
  return absl::OkStatus();
}

}  // namespace pdserve::bench
