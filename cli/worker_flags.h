#pragma once

// Flags shared by `pdserve prefill`, `pdserve decode` and `pdserve colocated` (which takes both
// roles' engine flags).

#include <memory>

#include "CLI/CLI.hpp"
#include "cli/model_flags.h"
#include "common/status_macros.h"
#include "service/worker_process.h"

namespace pdserve::cli {

struct WorkerFlags {
  service::WorkerProcessOptions options;
  double transfer_timeout_s = 30;
  double drain_grace_s = 30;
  double allocation_lease_s = 300;  // decode side
  double fence_lease_s = 120;       // decode side
  std::shared_ptr<ModelFlags> model;

  // After parsing: the options with the model and the timeout filled in.
  absl::StatusOr<service::WorkerProcessOptions> Resolve() const {
    service::WorkerProcessOptions o = options;
    ASSIGN_OR_RETURN(o.model, model->Overrides());
    o.transfer_timeout = absl::Seconds(transfer_timeout_s);
    o.drain_grace = absl::Seconds(drain_grace_s);
    o.allocation_lease = absl::Seconds(allocation_lease_s);
    o.fence_lease = absl::Seconds(fence_lease_s);
    return o;
  }
};

// --cluster-secret-file / --insecure-no-auth of every cluster process (router and workers).
inline void AddClusterAuthFlags(CLI::App* cmd, service::ClusterAuthFlags& auth) {
  cmd->add_option("--cluster-secret-file", auth.secret_file,
                  "file with the cluster secret (mode 0600, >= 32 characters, e.g. `openssl rand "
                  "-hex 32`); the same file for the router and every worker")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--insecure-no-auth", auth.insecure_no_auth,
                "run the cluster-internal API without authentication (anyone who reaches it can "
                "act as a worker or the router; docs/security.md)");
  cmd->add_option("--tls-cert", auth.tls_cert,
                  "TLS for the cluster-internal API: this process's certificate (PEM)");
  cmd->add_option("--tls-key", auth.tls_key, "TLS: its private key (PEM, mode 0600)");
  cmd->add_option("--tls-ca", auth.tls_ca,
                  "TLS: the CA that signed every cluster member's certificate (PEM)");
}

inline std::shared_ptr<WorkerFlags> AddWorkerFlags(CLI::App* cmd) {
  auto f = std::make_shared<WorkerFlags>();
  service::WorkerProcessOptions& o = f->options;
  cmd->add_option("--worker-id", o.worker_id, "name in the cluster (default <role>-<pid>)");
  // --host is the flag's older name, kept so that existing command lines keep working.
  cmd->add_option("--listen,--host", o.host,
                  "IP address the gRPC and metrics listeners bind (0.0.0.0 only if you mean "
                  "every interface; then --advertise is needed)")
      ->capture_default_str();
  cmd->add_option("--advertise", o.advertise,
                  "address registered with the router, which it and the other workers dial; "
                  "UCX uses its interface (default: --listen)");
  cmd->add_option("--host-id", o.host_id,
                  "this machine's name in the cluster, for `pdserve status` and `--transfer auto` (workers with the same id move KV through shared memory; default: hostname)");
  cmd->add_option("--port", o.port, "gRPC port; 0 picks a free one and prints it")
      ->capture_default_str();
  cmd->add_option("--port-file", o.port_file, "write the bound port here once serving");
  cmd->add_option("--metrics-port", o.metrics_port,
                  "Prometheus GET /metrics port; 0 picks a free one and prints it, -1: none")
      ->capture_default_str();
  cmd->add_option("--metrics-port-file", o.metrics_port_file,
                  "write the bound metrics port here once serving");
  cmd->add_option("--router", o.router,
                  "host:port of the router's cluster-internal API (its --internal-port)")
      ->capture_default_str();
  AddClusterAuthFlags(cmd, o.auth);
  f->model = ModelFlags::Add(cmd, "model flags must match the router's");
  cmd->add_option("--num-blocks", o.num_blocks, "KV pool size in blocks");
  cmd->add_option("--pool-gib", o.pool_gib, "KV pool size in GiB (default 1 GiB, at most 64 sequences of max_model_len)");
  cmd->add_option("--layout", o.layout, "layer-major or block-major")->capture_default_str();
  cmd->add_option("--transfer", o.transfer, "KV transfer backend: local, ucx, auto (local to peers with the same --host-id, ucx to the others), cuda-ipc, ucx-staged or nccl (the last three with --compute cuda; nccl with prefill and decode on different GPUs: --prefill-gpus / --decode-gpus)")
      ->capture_default_str();
  cmd->add_option("--compute", o.compute, "real (CPU kernels), roofline (sleep the GPU's time) or cuda (GPU kernels, pool in device memory)")
      ->check(CLI::IsMember({"real", "roofline", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--gpu", o.gpu, "roofline: GPU whose time is modelled")->capture_default_str();
  cmd->add_option("--threads", o.threads, "kernel threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--transfer-timeout-s", f->transfer_timeout_s,
                  "longest wait for one KV transfer")
      ->capture_default_str();
  cmd->add_option("--drain-grace-s", f->drain_grace_s,
                  "on SIGTERM: longest wait for placed and running requests before exiting")
      ->capture_default_str();
  return f;
}

// The prefill engine's flags.
inline void AddPrefillEngineFlags(CLI::App* cmd, WorkerFlags& f) {
  cmd->add_option("--chunk-tokens", f.options.chunk_tokens, "longest prompt chunk per kernel call")
      ->capture_default_str();
  cmd->add_option("--claim-checksum-mib", f.options.claim_checksum_mib,
                  "roofline: send the checksum of a prompt's KV with it from this many MiB on, "
                  "for the decode worker to check in the background (< 0: 96; 0: never)")
      ->capture_default_str();
  cmd->add_option("--min-batch-us", f.options.min_batch_us,
                  "every prefill batch lasts at least this long (slows prefill down for tests)")
      ->capture_default_str();
  cmd->add_option("--stream-chunk-tokens", f.options.stream_chunk_tokens,
                  "roofline: send each prompt's KV in chunks of this many tokens as the modelled "
                  "prefill produces them, overlapping the transfer with the prefill (0: whole, "
                  "after the prefill; a colocated worker moves no KV and ignores it)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_flag("--zero-copy", f.options.zero_copy,
                "write each prompt's K/V straight into the decode worker's reserved blocks, "
                "through a window that reaches only those; the KV transfer is then one "
                "notification (--transfer local, CPU kernels or roofline)");
}

// The decode engine's flags (--fault is the decode worker's own).
inline void AddDecodeEngineFlags(CLI::App* cmd, WorkerFlags& f) {
  cmd->add_option("--min-step-us", f.options.min_step_us,
                  "every decode step lasts at least this long (slows decode down for tests)")
      ->capture_default_str();
  cmd->add_option("--inline-first-step-kib", f.options.inline_step_kib,
                  "an idle decode engine makes a request's first token on the thread that "
                  "received its KV notification, for prompts with at most this much KV "
                  "(0: always on the decode loop thread)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_flag("--poison-freed-kv", f.options.poison_freed_kv,
                "fill every freed KV block with a poison pattern, so that reading blocks a "
                "request no longer owns changes its tokens (tests, verification runs)");
  cmd->add_option("--allocation-lease-s", f.allocation_lease_s,
                  "free an allocation that no Decode claimed within this time")
      ->capture_default_str();
  cmd->add_option("--fence-lease-s", f.fence_lease_s,
                  "free KV blocks released before their KV landed after this long even if the "
                  "prefill worker neither finished nor confirmed it stopped (longer than its "
                  "batch plus its --transfer-timeout-s)")
      ->capture_default_str();
}

}  // namespace pdserve::cli
