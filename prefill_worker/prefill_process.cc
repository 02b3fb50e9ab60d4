#include "prefill_worker/prefill_process.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "service/host_address.h"
#include "service/metrics_endpoint.h"
#include "service/router_link.h"
#include "service/worker_metrics.h"
#include "service/worker_registration.h"
#include "transfer/kv_transport.h"
#include "common/logging.h"
#include "common/status_macros.h"
#if PDSERVE_HAS_CUDA
#include "kvcache/cuda/kv_staging.h"
#endif
#include "prefill_worker/prefill_service.h"

namespace pdserve::prefill {

PrefillEngineOptions PrefillEngineOptionsFor(const service::WorkerProcessOptions& options,
                                             const service::WorkerCompute& compute) {
  PrefillEngineOptions o;
  o.attention.threads = options.threads;
  o.attention.compute_attention = compute.compute_attention;
  o.chunk_tokens = options.chunk_tokens;
  o.transfer_timeout = options.transfer_timeout;
  o.worker_id = options.worker_id;
  o.min_batch = absl::Microseconds(options.min_batch_us);
  o.stream_chunk_tokens = options.stream_chunk_tokens;
  o.zero_copy = options.zero_copy;
  o.roofline = compute.roofline;
  // A prompt's KV that one thread cannot read within a modelled decode step: the decode worker
  // checks this worker's claim in the background instead (docs/model.md).
  if (compute.roofline.has_value()) {
    o.claim_checksum_bytes =
        options.claim_checksum_mib < 0
            ? static_cast<uint64_t>(kLargeKvBytes)
            : static_cast<uint64_t>(std::ceil(options.claim_checksum_mib * (1 << 20)));
  }
  return o;
}

absl::Status RunPrefillWorker(service::WorkerProcessOptions options) {
  auto log = ComponentLogger("prefill");
#if PDSERVE_HAS_CUDA
  constexpr bool kBuiltWithCuda = true;
#else
  constexpr bool kBuiltWithCuda = false;
#endif
  ASSIGN_OR_RETURN(service::WorkerBasics basics,
                   service::PrepareWorker(options, "prefill", kBuiltWithCuda,
                                          transfer::KvTransportCapabilities));
  const auto& [auth, config, layout, num_blocks, compute] = basics;
  PrefillEngineOptions engine_options = PrefillEngineOptionsFor(options, compute);

  transfer::TransportOptions transport_options;
  transport_options.backend = compute.transport_backend;
  transport_options.pool_memory = compute.pool_memory;
  transport_options.agent_name = options.worker_id;
  // KV notification endpoints accept only senders that present the cluster secret.
  transport_options.peer_credential = auth->credential();
  // UCX listens on the interface of the address peers dial, not of the bind address (which
  // may be 0.0.0.0).
  transport_options.listen_host = options.advertise;
  transport_options.host_id = options.host_id;  // auto: local to peers on the same host
  // nccl: how long a batch may wait for its peer before the communicator is aborted.
  transport_options.batch_timeout = options.transfer_timeout;
  ASSIGN_OR_RETURN(transfer::RegisteredPool kv,
                   transfer::OpenRegisteredPool(transport_options, config, num_blocks, layout));
  auto& [cache, transport, descriptor] = kv;
  // The kernels must reach the decode worker's pool where it lives: CPU kernels a host pool
  // (local), GPU kernels a device pool (cuda-ipc).
  const bool gpu_kernels = options.compute == "cuda";
  if (options.zero_copy && (!transport->can_open_windows() ||
                            gpu_kernels != (compute.pool_memory == MemoryKind::kCuda))) {
    // Said at start-up, not as a failure of every request.
    return absl::InvalidArgumentError(absl::StrCat(
        "--zero-copy needs a transport that maps the decode worker's pool where the kernels "
        "run (--transfer local with CPU kernels or roofline, cuda-ipc with --compute cuda); "
        "this worker has --transfer ", transport->backend(), " and --compute ", options.compute));
  }
  if (options.zero_copy) {
    log->info("{}: zero-copy: the kernels write the decode workers' reserved blocks in place",
              options.worker_id);
  }

#if PDSERVE_HAS_CUDA
  // Declared before the engine, so that it outlives it.
  std::unique_ptr<cuda::GpuKvPool> gpu;
  if (options.compute == "cuda") {
    ASSIGN_OR_RETURN(gpu, cuda::GpuKvPool::Create(*cache));
    cuda::GpuKvPool* g = gpu.get();
    engine_options.compute_chunk = [g](const KvCache& pool, std::span<const BlockId> blocks,
                                       std::span<const int32_t> tokens, int start_pos) {
      return g->PrefillInto(pool, blocks, tokens, start_pos);
    };
    if (g->staged()) {
      engine_options.after_compute = [g](std::span<const BlockId> blocks) {
        return g->StageOut(blocks);
      };
    }
    // The GPU kernel takes a whole prompt in one call (chunks exist for the CPU's caches).
    engine_options.chunk_tokens = std::max(options.chunk_tokens, config.max_model_len);
    ASSIGN_OR_RETURN(std::string device, cuda::DeviceDescription());
    log->info("{}: compute on {}{}", options.worker_id, device,
              g->staged() ? " (KV staged through the pinned host pool)" : "");
  }
#endif
  PrefillEngine engine(*cache, *transport, engine_options);
  // Before the service, which records into it; the endpoint that reads it comes after.
  metrics::Registry registry;
  ASSIGN_OR_RETURN(std::unique_ptr<service::WorkerMetrics> worker_metrics,
                   service::WorkerMetrics::Create(registry, {.worker_id = options.worker_id,
                                                             .role = "prefill",
                                                             .model_name = config.name,
                                                             .backend = transport->backend()}));
  PrefillServiceOptions service_options;
  service_options.worker_id = options.worker_id;
  service_options.auth = auth;
  service_options.metrics = worker_metrics.get();
  if (options.transfer == "ucx-staged") service_options.reported_backend = options.transfer;
  PrefillService service(engine, *transport, service_options);
  registry.AddCollector(
      [&service, m = worker_metrics.get()] { m->SetCapacity(service.Capacity()); });
  ASSIGN_OR_RETURN(std::unique_ptr<service::MetricsEndpoint> metrics_endpoint,
                   service::ServeWorkerMetrics(
                       options, absl::StrCat("pdserve prefill ", options.worker_id), registry));
  ASSIGN_OR_RETURN(service::RunningServer server,
                   service::StartServer(options.host, options.port, {&service},
                                        auth->ServerCredentials()));

  service::WorkerPool pool{.transport_backend = transport->backend(),
                                  .transport_descriptor = descriptor,
                                  .num_blocks = num_blocks,
                                  .block_bytes = static_cast<uint64_t>(cache->geometry().block_bytes()),
                                  .layout = std::string(KvLayoutName(layout)),
                                  .block_size = static_cast<uint32_t>(config.block_size)};
#if PDSERVE_HAS_CUDA
  pool.gpu = cuda::PoolGpuId(*cache);  // doctor: where prefill and decode sit
#endif
  service::RouterLinkOptions link_options =
      service::WorkerLinkOptions(options, config, v1::WORKER_ROLE_PREFILL,
                                 service::JoinHostPort(options.advertise, server.port), pool);
  link_options.auth = auth;
  std::unique_ptr<service::FastLaneServer> fast_lane = service::StartWorkerFastLane(
      service.FastMethods(), auth->credential(), link_options.registration.mutable_fast_lane());
  log->info("{}: model {}, {}", options.worker_id, ModelSummary(config),
            service::DescribeWorkerPool(options, pool));
  RETURN_IF_ERROR(service::AnnounceListening(
      absl::StrCat("pdserve prefill ", options.worker_id), server, options.port_file));
  ASSIGN_OR_RETURN(
      std::unique_ptr<service::RouterLink> link,
      service::RouterLink::Start(link_options, [&service] { return service.Capacity(); }));
  const int sig = service::WaitForTerminationSignal();
  log->info("{}: signal {} received, draining (at most {})", options.worker_id, sig,
            absl::FormatDuration(options.drain_grace));
  const absl::Status drained = link->Drain(
      [&service, &engine] {
        engine.ReapEndedTransfers();  // no Run may come to free the blocks of stranded transfers
        return service::CapacityIdle(service.Capacity());
      },
      options.drain_grace);
  if (!drained.ok()) {
    log->warn("{}; exiting: the router fails what is left as UNAVAILABLE",
              std::string(drained.message()));
  } else {
    log->info("{}: drained, exiting", options.worker_id);
  }
  link.reset();
  // After a drain that ran out its grace, the calls still running are stuck ones the router
  // gives up on anyway: cancel them at once instead of adding 2 s to the worker's restart.
  server.server->Shutdown(
      absl::ToChronoTime(absl::Now() + (drained.ok() ? absl::Seconds(2) : absl::ZeroDuration())));
  metrics_endpoint.reset();
  return absl::OkStatus();
}

}  // namespace pdserve::prefill
