#include "router/router_process.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "router/router_control.h"
#include "service/host_address.h"
#include "service/worker_process.h"

namespace pdserve::router {

absl::Status RunRouter(RouterProcessOptions options) {
  auto log = ComponentLogger("router");
  // First: an address that does not parse is a start-up error, whatever else is wrong.
  ASSIGN_OR_RETURN(options.host, service::ParseListenAddress("--listen", options.host));
  ASSIGN_OR_RETURN(options.advertise,
                   service::ResolveAdvertiseAddress(options.host, options.advertise));
  if (options.internal_host.empty()) options.internal_host = options.host;
  ASSIGN_OR_RETURN(options.internal_host,
                   service::ParseListenAddress("--internal-host", options.internal_host));
  ASSIGN_OR_RETURN(options.router.config, ResolveModelConfig(options.model));
  ASSIGN_OR_RETURN(options.router.auth, service::ClusterAuth::FromFlags(options.auth, "router"));
  options.router.scheduler.block_size = options.router.config.block_size;
  auto service = std::make_unique<RouterService>(options.router);
  auto control = std::make_unique<RouterControlService>(*service, options.router.auth);
  // Two servers, not two ports of one: a service registered on a server is reachable on all
  // of its ports, and the client port must not serve RouterControl.
  ASSIGN_OR_RETURN(service::RunningServer server,
                   service::StartServer(options.host, options.port, {service.get()}));
  ASSIGN_OR_RETURN(
      service::RunningServer internal,
      service::StartServer(options.internal_host, options.internal_port, {control.get()},
                           options.router.auth->ServerCredentials()));
  log->info("router for model {} (transfer {}), queue bound {}, batches up to {} tokens / {} "
            "requests; cluster-internal API on {} ({})",
            ModelSummary(options.router.config),
            options.router.transfer_backend.empty() ? "any" : options.router.transfer_backend,
            options.router.scheduler.max_waiting, options.router.scheduler.max_batched_tokens,
            options.router.scheduler.max_batch_size, internal.address(),
            options.router.auth->enabled() ? "authenticated by the cluster secret"
                                           : "NOT authenticated");
  RETURN_IF_ERROR(service::AnnounceListening("pdserve router (cluster-internal API)", internal,
                                             options.internal_port_file));
  log->info("router: workers register at {} (their --router), clients use {}",
            service::JoinHostPort(options.advertise, internal.port),
            service::JoinHostPort(options.advertise, server.port));
  std::unique_ptr<FrontEnd> http;
  if (options.http) {
    ASSIGN_OR_RETURN(http, options.http(*service));
    RETURN_IF_ERROR(service::AnnounceListening(
        "pdserve router (HTTP API)",
        service::RunningServer{.port = http->port(), .host = options.host},
        options.http_port_file));
  }
  // The client port's file last: a launcher that sees it finds every port bound.
  RETURN_IF_ERROR(service::AnnounceListening("pdserve router", server, options.port_file));
  const int sig = service::WaitForTerminationSignal();
  log->info("router: signal {} received, stopping", sig);
  const auto deadline = absl::ToChronoTime(absl::Now() + absl::Seconds(2));
  server.server->Shutdown(deadline);
  internal.server->Shutdown(deadline);
  http.reset();  // before the core it calls
  server.server.reset();
  internal.server.reset();
  control.reset();
  service.reset();
  return absl::OkStatus();
}

}  // namespace pdserve::router
