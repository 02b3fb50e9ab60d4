// RouterService: worker health. Draining workers and workers the circuit breaker quarantined are
// kept out of placement; stalled decode streams are cancelled and counted against their worker;
// a registering worker is probed before any lock is taken.
#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/wire_status.h"
#include "router/router_service.h"
#include "service/grpc_util.h"
#include "common/clock.h"

namespace pdserve::router {

void RouterService::RecordOutcome(const std::string& worker, const absl::Status& outcome) {
  auto log = ComponentLogger("router");
  absl::MutexLock lock(&mu_);
  if (!workers_.contains(worker)) return;  // gone: a new registration starts with a clean record
  const absl::Time now = SteadyNow();
  if (outcome.ok()) {
    const bool was_failing = health_->Health(worker, now).consecutive_failures > 0;
    health_->OnSuccess(worker);
    if (was_failing) log->info("worker {} served a request again; failure count reset", worker);
  } else {
    const bool was_placeable = health_->Placeable(worker, now);
    health_->OnFailure(worker, now);
    const WorkerHealth h = health_->Health(worker, now);
    if (was_placeable && h.quarantined) {
      log->warn("worker {} quarantined for {} after {} consecutive failures (trip {}; last: {})",
                worker, absl::FormatDuration(h.quarantined_until - now), h.consecutive_failures,
                h.trips, outcome.ToString());
    }
  }
  if (RefreshAcceptingLocked(now)) KickLocked();
}

bool RouterService::RefreshAcceptingLocked(absl::Time now) {
  bool changed = false;
  for (auto& [id, w] : workers_) {
    const int budget = w->draining ? 0 : health_->PlacementBudget(id, now);
    if (!scheduler_.SetAccepting(id, budget != 0, budget)) continue;
    changed = true;
    if (budget == 1) {
      ComponentLogger("router")->info("worker {} is half-open: one trial request", id);
    } else if (budget != 0) {
      ComponentLogger("router")->info("worker {} is placeable again", id);
    }
  }
  return changed;
}

void RouterService::SweepHealth() {
  auto log = ComponentLogger("router");
  for (const ProgressWatchdog::Stalled& s : watchdog_.Sweep(SteadyNow())) {
    // The stream's own thread fails the request and counts the failure when its read returns.
    log->warn("request {}: no token from decode worker {} for {}; cancelling its stream",
              s.request_id, s.worker, absl::FormatDuration(s.silent));
  }
  absl::MutexLock lock(&mu_);
  if (RefreshAcceptingLocked(SteadyNow())) KickLocked();
}

uint32_t RouterService::NoteHeartbeatLocked(Worker& worker, bool draining) {
  if (draining && !worker.draining) {
    worker.draining = true;
    ComponentLogger("router")->info(
        "worker {} (pid {}) is draining: no new requests go to it; "
        "{} placed requests left",
        worker.id, worker.pid, scheduler_.PlacedOn(worker.id));
    if (RefreshAcceptingLocked(SteadyNow())) KickLocked();
  }
  return static_cast<uint32_t>(scheduler_.PlacedOn(worker.id));
}

void RouterService::AddHealthLocked(const Worker& worker, v1::WorkerStatus& out) const {
  const WorkerHealth h = health_->Health(worker.id, SteadyNow());
  out.set_draining(worker.draining);
  out.set_quarantined(h.quarantined);
  out.set_consecutive_failures(static_cast<uint32_t>(h.consecutive_failures));
  out.set_fast_lane(worker.fast != nullptr && !worker.fast->broken());
}

absl::Status RouterService::FailStalled(const std::shared_ptr<Request>& request, int received) {
  const std::string& worker = request->decode_worker;
  const absl::Status stalled = absl::DeadlineExceededError(absl::StrCat(
      "request ", request->id, ": no token from decode worker ", worker, " within ",
      absl::FormatDuration(received == 0 ? options_.transfer_timeout + options_.token_timeout
                                         : options_.token_timeout),
      " after ", received, " tokens (its engine may be stuck); request cancelled"));
  // Counted before the release, which a stuck engine may hold up to its deadline.
  RecordOutcome(worker, stalled);
  ReleaseOnDecode(worker, request->id, {.epoch = request->decode_epoch});
  FinishRequest(request, false);
  return stalled;
}

std::optional<absl::Status> RouterService::PrefillVerdict(
    const v1::PrefillBatchResponse& response) {
  // Items that failed because their decode peer went away or was removed (Unavailable,
  // Cancelled) say nothing about this worker.
  std::optional<absl::Status> verdict;
  for (const v1::PrefillItemResult& r : response.results()) {
    if (r.ok()) return absl::OkStatus();
    const absl::StatusCode code = FailureCodeFromWire(r.error_code());
    if (!verdict.has_value() && code != absl::StatusCode::kUnavailable &&
        code != absl::StatusCode::kCancelled) {
      verdict = absl::Status(code, r.error());
    }
  }
  return verdict;
}

absl::Status RouterService::ProbeRegistration(const v1::RegisterWorkerRequest& request) const {
  auto channel = (options_.auth ? options_.auth : service::ClusterAuth::Insecure())
                     ->Channel(request.address());
  grpc::ClientContext ctx;
  service::SetDeadline(ctx, options_.registration_probe_timeout);
  v1::StatusRequest probe;
  v1::WorkerStatus status;
  const grpc::Status answered =
      request.role() == v1::WORKER_ROLE_PREFILL
          ? v1::PrefillWorker::NewStub(channel)->GetStatus(&ctx, probe, &status)
          : v1::DecodeWorker::NewStub(channel)->GetStatus(&ctx, probe, &status);  // or colocated
  if (answered.ok()) return absl::OkStatus();
  // Unavailable: the worker retries its registration (it may not be serving yet).
  return absl::UnavailableError(absl::StrCat(
      "worker ", request.worker_id(), " does not answer at ", request.address(), " within ",
      absl::FormatDuration(options_.registration_probe_timeout), ": ", answered.error_message()));
}

}  // namespace pdserve::router
