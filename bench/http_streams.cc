#include "bench/http_streams.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "cluster/cluster.h"
#include "common/model_config.h"
#include "common/status_macros.h"
#include "loadgen/load_runner.h"
#include "loadgen/result_csv.h"
#include "loadgen/result_json.h"

namespace pdserve::bench {
namespace {

using nlohmann::json;

// A process's resident set (MiB) and thread count from /proc/<pid>/status; -1 when unreadable.
std::pair<double, int> RssAndThreads(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  double rss_mib = -1;
  int threads = -1;
  for (std::string line; std::getline(in, line);) {
    absl::string_view v = line;
    if (absl::ConsumePrefix(&v, "VmRSS:")) {
      int64_t kib = 0;
      if (absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(v), " kB"), &kib)) {
        rss_mib = static_cast<double>(kib) / 1024;
      }
    } else if (absl::ConsumePrefix(&v, "Threads:")) {
      (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &threads);
    }
  }
  return {rss_mib, threads};
}

// Every stream holds a socket in this process and one in the router (which inherits the
// limit): the soft limit goes up to the hard one.
void RaiseFileLimit() {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

int PeakOverlap(std::vector<std::pair<double, double>> intervals) {
  std::vector<std::pair<double, int>> edges;
  edges.reserve(intervals.size() * 2);
  for (const auto& [begin, end] : intervals) {
    edges.push_back({begin, +1});
    edges.push_back({end, -1});
  }
  std::sort(edges.begin(), edges.end());  // at equal times a close (-1) comes first
  int open = 0, peak = 0;
  for (const auto& [t, d] : edges) peak = std::max(peak, open += d);
  return peak;
}

absl::Status RunOpenStreams(const HttpBenchOptions& o, const std::string& dir, json& out,
                            std::string& md) {
  RaiseFileLimit();
  ASSIGN_OR_RETURN(ModelConfig model, PresetConfig(o.preset));
  const uint32_t blocks = static_cast<uint32_t>(
      o.streams * model.BlocksForTokens(o.stream_input_len + o.stream_output_len) + 256);
  cluster::ClusterOptions c;
  c.preset = o.preset;
  c.log_level = "warn";
  c.log_dir = dir + "/logs-streams";
  c.prefill_blocks = blocks;
  c.decode_blocks = blocks;
  // Every request waits in the router's queue at first: the queue must take them all.
  c.router_args = {"--max-waiting", std::to_string(o.streams + 64)};
  c.decode_args = {"--min-step-us", std::to_string(o.decode_step_ms * 1000)};
  std::printf(
      "\nstreams: starting a cluster (%s, %u KV blocks per worker, decode steps >= %d ms)"
      "...\n",
      o.preset.c_str(), blocks, o.decode_step_ms);
  std::fflush(stdout);
  ASSIGN_OR_RETURN(std::unique_ptr<cluster::Cluster> cl, cluster::Cluster::Start(c));
  ASSIGN_OR_RETURN(pid_t router, cl->Pid("router"));
  const auto idle = RssAndThreads(router);

  loadgen::LoadOptions load;
  load.api = loadgen::ClientApi::kOpenAi;
  load.backend = "openai";
  load.label = "bench-http-streams";
  load.base_url = cl->http_url();
  load.http_io_threads = o.http_threads;
  load.num_prompts = o.streams;
  load.arrival.request_rate = INFINITY;  // all at once
  load.random.input_len = o.stream_input_len;
  load.random.output_len = o.stream_output_len;
  load.seed = o.seed;
  load.verify = true;
  load.request_timeout_s = 600;
  load.progress = loadgen::ProgressMode::kOn;
  std::printf("streams: %d streamed completions at once, in %d out %d tokens, verified\n",
              o.streams, o.stream_input_len, o.stream_output_len);
  std::fflush(stdout);

  std::atomic<bool> stop{false};
  double peak_rss = idle.first;
  int peak_threads = idle.second;
  std::thread sampler([&] {
    while (!stop.load()) {
      const auto [rss, threads] = RssAndThreads(router);
      peak_rss = std::max(peak_rss, rss);
      peak_threads = std::max(peak_threads, threads);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  absl::StatusOr<loadgen::BenchmarkResult> result = loadgen::RunLoad(load);
  stop = true;
  sampler.join();
  if (!result.ok()) return result.status();
  RETURN_IF_ERROR(loadgen::WriteResultJson(*result, dir + "/runs/streams.json"));
  RETURN_IF_ERROR(loadgen::WriteRequestsCsv(*result, dir + "/runs/streams.csv"));

  std::vector<std::pair<double, double>> open;
  for (const loadgen::RequestRecord& r : result->requests) {
    if (r.output_tokens > 0) open.push_back({r.send_s + r.ttft_s, r.send_s + r.e2el_s});
  }
  const int peak_open = PeakOverlap(std::move(open));
  const loadgen::BenchmarkMetrics& m = result->metrics;
  std::printf(
      "streams: completed %d, failed %d, verify mismatches %d; peak open streams %d "
      "(first token in, last not yet), peak requests in flight %d; duration %.1f s\n",
      m.completed, m.failed, result->verify_mismatches, peak_open, result->generator.peak_in_flight,
      result->duration_s);
  for (const auto& [reason, n] : m.error_counts) std::printf("  %d x %s\n", n, reason.c_str());
  std::printf("router: RSS %.1f MiB idle, %.1f MiB peak; threads %d idle, %d peak\n", idle.first,
              peak_rss, idle.second, peak_threads);
  json errors = json::object();
  for (const auto& [reason, n] : m.error_counts) errors[reason] = n;
  out["streams"] = json{{"streams", o.streams},
                        {"input_len", o.stream_input_len},
                        {"output_len", o.stream_output_len},
                        {"decode_step_ms", o.decode_step_ms},
                        {"completed", m.completed},
                        {"failed", m.failed},
                        {"verify_mismatches", result->verify_mismatches},
                        {"errors", errors},
                        {"peak_open_streams", peak_open},
                        {"peak_in_flight", result->generator.peak_in_flight},
                        {"duration_s", result->duration_s},
                        {"router_rss_mib_idle", idle.first},
                        {"router_rss_mib_peak", peak_rss},
                        {"router_threads_idle", idle.second},
                        {"router_threads_peak", peak_threads}};
  absl::StrAppend(
      &md, absl::StrFormat(
               "## %d open streams\n\n%d streamed completions sent at once (in %d, out %d, decode "
               "steps >= %d ms), every token verified.\n\n| completed | failed | peak open "
               "streams | router RSS idle / peak (MiB) | router threads idle / peak | duration "
               "(s) |\n|---|---|---|---|---|---|\n| %d | %d | %d | %.1f / %.1f | %d / %d | %.1f "
               "|\n\n",
               o.streams, o.streams, o.stream_input_len, o.stream_output_len, o.decode_step_ms,
               m.completed, m.failed, peak_open, idle.first, peak_rss, idle.second, peak_threads,
               result->duration_s));
  cl->Stop();
  if (m.failed > 0 || result->verify_mismatches > 0) {
    return absl::InternalError(absl::StrCat("streams: ", m.failed, " of ", o.streams,
                                            " requests failed; see ", dir, "/runs/streams.csv"));
  }
  return absl::OkStatus();
}

}  // namespace pdserve::bench
