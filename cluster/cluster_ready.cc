// Cluster: asking the router what is running, and waiting until every worker of the options
// registered (split prefill / decode workers, or colocated ones).
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "cluster/cluster.h"
#include "common/status_macros.h"
#include "pdserve.grpc.pb.h"
#include "service/grpc_util.h"

namespace pdserve::cluster {

absl::StatusOr<v1::ClusterStatus> Cluster::GetStatus(absl::Duration timeout) const {
  auto stub = v1::Router::NewStub(
      grpc::CreateChannel(endpoint(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  service::SetDeadline(ctx, timeout);
  v1::ClusterStatus status;
  RETURN_IF_ERROR(service::FromGrpc(stub->GetStatus(&ctx, v1::StatusRequest(), &status)));
  return status;
}

absl::Status Cluster::WaitUntilReady() {
  const absl::Time deadline = absl::Now() + options_.ready_timeout;
  std::string last = "no answer yet";
  while (absl::Now() < deadline) {
    if (absl::Status alive = CheckChildren(); !alive.ok()) {
      Stop();
      return alive;
    }
    absl::StatusOr<v1::ClusterStatus> status = GetStatus(absl::Seconds(2));
    if (status.ok()) {
      int prefill = 0, decode = 0, colocated = 0;
      for (const v1::WorkerStatus& w : status->workers()) {
        if (!w.healthy()) continue;
        if (w.role() == v1::WORKER_ROLE_PREFILL) prefill++;
        if (w.role() == v1::WORKER_ROLE_DECODE) decode++;
        if (w.role() == v1::WORKER_ROLE_COLOCATED) colocated++;
      }
      if (prefill >= options_.num_prefill && decode >= options_.num_decode &&
          colocated >= options_.num_colocated) {
        return absl::OkStatus();
      }
      last = absl::StrCat(prefill, "/", options_.num_prefill, " prefill, ", decode, "/",
                          options_.num_decode, " decode and ", colocated, "/",
                          options_.num_colocated, " colocated workers ready");
    } else {
      last = status.status().ToString();
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  Stop();
  return absl::DeadlineExceededError(absl::StrCat("the cluster was not ready within ",
                                                  absl::FormatDuration(options_.ready_timeout),
                                                  " (", last, "); logs in ", options_.log_dir));
}

}  // namespace pdserve::cluster
