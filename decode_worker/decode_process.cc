#include "decode_worker/decode_process.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
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
#include "decode_worker/decode_service.h"

namespace pdserve::decode {
namespace {

// --fault: a decode engine that fails every request at once (it would look the emptiest worker
// to a router without a health policy), or one stuck in a step while the process still answers
// RPCs and heartbeats (only a progress watchdog notices).
absl::Status InjectFault(const service::WorkerProcessOptions& options, absl::Notification& unstick,
                         DecodeEngineOptions& engine_options) {
  if (options.fault.empty()) return absl::OkStatus();
  const std::string what = absl::StrCat(options.worker_id, ": injected fault (--fault ",
                                        options.fault, ")");
  if (options.fault == "fail-decode") {
    engine_options.decode_step = [what](std::span<const DecodeSequence>)
        -> absl::StatusOr<std::vector<DecodeResult>> { return absl::InternalError(what); };
  } else if (options.fault == "stall-decode") {
    engine_options.decode_step = [what, &unstick](std::span<const DecodeSequence>)
        -> absl::StatusOr<std::vector<DecodeResult>> {
      unstick.WaitForNotification();
      return absl::UnavailableError(what);
    };
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown --fault '", options.fault, "'"));
  }
  ComponentLogger("decode")->warn("{}", what);
  return absl::OkStatus();
}

}  // namespace

DecodeEngineOptions DecodeEngineOptionsFor(const service::WorkerProcessOptions& options,
                                           const service::WorkerCompute& compute) {
  DecodeEngineOptions o;
  o.attention.threads = options.threads;
  o.attention.compute_attention = compute.compute_attention;
  o.min_step = absl::Microseconds(options.min_step_us);
  o.roofline = compute.roofline;
  // Without real attention (roofline), a step need not read every KV byte: the checksum is
  // carried forward and the KV read in full at join and at finish (decode_engine.h).
  o.carry_checksum = !compute.compute_attention;
  o.poison_freed_blocks = options.poison_freed_kv;
  // A first step that reads up to 1 MiB of prompt KV (the default; tiny: 4096 tokens, small:
  // 256) runs on the receive path when the engine is idle: ~0.1-0.2 ms of that thread, against
  // a wake-up of the loop thread on the first token's path (issue 15).
  o.inline_step_kv_bytes = int64_t{options.inline_step_kib} * 1024;
  return o;
}

absl::Status RunDecodeWorker(service::WorkerProcessOptions options) {
  auto log = ComponentLogger("decode");
#if PDSERVE_HAS_CUDA
  constexpr bool kBuiltWithCuda = true;
#else
  constexpr bool kBuiltWithCuda = false;
#endif
  ASSIGN_OR_RETURN(service::WorkerBasics basics,
                   service::PrepareWorker(options, "decode", kBuiltWithCuda,
                                          transfer::KvTransportCapabilities));
  const auto& [auth, config, layout, num_blocks, compute] = basics;
  DecodeEngineOptions engine_options = DecodeEngineOptionsFor(options, compute);

  // The backend decides where the pool must live (shared memory for `local`, so that prefill
  // workers can map it).
  const KvGeometry geometry(config, num_blocks, layout);
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

#if PDSERVE_HAS_CUDA
  // Declared before the engine, so that it outlives it.
  std::unique_ptr<cuda::GpuKvPool> gpu;
  if (options.compute == "cuda") {
    ASSIGN_OR_RETURN(gpu, cuda::GpuKvPool::Create(*cache));
    cuda::GpuKvPool* g = gpu.get();
    engine_options.decode_step = [g](std::span<const DecodeSequence> batch) {
      return g->attention().Decode(batch, {}, /*write_last_kv=*/true);
    };
    if (g->staged()) {
      // The notification (bytes landed in the host pool) came before Start; copy them up.
      engine_options.on_join = [g](std::span<const BlockId> blocks) {
        return g->StageIn(blocks);
      };
    }
    ASSIGN_OR_RETURN(std::string device, cuda::DeviceDescription());
    log->info("{}: compute on {}{}", options.worker_id, device,
              g->staged() ? " (KV staged through the pinned host pool)" : "");
  }
#endif
  // Declared before the engine, so that a stalled step can be released before it is destroyed.
  absl::Notification unstick;
  RETURN_IF_ERROR(InjectFault(options, unstick, engine_options));
  DecodeEngine engine(*cache, engine_options);
  // Before the service, which records into it; the endpoint that reads it comes after.
  metrics::Registry registry;
  ASSIGN_OR_RETURN(std::unique_ptr<service::WorkerMetrics> worker_metrics,
                   service::WorkerMetrics::Create(registry, {.worker_id = options.worker_id,
                                                             .role = "decode",
                                                             .model_name = config.name,
                                                             .backend = transport->backend()}));
  DecodeServiceOptions service_options;
  service_options.metrics = worker_metrics.get();
  service_options.worker_id = options.worker_id;
  service_options.auth = auth;
  service_options.transfer_timeout = options.transfer_timeout;
  service_options.fence_lease = options.fence_lease;
  // The host tells whether a prefill worker's pid names a process of this machine (the port
  // may still be 0 here: only the host is read).
  service_options.address = service::JoinHostPort(options.advertise, options.port);
  DecodeService service(engine, *transport, service_options);
  registry.AddCollector(
      [&service, m = worker_metrics.get()] { m->SetCapacity(service.Capacity()); });
  ASSIGN_OR_RETURN(std::unique_ptr<service::MetricsEndpoint> metrics_endpoint,
                   service::ServeWorkerMetrics(
                       options, absl::StrCat("pdserve decode ", options.worker_id), registry));
  ASSIGN_OR_RETURN(service::RunningServer server,
                   service::StartServer(options.host, options.port, {&service},
                                        auth->ServerCredentials()));

  service::WorkerPool pool{.transport_backend = transport->backend(),
                                  .transport_descriptor = descriptor,
                                  .num_blocks = num_blocks,
                                  .block_bytes = static_cast<uint64_t>(geometry.block_bytes()),
                                  .layout = std::string(KvLayoutName(layout)),
                                  .block_size = static_cast<uint32_t>(config.block_size)};
#if PDSERVE_HAS_CUDA
  pool.gpu = cuda::PoolGpuId(*cache);  // doctor: where prefill and decode sit
#endif
  service::RouterLinkOptions link_options =
      service::WorkerLinkOptions(options, config, v1::WORKER_ROLE_DECODE,
                                 service::JoinHostPort(options.advertise, server.port), pool);
  link_options.auth = auth;
  std::unique_ptr<service::FastLaneServer> fast_lane = service::StartWorkerFastLane(
      service.FastMethods(), auth->credential(), link_options.registration.mutable_fast_lane());
  log->info("{}: model {}, {}", options.worker_id, ModelSummary(config),
            service::DescribeWorkerPool(options, pool));
  RETURN_IF_ERROR(service::AnnounceListening(
      absl::StrCat("pdserve decode ", options.worker_id), server, options.port_file));
  ASSIGN_OR_RETURN(std::unique_ptr<service::RouterLink> link,
                   service::RouterLink::Start(link_options, [&service] {
                     return service.Capacity();
                   }));

  // Allocations that never started decoding belong to a router that is gone: release them.
  // Quarantined blocks are freed as soon as their writer is fenced: check often, it is cheap.
  std::atomic<bool> stop{false};
  std::thread reaper([&] {
    while (!stop.load()) {
      service.Sweep(options.allocation_lease);
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  const int sig = service::WaitForTerminationSignal();
  log->info("{}: signal {} received, draining (at most {})", options.worker_id, sig,
            absl::FormatDuration(options.drain_grace));
  const absl::Status drained =
      // Nothing decoding: reservations left once the router places nothing here are
      // orphans (a router that dropped this worker failed their requests and never says
      // so); waiting for their allocation lease ran every such drain out to its grace.
      link->Drain([&service] { return service.Capacity().running_requests() == 0; },
                  options.drain_grace);
  if (!drained.ok()) {
    log->warn("{}; exiting: the router fails what is left as UNAVAILABLE",
              std::string(drained.message()));
  } else {
    log->info("{}: drained, exiting", options.worker_id);
  }
  unstick.Notify();
  stop = true;
  reaper.join();
  link.reset();
  // After a drain that ran out its grace, the calls still running are stuck ones the router
  // gives up on anyway: cancel them at once instead of adding 2 s to the worker's restart.
  server.server->Shutdown(
      absl::ToChronoTime(absl::Now() + (drained.ok() ? absl::Seconds(2) : absl::ZeroDuration())));
  metrics_endpoint.reset();
  return absl::OkStatus();
}

}  // namespace pdserve::decode
