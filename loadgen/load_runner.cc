#include "loadgen/load_runner.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "common/synthetic_model.h"
#include "loadgen/call_tracker.h"
#include "loadgen/load_client.h"
#include "loadgen/progress_line.h"
#include "loadgen/sharegpt.h"
#include "loadgen/verify.h"

namespace pdserve::loadgen {
namespace {

constexpr uint64_t kWarmupSalt = 0x3C6EF372FE94F82Bull;
// Due times count from a moment slightly ahead of the sender's start, so that the first
// requests are not late because of thread start-up.
constexpr int64_t kStartLeadNs = 2'000'000;

struct PhaseOutcome {
  std::vector<RequestRecord> records;
  CallTracker::Counts counts;
  double duration_s = 0;  // schedule start -> last completion
};

// Sends the phase's requests at their due times from a sender thread and waits until every
// one is done (each has a deadline, so this ends).
absl::StatusOr<PhaseOutcome> RunPhase(std::vector<RequestSpec>& specs, LoadClient& client,
                                      const std::string& id_prefix, const ModelConfig& model,
                                      const LoadOptions& options, bool show_progress) {
  const int n = static_cast<int>(specs.size());
  // With --verify every request names the model, so that a target serving another refuses it.
  RETURN_IF_ERROR(client.Prepare(specs, id_prefix, model, /*name_preset=*/options.verify));
  PhaseOutcome out;
  out.records.resize(n);
  for (int i = 0; i < n; ++i) {
    RequestRecord& r = out.records[i];
    r.index = specs[i].index;
    r.request_id = client.RequestId(i);
    r.input_len = specs[i].input_len;
    r.max_tokens = specs[i].output_len;
    r.seed = specs[i].seed;
    if (options.save_token_ids) r.prompt_tokens = specs[i].prompt;
    r.scheduled_s = specs[i].arrival_s;
  }
  if (n == 0) return out;
  CallTracker tracker;
  const int64_t t0 = MonotonicNanos() + kStartLeadNs;
  std::thread sender([&] {
    for (int i = 0; i < n; ++i) {
      const std::chrono::steady_clock::time_point due{
          std::chrono::nanoseconds(t0 + static_cast<int64_t>(specs[i].arrival_s * 1e9))};
      if (std::chrono::steady_clock::now() < due) std::this_thread::sleep_until(due);
      out.records[i].arrival_s = static_cast<double>(MonotonicNanos() - t0) * 1e-9;
      tracker.WaitForSlot(options.max_concurrency);
      client.Send(i, &out.records[i], &tracker, t0, options.request_timeout_s);
    }
  });
  ProgressLine progress(show_progress, n, t0);
  while (!tracker.WaitAllDone(n, absl::Milliseconds(250))) {
    progress.Update(tracker.Read(), MonotonicNanos());
  }
  sender.join();
  client.EndPhase();
  out.counts = tracker.Read();
  progress.Finish(out.counts, MonotonicNanos());
  // As vllm's: from the start of the schedule (the first request is due one gap after it, as
  // there) to the last request's end.
  out.duration_s = static_cast<double>(out.counts.last_done_ns - t0) * 1e-9;
  return out;
}

// (n - 1) / (last - first) of non-decreasing times; infinity when they coincide.
double RateOf(double first, double last, int n) {
  if (n < 2) return NAN;
  return last > first ? (n - 1) / (last - first) : INFINITY;
}

GeneratorStats MakeGeneratorStats(const LoadOptions& options, const PhaseOutcome& phase) {
  GeneratorStats g;
  const auto& r = phase.records;
  const int n = static_cast<int>(r.size());
  g.sent = phase.counts.sent;
  g.peak_in_flight = phase.counts.peak_in_flight;
  g.scheduled_rate = RateOf(r.front().scheduled_s, r.back().scheduled_s, n);
  g.send_rate = RateOf(r.front().send_s, r.back().send_s, n);
  g.requested_rate =
      options.dataset == DatasetKind::kTrace ? g.scheduled_rate : options.arrival.request_rate;
  std::vector<double> lag(n);
  for (int i = 0; i < n; ++i) lag[i] = (r[i].send_s - r[i].scheduled_s) * 1e3;
  g.send_lag_ms = Summarize(std::move(lag), {50, 99});
  return g;
}

absl::Status MakeWorkloads(const LoadOptions& options, int32_t vocab_size,
                           std::vector<RequestSpec>& specs, std::vector<RequestSpec>& warmups) {
  const uint64_t warmup_seed = model::Mix64(options.seed ^ kWarmupSalt);
  if (options.dataset == DatasetKind::kTrace) {
    ASSIGN_OR_RETURN(std::vector<TraceEntry> trace, LoadTraceFile(options.trace_path));
    specs = MakeTraceWorkload(trace, options.num_prompts, options.seed, vocab_size,
                              options.random.prefix_len);
    warmups.clear();
    if (options.num_warmups > 0) {
      warmups = MakeTraceWorkload(trace, options.num_warmups, warmup_seed, vocab_size,
                                  options.random.prefix_len);
    }
  } else {
    if (options.dataset == DatasetKind::kShareGpt) {
      const ShareGptOptions sharegpt{.fixed_output_len = options.sharegpt_output_len};
      ASSIGN_OR_RETURN(specs, LoadShareGptWorkload(options.trace_path, options.num_prompts,
                                                   options.seed, vocab_size, sharegpt));
    } else {
      ASSIGN_OR_RETURN(specs, MakeRandomWorkload(options.random, options.num_prompts,
                                                 options.seed, vocab_size));
    }
    const std::vector<double> due =
        ArrivalOffsets(options.arrival, options.num_prompts, options.seed);
    for (size_t i = 0; i < specs.size(); ++i) specs[i].arrival_s = due[i];
    ASSIGN_OR_RETURN(
        warmups, MakeRandomWorkload(options.random, options.num_warmups, warmup_seed, vocab_size));
  }
  for (RequestSpec& w : warmups) w.arrival_s = 0;  // warm-ups go out at once
  return absl::OkStatus();
}

// The model to build prompts for and verify against: the target's own (GetStatus), so that
// --verify recomputes tokens with the cluster's block size and dtype, not an assumed preset.
absl::StatusOr<ModelConfig> TargetModel(const LoadOptions& options, LoadClient& client) {
  auto log = ComponentLogger("loadgen");
  absl::StatusOr<ModelConfig> target = client.FetchModel(absl::Seconds(options.connect_timeout_s));
  if (target.ok()) {
    if (!options.preset.empty() && options.preset != target->name) {
      return absl::InvalidArgumentError(absl::StrCat("loadgen: --preset ", options.preset, " but ",
                                                     TargetName(options), " serves model ",
                                                     ModelSummary(*target)));
    }
    log->info("{} serves model {}", TargetName(options), ModelSummary(*target));
    return target;
  }
  // The target answered and serves another model than asked for (--model over HTTP): every
  // request would fail.
  if (absl::IsFailedPrecondition(target.status())) return target.status();
  if (options.verify) {
    return absl::Status(
        target.status().code(),
        absl::StrCat("loadgen --verify needs the target's model: ", target.status().message()));
  }
  const std::string preset = options.preset.empty() ? "tiny" : options.preset;
  log->warn("{}; prompts use preset {}'s vocabulary", target.status().ToString(), preset);
  return PresetConfig(preset);
}

}  // namespace

absl::Status ValidateLoadOptions(const LoadOptions& o) {
  if (o.api == ClientApi::kPdserve && o.target.empty()) {
    return absl::InvalidArgumentError("loadgen: no target given");
  }
  if (o.api != ClientApi::kPdserve && o.base_url.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("loadgen: --backend ", ClientApiName(o.api), " needs --base-url"));
  }
  if (o.http_io_threads < 1) return absl::InvalidArgumentError("loadgen: http_io_threads < 1");
  if (o.num_prompts < 1) return absl::InvalidArgumentError("loadgen: num_prompts must be >= 1");
  if (o.num_warmups < 0 || o.max_concurrency < 0) {
    return absl::InvalidArgumentError("loadgen: num_warmups and max_concurrency must be >= 0");
  }
  if (o.num_channels < 1) return absl::InvalidArgumentError("loadgen: num_channels must be >= 1");
  if (!(o.request_timeout_s > 0) || !(o.connect_timeout_s > 0)) {
    return absl::InvalidArgumentError("loadgen: timeouts must be > 0");
  }
  for (double p : o.percentiles) {
    if (!(p >= 0 && p <= 100)) {
      return absl::InvalidArgumentError(
          absl::StrCat("loadgen: percentile ", p, " not in [0, 100]"));
    }
  }
  if (o.dataset == DatasetKind::kShareGpt) {
    if (o.trace_path.empty()) {
      return absl::InvalidArgumentError("loadgen: --dataset-name sharegpt needs --dataset-path");
    }
    if (o.sharegpt_output_len < 0) {
      return absl::InvalidArgumentError("loadgen: --sharegpt-output-len < 0");
    }
    RETURN_IF_ERROR(ValidateArrivalOptions(o.arrival));
  } else if (o.dataset == DatasetKind::kTrace) {
    if (o.trace_path.empty()) return absl::InvalidArgumentError("loadgen: trace path missing");
    if (o.random.prefix_len < 0) return absl::InvalidArgumentError("loadgen: prefix_len < 0");
  } else {
    RETURN_IF_ERROR(ValidateArrivalOptions(o.arrival));
    RETURN_IF_ERROR(ValidateRandomWorkload(o.random));
  }
  return absl::OkStatus();
}

absl::StatusOr<BenchmarkResult> RunLoad(const LoadOptions& options) {
  RETURN_IF_ERROR(ValidateLoadOptions(options));
  auto log = ComponentLogger("loadgen");
  ASSIGN_OR_RETURN(std::unique_ptr<LoadClient> client, ConnectLoadClient(options));
  ASSIGN_OR_RETURN(ModelConfig config, TargetModel(options, *client));
  std::vector<RequestSpec> specs, warmups;
  RETURN_IF_ERROR(MakeWorkloads(options, config.vocab_size, specs, warmups));

  // Ids unique across runs against one long-lived router.
  // The counter keeps two runs started in the same microsecond by one process (pdserve bench
  // http runs its gRPC and HTTP loads at once) apart.
  static std::atomic<uint32_t> runs{0};
  const std::string run_tag = absl::StrFormat(
      "lg%06x%x", static_cast<uint32_t>(WallMicros() ^ (getpid() << 8)) & 0xFFFFFF,
      runs.fetch_add(1) & 0xFF);
  BenchmarkResult result;
  result.options = options;
  result.model = config;
  result.model_id =
      options.model_id.empty() ? absl::StrCat("pdserve/", config.name) : options.model_id;
  if (!warmups.empty()) {
    log->info("sending {} warm-up requests to {}", warmups.size(), TargetName(options));
    ASSIGN_OR_RETURN(PhaseOutcome warm, RunPhase(warmups, *client, run_tag + "-w", config, options,
                                                 /*show_progress=*/false));
    result.warmup_failed = warm.counts.failed;
    result.warmup_completed = warm.counts.done - warm.counts.failed;
  }
  const bool tty = isatty(STDERR_FILENO) == 1;
  const bool show =
      options.progress == ProgressMode::kOn || (options.progress == ProgressMode::kAuto && tty);
  log->info("sending {} requests to {} (rate {}, {}, seed {})", specs.size(), TargetName(options),
            options.dataset == DatasetKind::kTrace ? std::string("trace")
                                                   : RequestRateName(options.arrival.request_rate),
            options.dataset == DatasetKind::kTrace ? std::string("replay")
                                                   : ArrivalProcessName(options.arrival.process),
            options.seed);
  result.date = absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::LocalTimeZone());
  ASSIGN_OR_RETURN(PhaseOutcome phase,
                   RunPhase(specs, *client, run_tag + "-", config, options, show));
  result.duration_s = phase.duration_s;
  result.generator = MakeGeneratorStats(options, phase);
  result.requests = std::move(phase.records);
  if (options.verify) result.verify_mismatches = VerifyRecords(specs, config, result.requests);
  result.metrics =
      ComputeMetrics(result.requests, result.duration_s, options.percentiles, options.goodput);
  log->info("done: {} completed, {} failed in {:.3f} s", result.metrics.completed,
            result.metrics.failed, result.duration_s);
  return result;
}

}  // namespace pdserve::loadgen
