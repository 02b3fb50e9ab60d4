#include "service/worker_process.h"

#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "service/host_address.h"
#include "service/metrics_endpoint.h"
#include "common/status_macros.h"

namespace pdserve::service {

std::string TransportBackendOf(const std::string& transfer) {
  return transfer == "ucx-staged" ? "ucx" : transfer;
}

absl::StatusOr<WorkerCompute> ResolveWorkerCompute(const WorkerProcessOptions& options,
                                                   const ModelConfig& config, bool built_with_cuda,
                                                   CapabilitiesLookup capabilities) {
  WorkerCompute compute;
  if (options.compute == "roofline") {
    absl::StatusOr<GpuSpec> gpu = GpuSpecByName(options.gpu);
    if (!gpu.ok()) return gpu.status();
    compute.roofline.emplace(config, *gpu);
    compute.compute_attention = false;
  } else if (options.compute == "cuda") {
    if (!built_with_cuda) {
      return absl::FailedPreconditionError(
          "--compute cuda: this pdserve was built without CUDA (configure with -DPDSERVE_CUDA=ON "
          "on a host with nvcc)");
    }
    compute.cuda = true;
  } else if (options.compute != "real") {
    return absl::InvalidArgumentError(
        absl::StrCat("--compute must be real, roofline or cuda, not '", options.compute, "'"));
  }
  compute.transport_backend = TransportBackendOf(options.transfer);
  ASSIGN_OR_RETURN(const TransportCapabilities caps, capabilities(compute.transport_backend));
  // ucx-staged is ucx between host pools with the kernels on the GPU (blocks staged D2H / H2D
  // by the worker); a backend whose pools live only in device memory (cuda-ipc) is read by the
  // GPU kernels alone.
  const bool staged = options.transfer == "ucx-staged";
  if ((caps.device_pools_only || staged) && !compute.cuda) {
    return absl::InvalidArgumentError(
        absl::StrCat("--transfer ", options.transfer, " needs --compute cuda"));
  }
  // With the GPU kernels the pool goes to device memory wherever the backend can register it
  // there (a colocated worker's inproc pool is the kernels' own).
  if (compute.cuda && caps.device_pools && !staged) compute.pool_memory = MemoryKind::kCuda;
  return compute;
}

absl::Status ResolveWorkerAddresses(WorkerProcessOptions& options) {
  ASSIGN_OR_RETURN(options.host, ParseListenAddress("--listen", options.host));
  ASSIGN_OR_RETURN(options.advertise, ResolveAdvertiseAddress(options.host, options.advertise));
  ASSIGN_OR_RETURN(options.host_id, ResolveHostId(options.host_id));
  return absl::OkStatus();
}

absl::StatusOr<WorkerBasics> PrepareWorker(WorkerProcessOptions& options, const std::string& role,
                                           bool built_with_cuda,
                                           CapabilitiesLookup capabilities) {
  if (options.worker_id.empty()) options.worker_id = absl::StrCat(role, "-", getpid());
  // Before anything binds: a bad --listen / --advertise / --host-id is a start-up error.
  RETURN_IF_ERROR(ResolveWorkerAddresses(options));
  WorkerBasics b;
  ASSIGN_OR_RETURN(b.auth, ClusterAuth::FromFlags(options.auth, options.worker_id));
  ASSIGN_OR_RETURN(b.config, ResolveModelConfig(options.model));
  ASSIGN_OR_RETURN(b.layout, ParseKvLayout(options.layout));
  ASSIGN_OR_RETURN(b.num_blocks, PoolBlocks(b.config, options.num_blocks, options.pool_gib));
  ASSIGN_OR_RETURN(b.compute, ResolveWorkerCompute(options, b.config, built_with_cuda, capabilities));
  return b;
}

absl::StatusOr<uint32_t> PoolBlocks(const ModelConfig& config, uint32_t num_blocks,
                                    double pool_gib) {
  if (num_blocks > 0) return num_blocks;
  const double block_bytes = static_cast<double>(config.KvBytesPerBlock());
  if (pool_gib <= 0) {
    // Default: 1 GiB, but no more than 64 sequences of max_model_len (a 1 GiB pool of the tiny
    // preset would be 262144 blocks, slow to register for nothing), and at least one.
    const double gib_blocks = std::floor(1024.0 * 1024.0 * 1024.0 / block_bytes);
    const double per_sequence = static_cast<double>(config.BlocksForTokens(config.max_model_len));
    return static_cast<uint32_t>(
        std::max(per_sequence, std::min(gib_blocks, 64.0 * per_sequence)));
  }
  const double blocks = std::floor(pool_gib * 1024.0 * 1024.0 * 1024.0 / block_bytes);
  if (blocks < 1) {
    return absl::InvalidArgumentError(absl::StrCat("a KV pool of ", pool_gib,
                                                   " GiB holds no block of ",
                                                   config.KvBytesPerBlock(), " bytes"));
  }
  return static_cast<uint32_t>(std::min(blocks, 4.0e9));
}

std::string RunningServer::address() const { return JoinHostPort(host, port); }

absl::StatusOr<RunningServer> StartServer(const std::string& host, int port,
                                          const std::vector<grpc::Service*>& services,
                                          std::shared_ptr<grpc::ServerCredentials> credentials) {
  grpc::ServerBuilder builder;
  RunningServer out;
  out.host = host;
  builder.AddListeningPort(JoinHostPort(host, port),
                           credentials ? credentials : grpc::InsecureServerCredentials(),
                           &out.port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* service : services) builder.RegisterService(service);
  out.server = builder.BuildAndStart();
  if (out.server == nullptr || out.port == 0) {
    return absl::UnavailableError(
        port == 0 ? absl::StrCat("could not listen on ", host, " (no free port?)")
                  : absl::StrCat("port ", port, " on ", host,
                                 " is already in use (or cannot be bound); pick another or 0"));
  }
  return out;
}

absl::Status AnnounceListening(const std::string& what, const RunningServer& server,
                               const std::string& port_file) {
  std::printf("%s listening on %s\n", what.c_str(), server.address().c_str());
  std::fflush(stdout);
  if (port_file.empty()) return absl::OkStatus();
  // Written under a temporary name and renamed, so a reader never sees a partial number.
  const std::string tmp = port_file + ".tmp";
  {
    std::ofstream out(tmp);
    out << server.port << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), port_file.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", port_file));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> ServeWorkerMetrics(
    const WorkerProcessOptions& options, const std::string& what,
    const metrics::Registry& registry) {
  if (options.metrics_port < 0) return nullptr;
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> endpoint =
      MetricsEndpoint::Start(options.host, options.metrics_port, registry);
  if (!endpoint.ok()) return endpoint.status();
  absl::Status announced = AnnounceListening(
      absl::StrCat(what, " (GET /metrics)"),
      RunningServer{.port = (*endpoint)->port(), .host = options.host},
      options.metrics_port_file);
  if (!announced.ok()) return announced;
  return endpoint;
}

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace pdserve::service
