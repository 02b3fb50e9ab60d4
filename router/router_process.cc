#include "router/router_process.h"

#include "absl/strings/str_cat.h"
#include "service/worker_process.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace pdserve::router {

absl::Status RunRouter(RouterProcessOptions options) {
  auto log = ComponentLogger("router");
  ASSIGN_OR_RETURN(options.router.config, ResolveModelConfig(options.model));
  options.router.scheduler.block_size = options.router.config.block_size;
  auto service = std::make_unique<RouterService>(options.router);
  ASSIGN_OR_RETURN(service::RunningServer server,
                   service::StartServer(options.host, options.port, {service.get()}));
  log->info("router for model {} (transfer {}), queue bound {}, batches up to {} tokens / {} "
            "requests",
            ModelSummary(options.router.config),
            options.router.transfer_backend.empty() ? "any" : options.router.transfer_backend,
            options.router.scheduler.max_waiting, options.router.scheduler.max_batched_tokens,
            options.router.scheduler.max_batch_size);
  RETURN_IF_ERROR(service::AnnounceListening("pdserve router", server, options.port_file));
  const int sig = service::WaitForTerminationSignal();
  log->info("router: signal {} received, stopping", sig);
  server.server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  server.server.reset();
  service.reset();
  return absl::OkStatus();
}

}  // namespace pdserve::router
