#include "prefill_worker/prefill_process.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "cluster/router_link.h"
#include "common/logging.h"
#include "common/roofline.h"
#include "common/status_macros.h"
#include "prefill_worker/prefill_service.h"

namespace pdserve::prefill {

absl::Status RunPrefillWorker(cluster::WorkerProcessOptions options) {
  auto log = ComponentLogger("prefill");
  if (options.worker_id.empty()) options.worker_id = absl::StrCat("prefill-", getpid());
  ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(options.preset));
  ASSIGN_OR_RETURN(KvLayout layout, ParseKvLayout(options.layout));
  ASSIGN_OR_RETURN(uint32_t num_blocks,
                   cluster::PoolBlocks(config, options.num_blocks, options.pool_gib));

  PrefillEngineOptions engine_options;
  engine_options.attention.threads = options.threads;
  engine_options.chunk_tokens = options.chunk_tokens;
  engine_options.transfer_timeout = options.transfer_timeout;
  engine_options.min_batch = absl::Microseconds(options.min_batch_us);
  if (options.compute == "roofline") {
    ASSIGN_OR_RETURN(GpuSpec gpu, GpuSpecByName(options.gpu));
    engine_options.roofline.emplace(config, gpu);
    engine_options.attention.compute_attention = false;
  } else if (options.compute != "real") {
    return absl::InvalidArgumentError(
        absl::StrCat("--compute must be real or roofline, not '", options.compute, "'"));
  }

  transfer::TransportOptions transport_options;
  transport_options.backend = options.transfer;
  transport_options.agent_name = options.worker_id;
  ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                   transfer::CreatePoolCache(transport_options, config, num_blocks, layout));
  ASSIGN_OR_RETURN(std::unique_ptr<transfer::KvTransport> transport,
                   transfer::MakeKvTransport(transport_options));
  RETURN_IF_ERROR(transport->RegisterPool(*cache));
  ASSIGN_OR_RETURN(std::string descriptor, transport->ExportDescriptor());

  PrefillEngine engine(*cache, *transport, engine_options);
  PrefillServiceOptions service_options;
  service_options.worker_id = options.worker_id;
  PrefillService service(engine, *transport, service_options);
  ASSIGN_OR_RETURN(cluster::RunningServer server,
                   cluster::StartServer(options.host, options.port, {&service}));

  cluster::RouterLinkOptions link_options;
  link_options.router_address = options.router;
  v1::RegisterWorkerRequest& reg = link_options.registration;
  reg.set_worker_id(options.worker_id);
  reg.set_role(v1::WORKER_ROLE_PREFILL);
  reg.set_address(server.address());
  reg.set_preset(options.preset);
  reg.set_pid(getpid());
  v1::KvPoolDescriptor* pool = reg.mutable_kv_pool();
  pool->set_transfer_backend(transport->backend());
  pool->set_transport_descriptor(descriptor);
  pool->set_num_blocks(num_blocks);
  pool->set_block_bytes(static_cast<uint64_t>(cache->geometry().block_bytes()));
  pool->set_layout(std::string(KvLayoutName(layout)));
  pool->set_block_size(static_cast<uint32_t>(config.block_size));
  log->info("{}: {} blocks of {} bytes ({} MiB, {}), transfer {}, compute {}", options.worker_id,
            num_blocks, cache->geometry().block_bytes(), cache->geometry().region_bytes() >> 20,
            KvLayoutName(layout), transport->backend(), options.compute);
  RETURN_IF_ERROR(cluster::AnnounceListening(
      absl::StrCat("pdserve prefill ", options.worker_id), server, options.port_file));
  ASSIGN_OR_RETURN(std::unique_ptr<cluster::RouterLink> link,
                   cluster::RouterLink::Start(link_options, [&service] {
                     return service.Capacity();
                   }));
  const int sig = cluster::WaitForTerminationSignal();
  log->info("{}: signal {} received, stopping", options.worker_id, sig);
  link.reset();
  server.server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  return absl::OkStatus();
}

}  // namespace pdserve::prefill
