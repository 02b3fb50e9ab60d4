#include "doctor/live_checks.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "transfer/kv_transport.h"

namespace pdserve::doctor {
namespace {

Finding SmallOps(const LiveWorker& w) {
  if (w.bytes == 0) return Make(kSmallOps, "all", "no KV sent yet", Verdict::kNotApplicable);
  if (w.operations == 0) {
    return Make(kSmallOps, "all", absl::StrCat(Bytes(w.bytes), " sent, 0 copy ops (zero-copy)"),
                Verdict::kOk);
  }
  const double per_request = w.requests > 0 ? static_cast<double>(w.operations) / w.requests : 0;
  return SmallOpsFinding("all", per_request, static_cast<double>(w.bytes) / w.operations,
                         w.layout, w.block_size);
}

Finding Batching(const LiveWorker& w) {
  if (w.batches == 0) return Make(kBatching, "all", "no batch yet", Verdict::kNotApplicable);
  const double per_batch = static_cast<double>(w.operations) / w.batches;
  const double per_request = w.requests > 0 ? static_cast<double>(w.batches) / w.requests : 0;
  std::string figure =
      absl::StrFormat("%.1f ops/batch, %.1f batches/request", per_batch, per_request);
  if (w.failed_batches > 0) absl::StrAppend(&figure, ", ", w.failed_batches, " batches failed");
  // One op per batch with many batches per request: the KV is posted piece by piece.
  if (w.operations > 0 && per_batch < 2 && per_request > 4) {
    return Make(kBatching, "all", figure, Verdict::kWarn,
                "larger streamed chunks (prefill --stream-chunk-tokens) or none");
  }
  return Make(kBatching, "all", figure, Verdict::kOk);
}

Finding Registrations(const LiveWorker& w) {
  const std::string figure = absl::StrCat(w.registrations, " registration(s) for ", w.batches,
                                          " batches");
  // A worker registers its one pool once at start (per engine: `auto` has two); the backend
  // table says how many (an unknown name: one).
  const absl::StatusOr<TransportCapabilities> caps = transfer::KvTransportCapabilities(w.backend);
  const uint64_t expected = caps.ok() ? static_cast<uint64_t>(caps->pool_registrations) : 1;
  if (w.registrations > expected) {
    return Make(kRegistration, "all", figure, Verdict::kWarn,
                "register the KV pool once at start; UCX: keep its registration cache "
                "(UCX_RCACHE_ENABLE=y)");
  }
  return Make(kRegistration, "all", figure, Verdict::kOk);
}

Finding Transports(const LiveWorker& w) {
  if (w.transports.empty()) return Make(kTransports, "all", "not reported", Verdict::kNotApplicable);
  if (w.same_host_network_peers > 0 || absl::StrContains(w.transports, "(same host over ")) {
    return Make(kTransports, "all",
                absl::StrCat(w.same_host_network_peers,
                             " peer(s) on this host reached over a network transport: ",
                             w.transports),
                Verdict::kWarn,
                "UCX_TLS unset or including posix,cma (cuda_ipc for device pools), or "
                "--transfer local / auto between workers of one host");
  }
  if (absl::StrContains(w.transports, "tcp although this host has RDMA")) {
    return Make(kTransports, "all", w.transports, Verdict::kWarn,
                "check UCX_TLS and UCX_NET_DEVICES on both hosts, and the peer's RDMA ports");
  }
  return Make(kTransports, "all", w.transports, Verdict::kOk);
}

Finding Staging(const LiveWorker& w) {
  if (w.backend != "ucx-staged") return Make(kStaging, "all", "no staging", Verdict::kOk);
  return Make(kStaging, "all",
              absl::StrCat(Bytes(w.bytes), " sent through host memory (x2 copies)"),
              Verdict::kWarn,
              "CUDA-aware UCX (scripts/fetch-ucx-cuda.sh) so ucx moves device memory; or "
              "--transfer cuda-ipc on one host");
}

}  // namespace

Finding PlacementFinding(const LiveWorker& w, const std::vector<LivePlace>& decode) {
  if (decode.empty()) {
    return Make(kPlacement, "all", "no decode worker reported", Verdict::kNotApplicable);
  }
  std::vector<std::string> parts;
  std::vector<std::string> fixes;
  bool shared_gpu = false, crossed_numa = false;
  for (const LivePlace& p : decode) {
    if (p.host != w.host) {
      parts.push_back(absl::StrCat(p.id, ": another host (", p.host, ")"));
      continue;
    }
    std::string where = absl::StrCat(p.id, ": same host");
    if (!w.gpu.empty() && !p.gpu.empty()) {
      if (w.gpu == p.gpu) {
        absl::StrAppend(&where, ", same GPU ", w.gpu);
        shared_gpu = true;
      } else {
        absl::StrAppend(&where, ", peer GPUs ", w.gpu, " -> ", p.gpu);
      }
    } else if (!w.gpu.empty() || !p.gpu.empty()) {
      absl::StrAppend(&where, ", pools in ", w.gpu.empty() ? "host" : w.gpu, " -> ",
                      p.gpu.empty() ? "host" : p.gpu, " memory");
    }
    if (w.numa_node >= 0 && p.numa_node >= 0) {
      if (w.numa_node != p.numa_node) {
        absl::StrAppend(&where, ", NUMA nodes ", w.numa_node, " -> ", p.numa_node);
        crossed_numa = true;
      } else {
        absl::StrAppend(&where, ", NUMA node ", w.numa_node);
      }
    } else {
      absl::StrAppend(&where, ", NUMA node unknown");
    }
    parts.push_back(std::move(where));
  }
  if (shared_gpu) {
    fixes.push_back(
        "prefill and decode kernels time-slice one GPU (two CUDA contexts): run the CUDA MPS "
        "daemon, or place them apart (pdserve cluster --prefill-gpus 0 --decode-gpus 1)");
  }
  if (crossed_numa) {
    fixes.push_back(
        "host-memory copies cross the socket interconnect: bind each prefill-decode pair to one "
        "node (numactl --cpunodebind=N --membind=N)");
  }
  return Make(kPlacement, "all", absl::StrJoin(parts, "; "),
              fixes.empty() ? Verdict::kOk : Verdict::kWarn, absl::StrJoin(fixes, "; "));
}

Diagnosis DiagnoseLive(const std::string& endpoint, const std::vector<LiveWorker>& workers,
                       const std::vector<LivePlace>& decode) {
  Diagnosis d{.dir = absl::StrCat("cluster at ", endpoint), .live = true};
  for (const LiveWorker& w : workers) {
    BackendDiagnosis b{.backend = absl::StrCat(w.id, " (", w.backend, ", host ", w.host, ")"),
                       .transports = w.transports};
    b.findings = {SmallOps(w),  Batching(w), Registrations(w),
                  Transports(w), Staging(w), PlacementFinding(w, decode)};
    for (const char* item : {kOverlap, kVsBaseline, kTtftP99}) {
      b.findings.push_back(Make(item, "all",
                                "needs per-request timings: run `pdserve doctor` on a `pdserve "
                                "bench` results folder",
                                Verdict::kNotApplicable));
    }
    d.backends.push_back(std::move(b));
  }
  return d;
}

}  // namespace pdserve::doctor
