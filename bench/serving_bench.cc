#include "bench/serving_bench.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/serving_report.h"
#include "cluster/cluster.h"
#include "common/status_macros.h"
#include "loadgen/load_runner.h"
#include "loadgen/result_csv.h"
#include "loadgen/result_json.h"
#include "transfer/kv_transport.h"
#if PDSERVE_HAS_CUDA
#include "kvcache/cuda/cuda_kernels.h"
#endif

namespace pdserve::bench {
namespace {

std::string Now(const char* format) {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof(buf), format, std::localtime(&t));
  return buf;
}

struct Sweep {
  std::vector<int> input_lens, output_lens;
  std::vector<double> rates;
};

absl::StatusOr<Sweep> ResolveSweep(const ServingBenchOptions& o) {
  Sweep s;
  if (o.matrix == "full") {
    s = {{128, 512, 2048}, {64, 128, 512}, {1, 4, 16}};
  } else if (o.matrix == "default" && o.device == "cuda") {
    // On the GPU the kernels are fast: longer prompts and outputs, still the seed matrix's
    // rates, in about 5 minutes for two backends.
    s = {{512, 2048}, {128}, {1, 4, 16}};
  } else if (o.matrix == "default") {
    // Small enough for a 2-core machine in a few minutes, still the seed matrix's rates.
    s = {{128}, {64}, {1, 4, 16}};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --matrix '", o.matrix, "' (default, full)"));
  }
  if (!o.input_lens.empty()) s.input_lens = o.input_lens;
  if (!o.output_lens.empty()) s.output_lens = o.output_lens;
  if (!o.rates.empty()) s.rates = o.rates;
  return s;
}

// Whether the linked UCX can register device memory (the libucx-cu13 build, PDSERVE_UCX_ROOT):
// then `ucx` on the GPU puts device memory straight into the decode worker's device pool.
bool UcxTakesDeviceMemory() {
  static const bool yes = [] {
    transfer::TransportOptions probe;
    probe.backend = "ucx";
    probe.pool_memory = MemoryKind::kCuda;
    return transfer::AllocatePoolMemory(probe, 1 << 20).ok();
  }();
  return yes;
}

// The name a backend is reported under. On the GPU (--device cuda) `local` runs as cuda-ipc, and
// `ucx` as ucx on device memory where the linked UCX can do that, else as ucx-staged (Debian's
// UCX has no CUDA transports: blocks go D2H into a pinned host pool, UCX puts them into the
// decode worker's host pool, H2D there before decoding).
std::string BackendLabel(const std::string& backend, const std::string& device) {
  if (device != "cuda") return backend;
  if (backend == "local") return "cuda-ipc";
  if (backend == "ucx") return UcxTakesDeviceMemory() ? "ucx" : "ucx-staged";
  if (backend.rfind("ucx-", 0) == 0 && backend != "ucx-staged") {
    return absl::StrCat(UcxTakesDeviceMemory() ? "ucx-" : "ucx-staged-", backend.substr(4));
  }
  return backend;
}

// A backend name as the user gives it -> the cluster's transfer backend and environment.
absl::Status ConfigureBackend(const std::string& backend, const std::string& device,
                              cluster::ClusterOptions& c) {
  if (device == "cuda") {
    const std::string ucx = UcxTakesDeviceMemory() ? "ucx" : "ucx-staged";
    if (backend == "local" || backend == "cuda-ipc") {
      c.transfer = "cuda-ipc";
    } else if (backend == "ucx") {
      c.transfer = ucx;
    } else if (backend.rfind("ucx-", 0) == 0 && backend != "ucx-staged") {
      c.transfer = ucx;
      c.env.push_back({"UCX_TLS", backend.substr(4)});
    } else {
      c.transfer = backend;
    }
    return absl::OkStatus();
  }
  if (backend == "local" || backend == "ucx") {
    c.transfer = backend;
  } else if (backend.rfind("ucx-", 0) == 0) {
    // ucx-posix, ucx-tcp, ucx-cma: UCX pinned to that transport through its own UCX_TLS. Plain
    // `ucx` leaves the choice to UCX (which picks tcp on one host when it must detect dead
    // peers: UCX 1.13 has no peer-failure handling over shared memory).
    c.transfer = "ucx";
    c.env.push_back({"UCX_TLS", backend.substr(4)});
  } else {
    c.transfer = backend;  // the cluster reports an unknown backend clearly
  }
  return absl::OkStatus();
}

int PromptsFor(const ServingBenchOptions& o, double rate) {
  if (std::isinf(rate)) return o.min_prompts * 4;
  const int n = static_cast<int>(std::lround(rate * o.seconds_per_rate));
  return std::clamp(n, o.min_prompts, o.max_prompts);
}

// What the prefill workers' transfer backend reports it uses ("memcpy", "posix/memory", ...).
std::string Transports(const cluster::Cluster& c) {
  absl::StatusOr<v1::ClusterStatus> status = c.GetStatus();
  if (!status.ok()) return "unknown";
  std::vector<std::string> seen;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.role() == v1::WORKER_ROLE_PREFILL && !w.transports().empty() &&
        std::find(seen.begin(), seen.end(), w.transports()) == seen.end()) {
      seen.push_back(w.transports());
    }
  }
  return seen.empty() ? "unknown" : absl::StrJoin(seen, "; ");
}

// Checks that every KV block of every pool is free again after a run.
std::string LeakedBlocks(const cluster::Cluster& c) {
  absl::StatusOr<v1::ClusterStatus> status = c.GetStatus();
  if (!status.ok()) return absl::StrCat("status unavailable: ", status.status().message());
  std::vector<std::string> leaks;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.capacity().free_blocks() != w.capacity().total_blocks()) {
      leaks.push_back(absl::StrCat(w.worker_id(), " ", w.capacity().free_blocks(), "/",
                                   w.capacity().total_blocks(), " free"));
    }
  }
  return absl::StrJoin(leaks, ", ");
}

}  // namespace

absl::Status RunServingBench(const ServingBenchOptions& options) {
  ServingBenchOptions o = options;
  std::string device;
  if (o.device == "cuda") {
#if PDSERVE_HAS_CUDA
    ASSIGN_OR_RETURN(device, cuda::DeviceDescription());
#else
    return absl::FailedPreconditionError(
        "--device cuda: this pdserve was built without CUDA (configure with -DPDSERVE_CUDA=ON)");
#endif
    o.compute = "cuda";
    if (o.backends == ServingBenchOptions{}.backends) o.backends = {"local", "ucx"};
    // Device memory is plentiful: room for every request of the default sweep at once.
    if (o.pool_gib == ServingBenchOptions{}.pool_gib) o.pool_gib = 8;
  } else if (o.device != "cpu") {
    return absl::InvalidArgumentError(absl::StrCat("--device must be cpu or cuda, not '",
                                                   o.device, "'"));
  }
  ASSIGN_OR_RETURN(Sweep sweep, ResolveSweep(o));
  const std::string dir = o.result_dir.empty()
                              ? absl::StrCat("results/bench-", Now("%Y%m%d-%H%M%S"))
                              : o.result_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));

  const std::string compute =
      o.compute == "roofline" ? absl::StrCat("roofline (", o.gpu, ")") : o.compute;
  std::printf("pdserve bench: backends %s, preset %s, compute %s, %d prefill + %d decode, "
              "inputs %s, outputs %s, rates %s req/s\n",
              absl::StrJoin(o.backends, ",").c_str(), o.preset.c_str(), compute.c_str(),
              o.num_prefill, o.num_decode, absl::StrJoin(sweep.input_lens, ",").c_str(),
              absl::StrJoin(sweep.output_lens, ",").c_str(),
              absl::StrJoin(sweep.rates, ",").c_str());
  std::fflush(stdout);

  if (!device.empty()) std::printf("device: %s\n", device.c_str());
  std::vector<ServingRun> runs;
  std::vector<std::string> transports;
  for (const std::string& user_backend : o.backends) {
    const std::string backend = BackendLabel(user_backend, o.device);
    cluster::ClusterOptions c;
    c.num_prefill = o.num_prefill;
    c.num_decode = o.num_decode;
    c.preset = o.preset;
    c.compute = o.compute;
    c.gpu = o.gpu;
    c.pool_gib = o.pool_gib;
    c.layout = o.layout;
    c.log_level = "warn";
    c.log_dir = absl::StrCat(dir, "/logs-", backend);
    RETURN_IF_ERROR(ConfigureBackend(user_backend, o.device, c));
    std::printf("[%s] starting cluster...\n", backend.c_str());
    std::fflush(stdout);
    absl::StatusOr<std::unique_ptr<cluster::Cluster>> cl = cluster::Cluster::Start(c);
    for (int in : sweep.input_lens) {
      for (int out : sweep.output_lens) {
        for (double rate : sweep.rates) {
          ServingRun run{.backend = backend, .input_len = in, .output_len = out,
                         .request_rate = rate};
          if (!cl.ok()) {
            run.error = absl::StrCat("cluster did not start: ", cl.status().message());
            runs.push_back(run);
            continue;
          }
          loadgen::LoadOptions load;
          load.target = (*cl)->endpoint();
          load.num_prompts = PromptsFor(o, rate);
          load.num_warmups = 2;
          load.seed = o.seed + static_cast<uint64_t>(runs.size());
          load.arrival.request_rate = rate;
          load.random.input_len = in;
          load.random.output_len = out;
          load.preset = o.preset;
          load.verify = o.verify;
          load.progress = loadgen::ProgressMode::kAuto;
          load.backend = absl::StrCat("pdserve-", backend);
          load.label = absl::StrCat(backend, "-in", in, "-out", out);
          const std::string stem = absl::StrCat(backend, "_in", in, "_out", out, "_rate",
                                                loadgen::RequestRateName(rate));
          std::printf("[%s] in %d out %d rate %s req/s: %d prompts...\n", backend.c_str(), in,
                      out, loadgen::RequestRateName(rate).c_str(), load.num_prompts);
          std::fflush(stdout);
          absl::StatusOr<loadgen::BenchmarkResult> result = loadgen::RunLoad(load);
          if (!result.ok()) {
            run.error = std::string(result.status().message());
          } else {
            RETURN_IF_ERROR(loadgen::WriteResultJson(*result, absl::StrCat(dir, "/", stem, ".json")));
            RETURN_IF_ERROR(loadgen::WriteRequestsCsv(*result, absl::StrCat(dir, "/", stem, ".csv")));
            run.result = loadgen::ResultToJson(*result, /*per_request=*/false);
            run.result_file = stem + ".json";
            if (result->verify_mismatches > 0) {
              run.error = absl::StrCat(result->verify_mismatches,
                                       " requests returned tokens that differ from the model");
            } else if (std::string leaks = LeakedBlocks(**cl); !leaks.empty()) {
              run.error = absl::StrCat("KV blocks not freed after the run: ", leaks);
            }
            std::printf("        completed %d failed %d  TTFT p99 %.1f ms  TPOT p99 %.2f ms  "
                        "KV transfer mean %.3f ms%s\n",
                        result->metrics.completed, result->metrics.failed,
                        ResultNumber(run.result, "p99_ttft_ms"),
                        ResultNumber(run.result, "p99_tpot_ms"),
                        ResultNumber(run.result, "mean_kv_transfer_ms"),
                        run.error.empty() ? "" : ("  ERROR: " + run.error).c_str());
          }
          runs.push_back(std::move(run));
          std::fflush(stdout);
          if (absl::Status alive = (*cl)->CheckChildren(); !alive.ok()) {
            cl = alive;  // the remaining runs of this backend report it
          }
        }
      }
    }
    if (cl.ok()) {
      std::string env;
      for (const auto& [k, v] : c.env) absl::StrAppend(&env, k, "=", v, " ");
      transports.push_back(absl::StrCat(backend, ": transfer backend ", c.transfer, ", ", env,
                                        "transports used: ", Transports(**cl)));
      (*cl)->Stop();
    }
  }

  ServingReportContext context;
  context.date = Now("%Y-%m-%d %H:%M:%S %Z");
  context.preset = o.preset;
  context.compute = compute;
  context.cluster = absl::StrCat(o.num_prefill, " prefill + ", o.num_decode,
                                 " decode workers on one host, ", o.pool_gib,
                                 " GiB KV pool each, ", o.layout, " KV layout");
  context.command = o.command_line;
  context.device = device;
  if (!o.backends.empty()) context.baseline = BackendLabel(o.backends.front(), o.device);
  context.backends = absl::StrJoin(transports, "; ");
  context.choices = absl::StrFormat(
      "matrix %s: inputs %s, outputs %s, rates %s req/s (Poisson), prompts per run = "
      "clamp(rate x %g s, %d, %d), 2 warm-ups, tokens verified against the model: %s. %s",
      o.matrix, absl::StrJoin(sweep.input_lens, ","), absl::StrJoin(sweep.output_lens, ","),
      absl::StrJoin(sweep.rates, ","), o.seconds_per_rate, o.min_prompts, o.max_prompts,
      o.verify ? "yes" : "no",
      o.compute == "cuda"
          ? "KV bytes are real and live in GPU memory: prefill writes K/V and runs causal "
            "attention on the GPU, every decode step runs paged attention over every KV byte of "
            "every running request on the GPU (the checksum that picks the token is fused in); "
            "the per-layer dense GEMMs are not run"
          : "KV bytes are real: every decode step reads every KV byte of every running request "
            "on this host's CPU, so on a small CPU host the highest rates saturate the decode "
            "worker and the queueing that follows is part of the numbers");
  std::string headline;
  RETURN_IF_ERROR(WriteServingReportInputs(dir, context, runs));
  RETURN_IF_ERROR(WriteServingReport(dir, context, runs, &headline));
  int failed = 0;
  for (const ServingRun& r : runs) failed += !r.error.empty();
  std::printf("\nreport: %s/report.md\n%s\n", dir.c_str(), headline.c_str());
  if (failed > 0) {
    return absl::InternalError(absl::StrCat(failed, " of ", runs.size(),
                                            " runs failed; see ", dir, "/report.md"));
  }
  return absl::OkStatus();
}

}  // namespace pdserve::bench
