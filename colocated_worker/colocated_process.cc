#include "colocated_worker/colocated_process.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/shared_device.h"
#include "common/status_macros.h"
#include "decode_worker/decode_process.h"
#include "decode_worker/decode_service.h"
#include "prefill_worker/prefill_process.h"
#include "prefill_worker/prefill_service.h"
#include "service/host_address.h"
#include "service/metrics_endpoint.h"
#include "service/router_link.h"
#include "service/worker_metrics.h"
#include "service/worker_registration.h"
#include "transfer/kv_transport.h"
#if PDSERVE_HAS_CUDA
#include "kvcache/cuda/kv_staging.h"
#endif

namespace pdserve::colocated {

absl::Status RunColocatedWorker(service::WorkerProcessOptions options) {
  auto log = ComponentLogger("colocated");
  // No KV moves between the engines: whatever --transfer said, the pool is shared.
  options.transfer = "inproc";
#if PDSERVE_HAS_CUDA
  constexpr bool kBuiltWithCuda = true;
#else
  constexpr bool kBuiltWithCuda = false;
#endif
  ASSIGN_OR_RETURN(service::WorkerBasics basics,
                   service::PrepareWorker(options, "colocated", kBuiltWithCuda,
                                          transfer::KvTransportCapabilities));
  const auto& [auth, config, layout, num_blocks, compute] = basics;

  transfer::TransportOptions transport_options;
  transport_options.backend = compute.transport_backend;
  transport_options.pool_memory = compute.pool_memory;
  transport_options.agent_name = options.worker_id;
  ASSIGN_OR_RETURN(transfer::RegisteredPool kv,
                   transfer::OpenRegisteredPool(transport_options, config, num_blocks, layout));
  auto& [cache, transport, descriptor] = kv;

  // The same engine options as the split workers', plus the shared pool and device.
  auto device = std::make_shared<SharedDevice>();
  prefill::PrefillEngineOptions prefill_options =
      prefill::PrefillEngineOptionsFor(options, compute);
  prefill_options.stream_chunk_tokens = 0;  // nothing to stream: the kernels write in place
  prefill_options.direct_write = true;
  prefill_options.device = device;
  decode::DecodeEngineOptions decode_options = decode::DecodeEngineOptionsFor(options, compute);
  decode_options.device = device;

#if PDSERVE_HAS_CUDA
  // Declared before the engines, so that it outlives them. The pool is in device memory
  // (inproc's device allocation): nothing is staged.
  std::unique_ptr<cuda::GpuKvPool> gpu;
  if (compute.cuda) {
    ASSIGN_OR_RETURN(gpu, cuda::GpuKvPool::Create(*cache));
    cuda::GpuKvPool* g = gpu.get();
    prefill_options.compute_chunk = [g](const KvCache& pool, std::span<const BlockId> blocks,
                                       std::span<const int32_t> tokens, int start_pos) {
      return g->PrefillInto(pool, blocks, tokens, start_pos);
    };
    prefill_options.chunk_tokens = std::max(options.chunk_tokens, config.max_model_len);
    decode_options.decode_step = [g](std::span<const DecodeSequence> batch) {
      return g->attention().Decode(batch, {}, /*write_last_kv=*/true);
    };
    ASSIGN_OR_RETURN(std::string gpu_name, cuda::DeviceDescription());
    log->info("{}: compute on {}", options.worker_id, gpu_name);
  }
#endif
  prefill::PrefillEngine prefill_engine(*cache, *transport, prefill_options);
  // Its own pool is its only destination.
  RETURN_IF_ERROR(prefill_engine.AddPeer(options.worker_id, descriptor, num_blocks));
  decode::DecodeEngine decode_engine(*cache, decode_options);

  metrics::Registry registry;
  ASSIGN_OR_RETURN(std::unique_ptr<service::WorkerMetrics> worker_metrics,
                   service::WorkerMetrics::Create(registry, {.worker_id = options.worker_id,
                                                             .role = "colocated",
                                                             .model_name = config.name,
                                                             .backend = transport->backend()}));
  const std::string address_hint = service::JoinHostPort(options.advertise, options.port);
  prefill::PrefillServiceOptions prefill_service_options;
  prefill_service_options.worker_id = options.worker_id;
  prefill_service_options.auth = auth;
  prefill_service_options.metrics = worker_metrics.get();
  prefill::PrefillService prefill_service(prefill_engine, *transport, prefill_service_options);
  decode::DecodeServiceOptions decode_service_options;
  decode_service_options.worker_id = options.worker_id;
  decode_service_options.auth = auth;
  decode_service_options.metrics = worker_metrics.get();
  decode_service_options.transfer_timeout = options.transfer_timeout;
  decode_service_options.fence_lease = options.fence_lease;
  decode_service_options.address = address_hint;
  decode::DecodeService decode_service(decode_engine, *transport, decode_service_options);
  // The pool is the decode side's: its capacity is the worker's.
  registry.AddCollector([&decode_service, m = worker_metrics.get()] {
    m->SetCapacity(decode_service.Capacity());
  });
  ASSIGN_OR_RETURN(std::unique_ptr<service::MetricsEndpoint> metrics_endpoint,
                   service::ServeWorkerMetrics(
                       options, absl::StrCat("pdserve colocated ", options.worker_id), registry));
  ASSIGN_OR_RETURN(service::RunningServer server,
                   service::StartServer(options.host, options.port,
                                        {&prefill_service, &decode_service},
                                        auth->ServerCredentials()));
  service::WorkerPool pool{
      .transport_backend = transport->backend(),
      .transport_descriptor = descriptor,
      .num_blocks = num_blocks,
      .block_bytes = static_cast<uint64_t>(cache->geometry().block_bytes()),
      .layout = std::string(KvLayoutName(layout)),
      .block_size = static_cast<uint32_t>(config.block_size)};
#if PDSERVE_HAS_CUDA
  pool.gpu = cuda::PoolGpuId(*cache);  // doctor: where prefill and decode sit
#endif
  service::RouterLinkOptions link_options = service::WorkerLinkOptions(
      options, config, v1::WORKER_ROLE_COLOCATED,
      service::JoinHostPort(options.advertise, server.port), pool);
  link_options.auth = auth;
  std::map<service::FastMethod, service::FastLaneServer::Method> fast_methods =
      prefill_service.FastMethods();
  fast_methods.merge(decode_service.FastMethods());
  std::unique_ptr<service::FastLaneServer> fast_lane = service::StartWorkerFastLane(
      std::move(fast_methods), auth->credential(), link_options.registration.mutable_fast_lane());
  log->info("{}: model {}, {} (prefill and decode on one pool and one device)",
            options.worker_id, ModelSummary(config), service::DescribeWorkerPool(options, pool));
  RETURN_IF_ERROR(service::AnnounceListening(
      absl::StrCat("pdserve colocated ", options.worker_id), server, options.port_file));
  ASSIGN_OR_RETURN(std::unique_ptr<service::RouterLink> link,
                   service::RouterLink::Start(link_options, [&decode_service] {
                     return decode_service.Capacity();
                   }));
  // As a decode worker's: orphaned allocations go after their lease, fenced blocks at once.
  std::atomic<bool> stop{false};
  std::thread reaper([&] {
    while (!stop.load()) {
      decode_service.Sweep(options.allocation_lease);
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  const int sig = service::WaitForTerminationSignal();
  log->info("{}: signal {} received, draining (at most {})", options.worker_id, sig,
            absl::FormatDuration(options.drain_grace));
  const absl::Status drained = link->Drain(
      [&] {
        return decode_service.Capacity().running_requests() == 0 &&
               prefill_service.Capacity().running_requests() == 0;
      },
      options.drain_grace);
  if (!drained.ok()) {
    log->warn("{}; exiting: the router fails what is left as UNAVAILABLE",
              std::string(drained.message()));
  } else {
    log->info("{}: drained, exiting", options.worker_id);
  }
  stop = true;
  reaper.join();
  link.reset();
  server.server->Shutdown(
      absl::ToChronoTime(absl::Now() + (drained.ok() ? absl::Seconds(2) : absl::ZeroDuration())));
  metrics_endpoint.reset();
  return absl::OkStatus();
}

}  // namespace pdserve::colocated
