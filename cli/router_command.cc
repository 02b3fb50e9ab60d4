#include <memory>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "cli/worker_flags.h"
#include "service/worker_process.h"
#include "router/router_process.h"
#include "http/http_server.h"

namespace pdserve::cli {
namespace {

struct RouterFlags {
  router::RouterProcessOptions options;
  int heartbeat_ms = 250;
  double queue_timeout_s = 300;
  bool allocate_first = false;
  bool no_fast_lane = false;
  bool no_nudge = false;
  double prefill_timeout_s = 120;
  double transfer_timeout_s = 30;
  double token_timeout_s = 30;
  double breaker_quarantine_s = 1;
  double breaker_max_quarantine_s = 30;
  http::HttpOptions http;
};

void AddRouterCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "router", "Run the router: client API, scheduler, worker registry (cluster-internal API)");
  auto f = std::make_shared<RouterFlags>();
  router::RouterProcessOptions& o = f->options;
  router::SchedulerConfig& s = o.router.scheduler;
  // --host is the flag's older name, kept so that existing command lines keep working.
  cmd->add_option("--listen,--host", o.host,
                  "IP address the client, internal and HTTP APIs bind (0.0.0.0 only if you mean "
                  "every interface; then --advertise is needed)")
      ->capture_default_str();
  cmd->add_option("--advertise", o.advertise,
                  "address workers and clients use to reach this router, printed at start-up "
                  "(default: --listen)");
  cmd->add_option("--port", o.port, "client API port (Generate, GetStatus); 0 picks a free one")
      ->capture_default_str();
  cmd->add_option("--port-file", o.port_file, "write the bound port here once serving");
  cmd->add_option("--internal-host", o.internal_host,
                  "address of the cluster-internal API (default: --listen)");
  cmd->add_option("--internal-port", o.internal_port,
                  "port of the cluster-internal API (worker registration; workers' --router); "
                  "0 picks a free one")
      ->capture_default_str();
  cmd->add_option("--internal-port-file", o.internal_port_file,
                  "write the bound internal port here once serving");
  cmd->add_option("--http-port", f->http.port,
                  "OpenAI-compatible HTTP API port (0 picks a free one; -1: no HTTP API)")
      ->capture_default_str();
  cmd->add_option("--http-host", f->http.host, "address of the HTTP API (default: --listen)");
  cmd->add_option("--http-port-file", o.http_port_file,
                  "write the HTTP API's bound port here once serving");
  cmd->add_option("--http-threads", f->http.io_threads, "io threads of the HTTP API")
      ->capture_default_str();
  AddClusterAuthFlags(cmd, o.auth);
  auto model = ModelFlags::Add(cmd, "every worker must serve the same model");
  cmd->add_option("--transfer", o.router.transfer_backend,
                  "KV transfer backend every worker must use (default: any)");
  cmd->add_option("--max-waiting", s.max_waiting, "waiting-queue bound (RESOURCE_EXHAUSTED past it)")
      ->capture_default_str();
  cmd->add_option("--max-batched-tokens", s.max_batched_tokens, "prompt tokens per prefill batch")
      ->capture_default_str();
  cmd->add_option("--max-batch-size", s.max_batch_size, "requests per prefill batch")
      ->capture_default_str();
  cmd->add_option("--max-inflight-batches", s.max_inflight_batches,
                  "prefill batches in flight per prefill worker")
      ->capture_default_str();
  cmd->add_flag("--no-fast-lane", f->no_fast_lane,
               "reach every worker by gRPC, not same-host workers by their fast lane (a unix "
               "socket) for the calls on the first token's path (for comparisons)");
  cmd->add_flag("--no-nudge", f->no_nudge,
               "do not tell same-host prefill workers that a Prefill call is coming when a "
               "request reaches an idle router (their reader then wakes only for the call; "
               "for comparisons)");
  cmd->add_flag("--allocate-first", f->allocate_first,
               "ask the decode worker for a request's KV blocks before its prefill starts, not "
               "alongside it (the order before; for comparisons)");
  cmd->add_option("--heartbeat-ms", f->heartbeat_ms, "heartbeat interval asked of workers")
      ->capture_default_str();
  cmd->add_option("--missed-heartbeats", o.router.missed_heartbeats,
                  "a worker silent this many intervals is dropped")
      ->capture_default_str();
  cmd->add_option("--queue-timeout-s", f->queue_timeout_s, "longest wait in the queue")
      ->capture_default_str();
  cmd->add_option("--prefill-timeout-s", f->prefill_timeout_s,
                  "deadline of one prefill batch (kernels + KV transfer)")
      ->capture_default_str();
  cmd->add_option("--transfer-timeout-s", f->transfer_timeout_s,
                  "how long a decode worker waits for a request's KV")
      ->capture_default_str();
  cmd->add_option("--token-timeout-s", f->token_timeout_s,
                  "a decode stream without a token this long (plus the KV wait before the "
                  "first) fails and counts against its worker; 0: no watchdog")
      ->capture_default_str();
  cmd->add_option("--breaker-failures", o.router.breaker.failure_threshold,
                  "consecutive request failures that quarantine a worker (0: never)")
      ->capture_default_str();
  cmd->add_option("--breaker-quarantine-s", f->breaker_quarantine_s,
                  "first quarantine of a failing worker; doubles on each further trip")
      ->capture_default_str();
  cmd->add_option("--breaker-max-quarantine-s", f->breaker_max_quarantine_s,
                  "longest quarantine")
      ->capture_default_str();
  cmd->callback([f, model] {
    service::BlockTerminationSignals();
    absl::StatusOr<ModelOverrides> overrides = model->Overrides();
    if (!overrides.ok()) ExitWith(overrides.status());
    f->options.model = *overrides;
    f->options.router.heartbeat_interval = absl::Milliseconds(f->heartbeat_ms);
    f->options.router.queue_timeout = absl::Seconds(f->queue_timeout_s);
    f->options.router.allocate_alongside_prefill = !f->allocate_first;
    f->options.router.fast_lane = !f->no_fast_lane;
    f->options.router.nudge_prefill = !f->no_nudge;
    f->options.router.prefill_timeout = absl::Seconds(f->prefill_timeout_s);
    f->options.router.transfer_timeout = absl::Seconds(f->transfer_timeout_s);
    f->options.router.token_timeout = absl::Seconds(f->token_timeout_s);
    f->options.router.breaker.base_quarantine = absl::Seconds(f->breaker_quarantine_s);
    f->options.router.breaker.max_quarantine = absl::Seconds(f->breaker_max_quarantine_s);
    if (f->http.port >= 0) {
      http::HttpOptions http = f->http;
      if (http.host.empty()) http.host = f->options.host;
      f->options.http = [http](router::RequestCore& core)
          -> absl::StatusOr<std::unique_ptr<router::FrontEnd>> {
        absl::StatusOr<std::unique_ptr<http::HttpServer>> server = http::HttpServer::Start(core, http);
        if (!server.ok()) return server.status();
        return std::unique_ptr<router::FrontEnd>(std::move(*server));
      };
    }
    ExitWith(router::RunRouter(f->options));
  });
}

const bool registered = RegisterCommand("router", AddRouterCommand);

}  // namespace
}  // namespace pdserve::cli
