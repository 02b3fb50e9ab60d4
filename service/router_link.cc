#include "service/router_link.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "service/grpc_util.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"

namespace pdserve::service {

RouterLink::RouterLink(RouterLinkOptions options, CapacityFn capacity)
    : options_(std::move(options)), capacity_(std::move(capacity)) {
  const std::shared_ptr<const ClusterAuth> auth =
      options_.auth != nullptr ? options_.auth : ClusterAuth::Insecure();
  stub_ = v1::RouterControl::NewStub(auth->Channel(options_.router_address));
}

absl::StatusOr<std::unique_ptr<RouterLink>> RouterLink::Start(RouterLinkOptions options,
                                                              CapacityFn capacity) {
  std::unique_ptr<RouterLink> link(new RouterLink(std::move(options), std::move(capacity)));
  const absl::Time deadline = SteadyNow() + link->options_.register_timeout;
  absl::Status last;
  while (true) {
    last = link->Register();
    if (last.ok()) break;
    // Only an unreachable router is worth waiting for; a refusal is final.
    if (last.code() != absl::StatusCode::kUnavailable &&
        last.code() != absl::StatusCode::kDeadlineExceeded) {
      return last;
    }
    if (SteadyNow() >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          "could not register with the router at ", link->options_.router_address, " within ",
          absl::FormatDuration(link->options_.register_timeout), ": ", last.ToString()));
    }
    absl::SleepFor(absl::Milliseconds(100));  // retry back-off while the router starts
  }
  link->thread_ = std::thread([raw = link.get()] {
    NameThisThread("heartbeat");
    raw->HeartbeatLoop();
  });
  return link;
}

RouterLink::~RouterLink() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status RouterLink::Register() {
  v1::RegisterWorkerRequest request = options_.registration;
  *request.mutable_capacity() = capacity_();
  v1::RegisterWorkerResponse response;
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.rpc_timeout);
  RETURN_IF_ERROR(FromGrpc(stub_->RegisterWorker(&ctx, request, &response)));
  if (response.heartbeat_interval_ms() > 0) {
    interval_ = absl::Milliseconds(response.heartbeat_interval_ms());
  }
  ComponentLogger("worker")->info("{} registered with the router at {} (heartbeat every {})",
                                  request.worker_id(), options_.router_address,
                                  absl::FormatDuration(interval_));
  return absl::OkStatus();
}

absl::StatusOr<v1::HeartbeatResponse> RouterLink::SendHeartbeat() {
  v1::HeartbeatRequest request;
  request.set_worker_id(options_.registration.worker_id());
  *request.mutable_capacity() = capacity_();
  request.set_draining(draining_.load());
  v1::HeartbeatResponse response;
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.rpc_timeout);
  RETURN_IF_ERROR(FromGrpc(stub_->Heartbeat(&ctx, request, &response)));
  return response;
}

absl::Status RouterLink::Drain(const std::function<bool()>& idle, absl::Duration grace) {
  draining_ = true;
  const absl::Time deadline = SteadyNow() + grace;
  while (true) {
    absl::StatusOr<v1::HeartbeatResponse> answer = SendHeartbeat();
    const uint32_t placed = answer.ok() && answer->known() ? answer->placed_requests() : 0;
    const bool local_idle = idle();
    if (placed == 0 && local_idle) return absl::OkStatus();
    if (SteadyNow() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          options_.registration.worker_id(), " did not drain within ",
          absl::FormatDuration(grace), ": the router still places ", placed,
          " requests on it", local_idle ? "" : " and its engine is busy"));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

void RouterLink::HeartbeatLoop() {
  auto log = ComponentLogger("worker");
  bool router_reachable = true;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval_)) return;
    }
    absl::StatusOr<v1::HeartbeatResponse> response = SendHeartbeat();
    if (!response.ok()) {
      if (router_reachable) {
        log->warn("heartbeat to the router failed: {}", response.status().ToString());
      }
      router_reachable = false;
      continue;
    }
    router_reachable = true;
    // A draining worker must not come back into placement by registering again.
    if (!response->known() && !draining_.load()) {
      log->warn("the router does not know {} any more; registering again",
                options_.registration.worker_id());
      if (absl::Status again = Register(); !again.ok()) {
        log->warn("registering again failed: {}", again.ToString());
      }
    }
  }
}

}  // namespace pdserve::service
