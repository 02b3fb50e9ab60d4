#include "bench/gpu_transfer_bench.h"

#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <csignal>
#include <map>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/synthetic_model.h"
#include "nlohmann/json.hpp"
#if defined(PDSERVE_HAS_CUDA)
#include "cluster/gpu_placement.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "transfer/kv_transport.h"
#endif

extern char** environ;

namespace pdserve::bench {

#if !defined(PDSERVE_HAS_CUDA)

absl::Status RunGpuTransferBench(const GpuTransferBenchOptions&) {
  return absl::UnavailableError("this pdserve was built without CUDA (configure with -DPDSERVE_CUDA=ON)");
}

#else

namespace {

using transfer::BlockCopy;

constexpr const char* kPatterns[] = {"contiguous", "scattered"};

uint32_t PoolBlocks(const ModelConfig& c, const GpuTransferBenchOptions& o) {
  const int most = *std::max_element(o.request_tokens.begin(), o.request_tokens.end());
  return static_cast<uint32_t>(2 * c.BlocksForTokens(most) + 2);
}

// Both pools in device memory, whatever the backend.
transfer::TransportOptions BackendOptions(const std::string& backend, const std::string& agent) {
  transfer::TransportOptions options{.backend = backend, .agent_name = agent};
  options.pool_memory = MemoryKind::kCuda;
  return options;
}

// Destination blocks of a request: one run, or every other block backwards (no two adjacent:
// the worst case for coalescing, one operation per fragment).
std::vector<BlockId> Destinations(uint32_t pool, int64_t n, bool scattered) {
  std::vector<BlockId> d(n);
  for (int64_t i = 0; i < n; ++i) d[i] = scattered ? pool - 1 - 2 * i : i;
  return d;
}

absl::Status RunReceiver(const GpuTransferBenchOptions& o, const ModelConfig& c, KvLayout layout) {
  const transfer::TransportOptions options = BackendOptions(o.receiver_backend, "bench-decode");
  ASSIGN_OR_RETURN(auto cache, transfer::CreatePoolCache(options, c, PoolBlocks(c, o), layout));
  ASSIGN_OR_RETURN(auto transport, transfer::MakeKvTransport(options));
  RETURN_IF_ERROR(transport->RegisterPool(*cache));
  ASSIGN_OR_RETURN(std::string descriptor, transport->ExportDescriptor());
  std::printf("%s\n", descriptor.c_str());
  std::fflush(stdout);
  const int batches = static_cast<int>(o.request_tokens.size()) * 2 * (o.iterations + 1);
  for (int b = 0; b < batches; ++b) {
    RETURN_IF_ERROR(transport->WaitForNotification(absl::StrCat("b", b), absl::Seconds(120)));
  }
  return absl::OkStatus();
}

// Starts this binary as the receiver and returns its pid and descriptor.
absl::StatusOr<std::pair<pid_t, std::string>> SpawnReceiver(const GpuTransferBenchOptions& o,
                                                            const std::string& backend,
                                                            const std::string& layout) {
  int out[2];
  if (pipe(out) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<std::string> args = {"/proc/self/exe", "bench", "gpu-transfer", "--receiver", layout,
                                   "--receiver-backend", backend, "--preset", o.preset,
                                   "--iterations", absl::StrCat(o.iterations),
                                   "--request-tokens", absl::StrJoin(o.request_tokens, ",")};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // Across GPUs the receiver's device 0 is the second GPU: CUDA_VISIBLE_DEVICES as the cluster
  // launcher would place a decode worker on GPU 1 (that GPU first, the sender's after it).
  std::vector<std::string> env_strings;
  std::vector<char*> env;
  if (o.across_gpus) {
    const char* parent = std::getenv("CUDA_VISIBLE_DEVICES");
    ASSIGN_OR_RETURN(std::string visible,
                     cluster::VisibleDevicesFor(1, {0, 1}, parent ? parent : ""));
    env_strings.push_back("CUDA_VISIBLE_DEVICES=" + visible);
  }
  for (char** e = environ; *e != nullptr; ++e) {
    if (!o.across_gpus || std::string_view(*e).rfind("CUDA_VISIBLE_DEVICES=", 0) != 0) {
      env.push_back(*e);
    }
  }
  for (std::string& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    return absl::InternalError("cannot start the receiving process");
  }
  std::string line;
  pollfd pfd{out[0], POLLIN, 0};
  char ch;
  while (line.empty() || line.back() != '\n') {
    if (poll(&pfd, 1, 60000) <= 0 || read(out[0], &ch, 1) != 1) {
      close(out[0]);
      int status = 0;
      waitpid(pid, &status, 0);
      return absl::UnavailableError(
          absl::StrCat("the receiving process (", backend, ") did not export its pool"));
    }
    line.push_back(ch);
  }
  close(out[0]);
  return std::make_pair(pid, line);
}

// Median milliseconds of the baseline copy of `bytes` (D2D on one GPU, cudaMemcpyPeer from the
// first GPU to the second across GPUs), measured once per size in this run.
absl::StatusOr<double> D2DMs(std::map<uint64_t, double>& cache, uint64_t bytes, int iterations,
                             bool across_gpus) {
  if (auto it = cache.find(bytes); it != cache.end()) return it->second;
  ASSIGN_OR_RETURN(double ms, across_gpus ? cuda::MeasurePeerCopyMs(bytes, iterations, 0, 1)
                                          : cuda::MeasureD2DCopyMs(bytes, iterations));
  cache[bytes] = ms;
  return ms;
}

// One backend over one layout: every request size, contiguous and scattered; rows to the table
// and to `rows`; the transports the backend reported into `transports`.
absl::Status MeasureBackendLayout(const GpuTransferBenchOptions& o, const ModelConfig& c,
                                  const std::string& backend, const std::string& layout_name,
                                  std::map<uint64_t, double>& d2d_cache, nlohmann::json& rows,
                                  std::string& transports) {
  ASSIGN_OR_RETURN(KvLayout layout, ParseKvLayout(layout_name));
  const uint32_t pool_blocks = PoolBlocks(c, o);
  // The sender's pool first: a backend that cannot run here fails before a child is started.
  const transfer::TransportOptions options = BackendOptions(backend, "bench-prefill");
  ASSIGN_OR_RETURN(auto cache, transfer::CreatePoolCache(options, c, pool_blocks, layout));
  ASSIGN_OR_RETURN(auto transport, transfer::MakeKvTransport(options));
  RETURN_IF_ERROR(transport->RegisterPool(*cache));
  ASSIGN_OR_RETURN(auto child, SpawnReceiver(o, backend, std::string(KvLayoutName(layout))));
  absl::Status status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(transfer::PeerId peer, transport->LoadPeer(child.second));
    int batch = 0;
    for (int tokens : o.request_tokens) {
      const int64_t n = c.BlocksForTokens(tokens);
      std::vector<BlockId> src(n);
      std::iota(src.begin(), src.end(), 0);
      for (bool scattered : {false, true}) {
        const std::vector<BlockId> dst = Destinations(pool_blocks, n, scattered);
        std::vector<BlockCopy> copies;
        for (int64_t i = 0; i < n; ++i) copies.push_back({src[i], dst[i]});
        std::vector<double> ms, submit_ms;
        uint64_t bytes = 0;
        uint32_t ops = 0;
        for (int it = 0; it <= o.iterations; ++it) {
          const std::string note = absl::StrCat("b", batch++);
          const int64_t called = MonotonicNanos();
          ASSIGN_OR_RETURN(transfer::TransferId id, transport->Submit(peer, copies, note));
          const int64_t returned = MonotonicNanos();
          RETURN_IF_ERROR(transport->Wait(id, absl::Seconds(60)));
          ASSIGN_OR_RETURN(transfer::TransferStats st, transport->Stats(id));
          bytes = st.bytes;
          ops = st.operations;
          if (it > 0) {
            ms.push_back((st.complete_ns - st.submit_ns) / 1e6);
            submit_ms.push_back((returned - called) / 1e6);
          }
        }
        std::sort(ms.begin(), ms.end());
        std::sort(submit_ms.begin(), submit_ms.end());
        const double t = ms[ms.size() / 2];
        // How long the caller's thread was held by Submit (planning, and enqueueing the copies).
        const double submit = submit_ms[submit_ms.size() / 2];
        ASSIGN_OR_RETURN(double d2d_ms, D2DMs(d2d_cache, bytes, o.iterations, o.across_gpus));
        const double gbps = bytes / (t * 1e-3) / 1e9, d2d = bytes / (d2d_ms * 1e-3) / 1e9;
        const char* pattern = kPatterns[scattered ? 1 : 0];
        std::printf("%-9s %-12s %-11s %-9s %9s %6u %9.3f %9.1f %9.1f %7.3fx %9.3f\n",
                    backend.c_str(), layout_name.c_str(), pattern,
                    absl::StrFormat("%d tok", tokens).c_str(),
                    absl::StrFormat("%.0f MiB", bytes / 1048576.0).c_str(), ops, t, gbps, d2d,
                    gbps / d2d, submit);
        std::fflush(stdout);
        rows.push_back({{"backend", backend}, {"layout", layout_name}, {"dst_blocks", pattern},
                        {"request_tokens", tokens}, {"bytes", bytes}, {"operations", ops},
                        {"ms_median", t}, {"submit_ms_median", submit}, {"gbps", gbps},
                        {"d2d_ms_median", d2d_ms},
                        {"d2d_gbps", d2d}, {"ratio_to_d2d", gbps / d2d}});
      }
    }
    transports = transport->counters().transports;
    return absl::OkStatus();
  }();
  if (!status.ok()) kill(child.first, SIGKILL);
  int wait_status = 0;
  waitpid(child.first, &wait_status, 0);
  if (status.ok() && (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0)) {
    return absl::InternalError(absl::StrCat("the receiving process (", backend, ") failed"));
  }
  return status;
}

}  // namespace

absl::Status RunGpuTransferBench(const GpuTransferBenchOptions& options) {
  if (!cuda::CudaAvailable()) return absl::UnavailableError("no CUDA device on this machine");
  GpuTransferBenchOptions o = options;
  // NVLink multicast off in this process and the receiver, as in every cluster process.
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  ASSIGN_OR_RETURN(ModelConfig c, PresetConfig(o.preset));
  if (!o.receiver_layout.empty()) {
    ASSIGN_OR_RETURN(KvLayout layout, ParseKvLayout(o.receiver_layout));
    return RunReceiver(o, c, layout);
  }
  if (o.across_gpus && cuda::DeviceCount() < 2) {
    return absl::FailedPreconditionError(
        "--across-gpus needs two GPUs visible (CUDA_VISIBLE_DEVICES)");
  }
  if (o.backends.empty()) {
    o.backends = {"cuda-ipc", "ucx"};
    const std::vector<std::string> built = transfer::KvTransportBackends();
    if (o.across_gpus && std::find(built.begin(), built.end(), "nccl") != built.end()) {
      o.backends.push_back("nccl");
    }
  }
  ASSIGN_OR_RETURN(std::string device, cuda::DeviceDescription());
  std::printf("pdserve bench transfer --device cuda  (%s between two processes %s, "
              "device-memory pools, preset %s)\n",
              absl::StrJoin(o.backends, ", ").c_str(),
              o.across_gpus ? "on two GPUs (sender GPU 0, receiver GPU 1)" : "on one GPU",
              c.name.c_str());
  std::printf("device    %s\n", device.c_str());
  nlohmann::json json;
  json["device"] = device;
  json["across_gpus"] = o.across_gpus;
  if (o.across_gpus) {
    ASSIGN_OR_RETURN(std::string second, cuda::DeviceDescription(1));
    std::printf("device 1  %s\n%s\n", second.c_str(), cuda::PeerAccessSummary(0, 1).c_str());
    json["device_1"] = second;
    json["peer_access"] = cuda::PeerAccessSummary(0, 1);
  }
  json["preset"] = c.name;
  json["kv_bytes_per_token"] = c.KvBytesPerBlock() / c.block_size;
  json["iterations"] = o.iterations;
  json["gbps_convention"] = "bytes moved once per second (1e9), for both the transfer and D2D";
  json["time"] = "Submit to completion seen by the sender (includes the notification), median";
  json["baseline"] =
      o.across_gpus
          ? "cudaMemcpyPeerAsync from GPU 0 to GPU 1 of the same bytes in the sending process, "
            "median, measured in this run (the D2D columns hold it)"
          : "cudaMemcpyAsync device to device of the same bytes in the sending process, "
            "median, measured in this run";
  json["rows"] = nlohmann::json::array();
  json["backends"] = nlohmann::json::object();
  for (const std::string& backend : o.backends) {
    absl::StatusOr<std::string> runtime = transfer::KvTransportRuntime(backend);
    if (runtime.ok() && !runtime->empty()) {
      std::printf("%-9s %s\n", backend.c_str(), runtime->c_str());
      json["backends"][backend]["runtime"] = *runtime;
    }
  }
  std::printf("\n%-9s %-12s %-11s %-9s %9s %6s %9s %9s %9s %8s %9s\n", "backend", "layout",
              "dst blocks", "request", "bytes", "ops", "time ms", "GB/s", "D2D GB/s", "ratio",
              "submit ms");
  std::map<uint64_t, double> d2d_cache;
  std::vector<std::string> failures;
  for (const std::string& backend : o.backends) {
    std::set<std::string> transports;
    for (const std::string& layout_name : o.layouts) {
      std::string used;
      absl::Status s =
          MeasureBackendLayout(o, c, backend, layout_name, d2d_cache, json["rows"], used);
      if (!s.ok()) {
        std::printf("%-9s %-12s FAILED: %s\n", backend.c_str(), layout_name.c_str(),
                    s.ToString().c_str());
        json["backends"][backend]["errors"][layout_name] = s.ToString();
        failures.push_back(absl::StrCat(backend, " ", layout_name, ": ", s.ToString()));
        continue;
      }
      transports.insert(used);
    }
    json["backends"][backend]["transports"] = absl::StrJoin(transports, " | ");
  }
  std::printf("\ntransports used:\n");
  for (const std::string& backend : o.backends) {
    std::printf("  %-9s %s\n", backend.c_str(),
                json["backends"][backend].value("transports", std::string()).c_str());
  }
  std::printf("\n(submit = the caller's time in Submit; time = Submit to completion seen by the "
              "sender, which includes the notification; medians of %d; ratio = GB/s / %s GB/s of "
              "the same bytes)\n", o.iterations,
              o.across_gpus ? "cudaMemcpyPeer (GPU 0 -> 1; the D2D column)" : "D2D");
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << json.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", o.json_path));
    std::printf("results written to %s\n", o.json_path.c_str());
  }
  if (!failures.empty()) return absl::FailedPreconditionError(absl::StrJoin(failures, "; "));
  return absl::OkStatus();
}

#endif

}  // namespace pdserve::bench
