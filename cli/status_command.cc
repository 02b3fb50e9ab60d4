#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "service/grpc_util.h"
#include "common/status_macros.h"
#include "loadgen/target_model.h"
#include "pdserve.grpc.pb.h"

namespace pdserve::cli {
namespace {

const char* RoleName(v1::WorkerRole role) {
  switch (role) {
    case v1::WORKER_ROLE_PREFILL: return "prefill";
    case v1::WORKER_ROLE_DECODE: return "decode";
    case v1::WORKER_ROLE_COLOCATED: return "colocated";
    default: return "?";
  }
}

// The worker's own answer and the router's health view: down, draining, quarantined by the
// circuit breaker, or serving (with failures counted since its last success).
std::string StateOf(const v1::WorkerStatus& w) {
  if (!w.healthy()) return "DOWN";
  if (w.draining()) return "draining";
  if (w.quarantined()) return "quarantine";
  if (w.consecutive_failures() > 0) return absl::StrCat("ok/", w.consecutive_failures(), "fail");
  return "ok";
}

// Where the worker's pool sits, as it registered: its GPU's bus id (or host memory) and the
// NUMA node of its CPUs. Checked bounded and printable by the router; escaped all the same.
std::string PoolPlace(const v1::WorkerStatus& w) {
  std::string place = w.gpu().empty() ? "host" : absl::StrCat("gpu ", absl::CEscape(w.gpu()));
  if (w.has_numa_node()) absl::StrAppend(&place, ", numa ", w.numa_node());
  return place;
}

absl::Status RunStatus(const std::string& endpoint) {
  auto stub = v1::Router::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  service::SetDeadline(ctx, absl::Seconds(10));
  v1::ClusterStatus s;
  RETURN_IF_ERROR(service::FromGrpc(stub->GetStatus(&ctx, v1::StatusRequest(), &s)));
  absl::StatusOr<ModelConfig> model = loadgen::ModelOfStatus(s);
  std::printf("router %s: model %s, transfer %s\n", endpoint.c_str(),
              model.ok() ? ModelSummary(*model).c_str() : s.preset().c_str(),
              s.transfer_backend().empty() ? "any" : s.transfer_backend().c_str());
  std::printf("requests: %u waiting (bound %u), %u prefilling, %u decoding, %llu finished, "
              "%llu failed\n",
              s.waiting_requests(), s.max_waiting(), s.prefilling_requests(),
              s.decoding_requests(), static_cast<unsigned long long>(s.finished_requests()),
              static_cast<unsigned long long>(s.failed_requests()));
  std::printf("workers: %d registered, %llu dropped since the router started\n",
              s.workers_size(), static_cast<unsigned long long>(s.dropped_workers()));
  // Quarantined: blocks of released requests whose KV may still land (docs/cluster.md).
  std::printf("%-12s %-8s %-22s %7s %-10s %11s %11s %12s %9s %8s %9s %10s %-24s %s\n", "worker",
              "role", "address", "pid", "state", "free blocks", "quarantined", "total blocks",
              "reserved", "running", "served", "KV MiB out", "pool on", "transports");
  // Grouped by the host each worker registered (stable: the router's order within a host), so
  // that which pairs share a machine is visible at a glance. The host id is the worker's word,
  // bounded and printable as the router checked; an older worker's is empty.
  std::vector<const v1::WorkerStatus*> sorted;
  for (const v1::WorkerStatus& w : s.workers()) sorted.push_back(&w);
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
    return a->host_id() < b->host_id();
  });
  for (size_t i = 0; i < sorted.size(); ++i) {
    const v1::WorkerStatus& w = *sorted[i];
    if (i == 0 || sorted[i - 1]->host_id() != w.host_id()) {
      size_t n = 0;
      for (size_t j = i; j < sorted.size() && sorted[j]->host_id() == w.host_id(); ++j) ++n;
      std::printf("host %s: %zu worker%s\n",
                  w.host_id().empty() ? "(unknown)" : absl::CEscape(w.host_id()).c_str(), n,
                  n == 1 ? "" : "s");
    }
    std::printf("%-12s %-8s %-22s %7d %-10s %11u %11u %12u %9u %8u %9llu %10.2f %-24s %s\n",
                w.worker_id().c_str(), RoleName(w.role()), w.address().c_str(), w.pid(),
                StateOf(w).c_str(), w.capacity().free_blocks(),
                w.capacity().quarantined_blocks(), w.capacity().total_blocks(),
                w.reserved_blocks(), w.capacity().running_requests(),
                static_cast<unsigned long long>(w.requests_served()),
                w.kv_bytes_transferred() / (1024.0 * 1024.0), PoolPlace(w).c_str(),
                w.transports().c_str());
  }
  return absl::OkStatus();
}

void AddStatusCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "status", "Print a cluster's workers, free/total KV blocks per pool and queue lengths");
  auto endpoint = std::make_shared<std::string>("127.0.0.1:50051");
  cmd->add_option("--endpoint", *endpoint, "router host:port")->capture_default_str();
  cmd->callback([endpoint] { ExitWith(RunStatus(*endpoint)); });
}

const bool registered = RegisterCommand("status", AddStatusCommand);

}  // namespace
}  // namespace pdserve::cli
