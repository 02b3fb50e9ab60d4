#include "bench/serving_backends.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "transfer/kv_transport.h"

namespace pdserve::bench {

bool UcxTakesDeviceMemory() {
  static const bool yes = [] {
    transfer::TransportOptions probe;
    probe.backend = "ucx";
    probe.pool_memory = MemoryKind::kCuda;
    return transfer::AllocatePoolMemory(probe, 1 << 20).ok();
  }();
  return yes;
}

bool IsColocated(const std::string& backend) { return backend == kColocatedBackend; }

std::string BackendLabel(const std::string& backend, const std::string& device) {
  if (device != "cuda" || IsColocated(backend)) return backend;
  if (backend == "local") return "cuda-ipc";
  if (backend == "local-zc") return "cuda-ipc-zc";
  if (backend == "ucx") return UcxTakesDeviceMemory() ? "ucx" : "ucx-staged";
  if (backend.rfind("ucx-", 0) == 0 && backend != "ucx-staged") {
    return absl::StrCat(UcxTakesDeviceMemory() ? "ucx-" : "ucx-staged-", backend.substr(4));
  }
  return backend;
}

std::string TransferBaselineLabel(const std::vector<std::string>& backends,
                                  const std::string& device) {
  for (const std::string& b : backends) {
    if (!IsColocated(b)) return BackendLabel(b, device);
  }
  return backends.empty() ? std::string() : BackendLabel(backends.front(), device);
}

absl::Status ConfigureBackend(const std::string& backend, const std::string& device,
                              cluster::ClusterOptions& c) {
  if (IsColocated(backend)) {
    // As many workers as the P/D cluster has devices, each on one device of its own. The
    // workers use their in-process transport whatever --transfer says; the router only checks
    // split workers against it.
    c.num_colocated = c.num_prefill + c.num_decode;
    c.transfer = "local";
    return absl::OkStatus();
  }
  if (backend == "local-zc" || backend == "cuda-ipc-zc") {
    // Zero-copy: the prefill kernels write the decode worker's reserved blocks in place
    // (prefill --zero-copy); the KV "transfer" is one notification. On GPUs over CUDA IPC.
    c.transfer = device == "cuda" ? "cuda-ipc" : "local";
    c.prefill_args.push_back("--zero-copy");
    return absl::OkStatus();
  }
  if (device == "cuda") {
    const std::string ucx = UcxTakesDeviceMemory() ? "ucx" : "ucx-staged";
    if (backend == "local" || backend == "cuda-ipc") {
      c.transfer = "cuda-ipc";
    } else if (backend == "ucx") {
      c.transfer = ucx;
    } else if (backend.rfind("ucx-", 0) == 0 && backend != "ucx-staged") {
      c.transfer = ucx;
      c.env.push_back({"UCX_TLS", backend.substr(4)});
    } else {
      c.transfer = backend;
    }
    return absl::OkStatus();
  }
  if (backend == "local" || backend == "ucx") {
    c.transfer = backend;
  } else if (backend.rfind("ucx-", 0) == 0) {
    // ucx-posix, ucx-tcp, ucx-cma: UCX pinned to that transport through its own UCX_TLS. Plain
    // `ucx` leaves the choice to UCX (shared memory between the workers of one host: they are
    // watched by pid, as UCX 1.13 has no peer-failure handling over it).
    c.transfer = "ucx";
    c.env.push_back({"UCX_TLS", backend.substr(4)});
  } else {
    c.transfer = backend;  // the cluster reports an unknown backend clearly
  }
  return absl::OkStatus();
}

std::string Transports(const cluster::Cluster& c) {
  absl::StatusOr<v1::ClusterStatus> status = c.GetStatus();
  if (!status.ok()) return "unknown";
  std::vector<std::string> seen;
  for (const v1::WorkerStatus& w : status->workers()) {
    const bool sends = w.role() == v1::WORKER_ROLE_PREFILL || w.role() == v1::WORKER_ROLE_COLOCATED;
    if (sends && !w.transports().empty() &&
        std::find(seen.begin(), seen.end(), w.transports()) == seen.end()) {
      seen.push_back(w.transports());
    }
  }
  return seen.empty() ? "unknown" : absl::StrJoin(seen, "; ");
}

std::string LeakedBlocks(const cluster::Cluster& c) {
  absl::StatusOr<v1::ClusterStatus> status = c.GetStatus();
  if (!status.ok()) return absl::StrCat("status unavailable: ", status.status().message());
  std::vector<std::string> leaks;
  for (const v1::WorkerStatus& w : status->workers()) {
    if (w.capacity().free_blocks() != w.capacity().total_blocks()) {
      leaks.push_back(absl::StrCat(w.worker_id(), " ", w.capacity().free_blocks(), "/",
                                   w.capacity().total_blocks(), " free (",
                                   w.capacity().quarantined_blocks(), " quarantined)"));
    }
  }
  return absl::StrJoin(leaks, ", ");
}

}  // namespace pdserve::bench
