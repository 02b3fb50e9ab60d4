// The request core of RouterService (router/request_core.h): one request's life from
// validation to its last token, for every front end, without a thread of its own: Start queues
// it, the executors settle it, the work queue continues it (Continue), its decode stream
// (decode_stream.cc) relays its tokens and ends it (Complete).

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "router/grpc_adapter.h"
#include "router/request_id.h"
#include "router/request_validation.h"
#include "router/router_service.h"
#include "service/grpc_util.h"

namespace pdserve::router {


absl::Status RouterService::Reject(absl::Status status) {
  metrics_->OnRejected(status.code());
  return status;
}

absl::Status RouterService::Fail(const std::shared_ptr<Request>& request, absl::Status status) {
  absl::MutexLock lock(&mu_);
  requests_.erase(request->id);
  failed_++;
  ComponentLogger("router")->info("request {} failed: {}", request->id, status.ToString());
  return status;
}

void RouterService::FinishRequest(const std::shared_ptr<Request>& request, bool ok) {
  absl::MutexLock lock(&mu_);
  scheduler_.DecodeDone(request->id);
  requests_.erase(request->id);
  if (ok) {
    finished_++;
    if (auto w = workers_.find(request->decode_worker); w != workers_.end()) w->second->served++;
  } else {
    failed_++;
  }
  KickLocked();
}

CoreState RouterService::State() const {
  CoreState state{.model = options_.config};
  absl::MutexLock lock(&mu_);
  for (const auto& [id, worker] : workers_) {
    const bool colocated = worker->role == v1::WORKER_ROLE_COLOCATED;
    if (worker->role == v1::WORKER_ROLE_PREFILL || colocated) state.prefill_workers++;
    if (worker->role == v1::WORKER_ROLE_DECODE || colocated) state.decode_workers++;
  }
  return state;
}

// What Start hands out: cancels its request while the request lives.
class RouterService::CallHandle final : public Call {
 public:
  CallHandle(RouterService* router, std::weak_ptr<Request> request)
      : router_(router), request_(std::move(request)) {}
  void Cancel() override {
    if (std::shared_ptr<Request> r = request_.lock()) router_->CancelRequest(r);
  }

 private:
  RouterService* const router_;
  const std::weak_ptr<Request> request_;
};

namespace {
// For a request refused at once: nothing to cancel.
class EndedCall final : public Call {
 public:
  void Cancel() override {}
};
}  // namespace

std::shared_ptr<Call> RouterService::Start(const GenerateParams& in,
                                           std::shared_ptr<EventSink> sink) {
  auto refuse = [&sink](const absl::Status& status) -> std::shared_ptr<Call> {
    sink->OnDone(status);
    return std::make_shared<EndedCall>();
  };
  auto request = std::make_shared<Request>();
  request->timeline.set_arrival_us(WallMicros());
  if (in.request_id.empty()) {
    absl::StatusOr<std::string> id = NewServerRequestId();
    if (!id.ok()) return refuse(id.status());
    request->id = *std::move(id);
  } else if (absl::Status own = CheckClientRequestId(in.request_id); !own.ok()) {
    return refuse(Reject(own));
  } else {
    request->id = in.request_id;
  }
  absl::StatusOr<std::vector<int32_t>> prompt = PromptOf(in, request->id, options_.config);
  if (!prompt.ok()) return refuse(Reject(prompt.status()));
  request->prompt = std::move(*prompt);
  request->max_tokens = in.max_tokens;
  request->seed = in.seed;
  request->sink = sink;  // a copy: refuse() below still answers through `sink`
  request->queue_deadline = SteadyNow() + options_.queue_timeout;
  std::vector<std::shared_ptr<service::FastLaneClient>> nudge;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) {
      return refuse(absl::UnavailableError(
          absl::StrCat("request ", request->id, ": the router is stopping")));
    }
    if (requests_.contains(request->id)) {
      return refuse(Reject(absl::AlreadyExistsError(
          absl::StrCat("request id ", request->id, " is already in use"))));
    }
    absl::Status queued =
        scheduler_.Enqueue(PendingRequest{.id = request->id,
                                          .prompt_len = static_cast<int>(request->prompt.size()),
                                          .max_tokens = request->max_tokens});
    if (!queued.ok()) {
      failed_++;
      return refuse(Reject(queued));
    }
    requests_[request->id] = request;
    live_requests_++;
    nudge = NudgeTargetsLocked();
    if (nudge.empty()) KickLocked();
  }
  if (!nudge.empty()) {
    // Before the kick, and outside the lock (a send): the executor, once woken, may preempt
    // this thread (it is often woken on this vCPU) and send the Prefill frame before a nudge
    // sent after the kick, which would then only wake the reader for nothing.
    for (const std::shared_ptr<service::FastLaneClient>& lane : nudge) lane->Nudge();
    absl::MutexLock lock(&mu_);
    KickLocked();
  }
  return std::make_shared<CallHandle>(this, request);
}

std::vector<std::shared_ptr<service::FastLaneClient>> RouterService::NudgeTargetsLocked() {
  std::vector<std::shared_ptr<service::FastLaneClient>> out;
  // Only when the request goes out at once (an executor is idle, nothing queued before it):
  // otherwise the workers are busy, awake, or the request waits anyway.
  if (!options_.nudge_prefill || !options_.fast_lane || idle_executors_ == 0 || !jobs_.empty() ||
      scheduler_.num_waiting() > 1) {
    return out;
  }
  // The one worker the scheduler is about to give it (with several prefill workers, nudging
  // others would only make them poll for nothing).
  const std::optional<std::string> id = scheduler_.HeadPrefillWorker();
  if (!id.has_value()) return out;
  auto it = workers_.find(*id);
  if (it == workers_.end()) return out;
  const Worker& w = *it->second;
  if ((w.role == v1::WORKER_ROLE_PREFILL || w.role == v1::WORKER_ROLE_COLOCATED) && !w.draining &&
      w.fast != nullptr && !w.fast->broken()) {
    out.push_back(w.fast);
  }
  return out;
}

void RouterService::SettledLocked(const std::shared_ptr<Request>& request) {
  if (request->sink == nullptr) return;
  work_->Post([this, request] { Continue(request); });
}

bool RouterService::DequeueLocked(const std::shared_ptr<Request>& request) {
  auto it = requests_.find(request->id);
  if (request->phase != Phase::kWaiting || it == requests_.end() || it->second != request) {
    return false;
  }
  scheduler_.CancelWaiting(request->id);
  std::erase(deferred_, request->id);
  requests_.erase(it);
  request->phase = Phase::kFailed;  // ended here: no one else continues it
  failed_++;
  return true;
}

void RouterService::CancelRequest(const std::shared_ptr<Request>& request) {
  if (request->cancelled.exchange(true)) return;
  {
    absl::MutexLock lock(&request->stream_mu);
    if (request->stream != nullptr) request->stream->TryCancel();
  }
  bool dequeued;
  {
    absl::MutexLock lock(&mu_);
    dequeued = DequeueLocked(request);
  }
  if (dequeued) {
    // Ended on the work queue, as every request is: the sink is never called from Cancel.
    work_->Post([this, request] {
      Complete(request,
               absl::CancelledError(absl::StrCat("request ", request->id, " cancelled while queued")));
    });
  }
  // Placed: Continue (or the decode stream) sees `cancelled`.
}

void RouterService::ExpireQueued() {
  std::vector<std::shared_ptr<Request>> expired;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stop_;
    const absl::Time now = SteadyNow();
    for (const auto& [id, r] : requests_) {
      if (r->phase == Phase::kWaiting && (stopping || now > r->queue_deadline)) {
        expired.push_back(r);
      }
    }
    std::vector<std::shared_ptr<Request>> dequeued;
    for (std::shared_ptr<Request>& r : expired) {
      if (DequeueLocked(r)) dequeued.push_back(std::move(r));
    }
    expired = std::move(dequeued);
  }
  for (const std::shared_ptr<Request>& r : expired) {
    const absl::Status status =
        stopping ? absl::UnavailableError(
                       absl::StrCat("request ", r->id, ": the router is stopping"))
                 : Reject(absl::DeadlineExceededError(
                       absl::StrCat("request ", r->id, " waited in the queue for ",
                                    absl::FormatDuration(options_.queue_timeout))));
    work_->Post([this, r, status] { Complete(r, status); });
  }
}

void RouterService::Complete(const std::shared_ptr<Request>& request, const absl::Status& status) {
  if (request->completed.exchange(true)) return;
  request->sink->OnDone(status);
  absl::MutexLock lock(&mu_);
  live_requests_--;
}

void RouterService::Continue(const std::shared_ptr<Request>& request) {
  Phase phase;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    phase = request->phase;
    stopping = stop_;
  }
  if (phase == Phase::kFailed) return Complete(request, Fail(request, request->status));
  // Prefilled, KV transferred: vLLM counts a prompt's tokens once its prefill ran.
  metrics_->OnPromptDone(static_cast<int>(request->prompt.size()));
  if (request->cancelled || stopping) {
    // The prefill succeeded: its KV landed, nothing more will be written.
    ReleaseOnDecode(request->decode_worker, request->id, {.epoch = request->decode_epoch});
    FinishRequest(request, false);
    return Complete(request,
                    stopping ? absl::UnavailableError(absl::StrCat(
                                   "request ", request->id, ": the router is stopping"))
                             : absl::CancelledError(absl::StrCat("request ", request->id,
                                                                 " cancelled")));
  }
  OpenDecodeStream(request);
}

}  // namespace pdserve::router
