#pragma once

// What `pdserve prefill`, `pdserve decode` and `pdserve router` share as long-running processes:
// their flags, the gRPC server start (port 0 picks a free port, which is printed and written to a
// port file so that a launcher can read it), and waiting for SIGINT / SIGTERM.

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/model_config.h"
#include "common/transport_capabilities.h"
#include "common/roofline.h"
#include "kvcache/kv_layout.h"
#include "kvcache/kv_memory.h"
#include "metrics/registry.h"
#include "service/cluster_auth.h"

namespace pdserve::service {

struct WorkerProcessOptions {
  std::string worker_id;            // default: "<role>-<pid>"
  std::string host = "127.0.0.1";   // --listen (alias --host): where the listeners bind
  // --advertise: the address registered with the router, which the router and the other
  // workers dial (and whose interface UCX uses); empty: `host`.
  std::string advertise;
  std::string host_id;              // --host-id: this machine's name in the cluster (hostname)
  int port = 0;                     // 0: pick a free one
  std::string port_file;            // written with the bound port once serving
  int metrics_port = 0;             // GET /metrics (service/metrics_endpoint.h); 0: a free one,
                                    // -1: none
  std::string metrics_port_file;    // written with the metrics port once serving
  std::string router = "127.0.0.1:50052";  // the router's internal API (--internal-port)
  ClusterAuthFlags auth;            // --cluster-secret-file / --insecure-no-auth
  ModelOverrides model;             // preset, block size, dtype: must resolve to the router's
  uint32_t num_blocks = 0;          // KV pool size in blocks, or
  double pool_gib = 0;              // in GiB (default: 1 GiB, at most 64 max-length sequences)
  std::string layout = "layer-major";
  std::string transfer = "local";
  std::string compute = "real";     // real | roofline
  std::string gpu = "h100";         // roofline: which GPU's time to take
  int threads = 1;                  // kernel threads (<= 0: all cores)
  int chunk_tokens = 512;           // prefill: longest chunk one kernel call processes
  int min_step_us = 0;              // decode: every step lasts at least this long
  int min_batch_us = 0;             // prefill: every batch lasts at least this long
  // prefill, roofline: send the checksum of a prompt's KV from this size on (MiB; < 0: the
  // default, kvcache's kLargeKvBytes; 0: never). Tests lower it to reach the path with tiny.
  double claim_checksum_mib = -1;
  // prefill, roofline: stream each prompt's KV in chunks of this many tokens during the modelled
  // prefill (0: after it, whole).
  int stream_chunk_tokens = 0;
  // prefill: write K/V straight into the decode worker's reserved blocks (--zero-copy; a
  // transport that maps the peer's pool, CPU kernels or roofline).
  bool zero_copy = false;
  bool poison_freed_kv = false;     // decode: fill freed blocks with a poison pattern
  // decode: an idle engine makes a request's first token on the thread that received its KV
  // notification when the prompt's KV is at most this many KiB (0: the loop thread always).
  int inline_step_kib = 1024;
  absl::Duration transfer_timeout = absl::Seconds(30);
  absl::Duration allocation_lease = absl::Minutes(5);
  // decode: quarantined KV blocks are freed after this long without a fence (longer than the
  // prefill side's batch plus transfer timeout; docs/cluster.md, "Fenced KV").
  absl::Duration fence_lease = absl::Seconds(120);
  // SIGTERM: the worker drains (no new requests, in-flight ones finish) for at most this long.
  absl::Duration drain_grace = absl::Seconds(30);
  // decode, fault injection for tests: "fail-decode" (every decode step fails at once) or
  // "stall-decode" (the engine blocks in its first step while RPCs and heartbeats go on).
  std::string fault;
};

// How a worker computes, from --compute / --gpu / --transfer, checked once for both roles.
struct WorkerCompute {
  std::optional<RooflineModel> roofline;  // set for --compute roofline
  bool compute_attention = true;          // false in roofline mode (KV and checksums stay real)
  bool cuda = false;                      // --compute cuda
  std::string transport_backend;          // the transfer/ backend (ucx-staged runs over ucx)
  // Where the transport's pool lives (TransportOptions::pool_memory): device memory for
  // --compute cuda with --transfer ucx (UCX puts device to device; needs a UCX with CUDA
  // transports) and cuda-ipc; host memory otherwise (ucx-staged stages blocks through it).
  MemoryKind pool_memory = MemoryKind::kHost;
};

// The transfer/ backend that --transfer names: itself, except ucx-staged (ucx between host
// pools, the worker staging device blocks through them).
std::string TransportBackendOf(const std::string& transfer);

// What a backend offers, by name: transfer::KvTransportCapabilities, which the worker passes in
// (this layer does not link transfer/).
using CapabilitiesLookup = absl::StatusOr<TransportCapabilities> (*)(const std::string& backend);

// InvalidArgument for an unknown mode or backend, or a GPU-only transfer without --compute cuda;
// FailedPrecondition for --compute cuda in a build without CUDA (`built_with_cuda` false).
absl::StatusOr<WorkerCompute> ResolveWorkerCompute(const WorkerProcessOptions& options,
                                                   const ModelConfig& config, bool built_with_cuda,
                                                   CapabilitiesLookup capabilities);

// Checks --listen and fills in the advertised address and the host id (InvalidArgument for an
// address that does not parse, or --listen 0.0.0.0 without --advertise).
absl::Status ResolveWorkerAddresses(WorkerProcessOptions& options);

// What every worker resolves from its flags before it builds anything.
struct WorkerBasics {
  std::shared_ptr<const ClusterAuth> auth;
  ModelConfig config;
  KvLayout layout = KvLayout::kLayerMajor;
  uint32_t num_blocks = 0;
  WorkerCompute compute;
};

// Names the worker "<role>-<pid>" when --worker-id is empty, then resolves addresses, cluster
// secret, model, layout, pool size and compute mode, in that order: a bad flag stops the worker
// with an error naming it before anything binds or allocates.
absl::StatusOr<WorkerBasics> PrepareWorker(WorkerProcessOptions& options, const std::string& role,
                                           bool built_with_cuda, CapabilitiesLookup capabilities);

// Blocks of the KV pool from --num-blocks / --pool-gib; InvalidArgument when it is < 1.
absl::StatusOr<uint32_t> PoolBlocks(const ModelConfig& config, uint32_t num_blocks,
                                    double pool_gib);

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::string address() const;
  std::string host;
};

// Builds and starts a server on host:port (0: a free port) with the given services. A port that
// is taken is an error naming it (SO_REUSEPORT is off, so two servers never share a port).
// `credentials`: null for plaintext (the client API), ClusterAuth::ServerCredentials() for the
// cluster-internal API (TLS when configured).
absl::StatusOr<RunningServer> StartServer(
    const std::string& host, int port, const std::vector<grpc::Service*>& services,
    std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);

// Prints "<what> listening on host:port" and writes the port file when one is named.
absl::Status AnnounceListening(const std::string& what, const RunningServer& server,
                               const std::string& port_file);

class MetricsEndpoint;
// Serves `registry` on options.metrics_port (null when it is -1), prints "<what> metrics on
// http://host:port/metrics" and writes options.metrics_port_file.
absl::StatusOr<std::unique_ptr<MetricsEndpoint>> ServeWorkerMetrics(
    const WorkerProcessOptions& options, const std::string& what,
    const metrics::Registry& registry);

// Blocks SIGINT and SIGTERM in the calling thread (call before any thread starts, so that every
// thread inherits the mask) and later waits for one of them.
void BlockTerminationSignals();
// Returns the signal number that arrived.
int WaitForTerminationSignal();

}  // namespace pdserve::service
