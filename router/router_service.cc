#include "router/router_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "service/grpc_util.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "router/generate_reactor.h"
#include "router/grpc_adapter.h"
#include "router/prefill_timeline.h"
#include "router/request_validation.h"

namespace pdserve::router {

using service::FromGrpc;
using service::SetDeadline;
using service::ToGrpc;

namespace {

// The router's series are fixed names in a fresh registry: a failure is our bug.
std::unique_ptr<RouterMetrics> MakeMetrics(metrics::Registry& registry, const std::string& model) {
  absl::StatusOr<std::unique_ptr<RouterMetrics>> m = RouterMetrics::Create(registry, model);
  if (!m.ok()) {
    ComponentLogger("router")->critical("registering the router's metrics: {}",
                                        m.status().ToString());
    std::abort();
  }
  return *std::move(m);
}

}  // namespace

RouterService::RouterService(RouterOptions options)
    : options_(std::move(options)),
      metrics_(MakeMetrics(registry_, options_.config.name)),
      scheduler_(options_.scheduler),
      health_(std::make_unique<CircuitBreakerPolicy>(options_.breaker)),
      // Ends requests and opens decode streams; its threads may block on a worker's Release
      // (up to rpc_timeout), so there are enough that a faulty worker's requests do not hold
      // up everyone else's.
      work_(std::make_unique<WorkQueue>(16)) {
  registry_.AddCollector([this] { CollectMetrics(); });
  dispatcher_ = std::thread([this] {
    NameThisThread("rt-dispatch");
    DispatchLoop();
  });
  sweeper_ = std::thread([this] {
    NameThisThread("rt-sweep");
    SweepLoop();
  });
  for (int i = 0; i < std::max(1, options_.executor_threads); ++i) {
    executors_.emplace_back([this] {
      NameThisThread("rt-exec");
      ExecutorLoop();
    });
  }
}

RouterService::~RouterService() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;  // TrackRpc refuses from now on: no new call to a worker starts
    for (auto& [id, worker] : workers_) {
      for (grpc::ClientContext* ctx : worker->inflight) ctx->TryCancel();
    }
  }
  // Every started request ends before the state it uses goes: batches in flight fail fast
  // (their calls are cancelled or refused), batches never run fail here, queued requests fail
  // (ExpireQueued), decode streams end cancelled.
  for (std::thread& t : executors_) t.join();
  {
    absl::MutexLock lock(&mu_);
    for (const BatchJob& job : jobs_) {
      for (const Placement& p : job.plan.items) {
        auto it = requests_.find(p.request_id);
        if (it == requests_.end() || it->second->phase != Phase::kPrefilling) continue;
        it->second->status = absl::UnavailableError(
            absl::StrCat("request ", p.request_id, ": the router is stopping"));
        it->second->phase = Phase::kFailed;
        SettledLocked(it->second);
      }
    }
    jobs_.clear();
  }
  ExpireQueued();
  {
    absl::MutexLock lock(&mu_);
    auto none_live = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return live_requests_ == 0; };
    mu_.Await(absl::Condition(&none_live));
  }
  dispatcher_.join();
  sweeper_.join();
}

grpc::ServerWriteReactor<v1::GenerateResponse>* RouterService::Generate(
    grpc::CallbackServerContext* /*ctx*/, const v1::GenerateRequest* in) {
  return StartGenerate(*this, *in);
}

void RouterService::DispatchLoop() {
  while (true) {
    absl::MutexLock lock(&mu_);
    // An idle executor takes the kick itself (ExecutorLoop): the dispatcher schedules only when
    // every executor is busy, so that new arrivals are still placed (or refused) meanwhile.
    auto woken = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stop_ || (kick_ && idle_executors_ == 0);
    };
    mu_.Await(absl::Condition(&woken));
    if (stop_) return;
    kick_ = false;
    ScheduleLocked();
  }
}

void RouterService::ScheduleLocked() {
  ScheduleStep step = scheduler_.Schedule();
  for (RejectedRequest& rejected : step.rejected) {
    metrics_->OnRejected(rejected.status.code());
    if (auto it = requests_.find(rejected.request_id); it != requests_.end()) {
      it->second->status = rejected.status;
      it->second->phase = Phase::kFailed;
      SettledLocked(it->second);
    }
  }
  const int64_t now_us = WallMicros();
  for (PrefillBatchPlan& plan : step.batches) {
    for (const Placement& p : plan.items) {
      auto it = requests_.find(p.request_id);
      if (it == requests_.end()) continue;
      it->second->phase = Phase::kPrefilling;
      it->second->decode_worker = p.decode_worker;
      it->second->timeline.set_scheduled_us(now_us);
      it->second->timeline.set_prefill_worker(plan.prefill_worker);
      it->second->timeline.set_decode_worker(p.decode_worker);
    }
    jobs_.push_back(BatchJob{std::move(plan)});
  }
  // A half-open worker's first placement is its trial: nothing more goes to it until the
  // trial's outcome (worker_health.h).
  if (!step.batches.empty()) {
    const absl::Time now = SteadyNow();
    for (auto job = jobs_.end() - static_cast<std::ptrdiff_t>(step.batches.size());
         job != jobs_.end(); ++job) {
      for (const Placement& p : job->plan.items) {
        health_->OnPlaced(job->plan.prefill_worker, now);
        health_->OnPlaced(p.decode_worker, now);
      }
    }
    RefreshAcceptingLocked(now);
  }
}

void RouterService::CollectMetrics() const {
  RouterMetrics::State s;
  uint64_t used = 0, total = 0;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, r] : requests_) {
      if (r->phase == Phase::kWaiting) s.waiting++;
      if (r->phase == Phase::kPrefilling || r->phase == Phase::kReady) s.running++;
    }
    s.scheduler_queue = static_cast<int>(scheduler_.num_waiting());
    // From the last heartbeats: quarantined blocks are not free, so they count as used.
    for (const auto& [id, w] : workers_) {
      if (w->role != v1::WORKER_ROLE_DECODE && w->role != v1::WORKER_ROLE_COLOCATED) continue;
      total += w->capacity.total_blocks();
      used += w->capacity.total_blocks() - std::min(w->capacity.free_blocks(),
                                                    w->capacity.total_blocks());
    }
  }
  s.kv_usage = total == 0 ? 0 : static_cast<double>(used) / static_cast<double>(total);
  metrics_->Set(s);
}

void RouterService::ExecutorLoop() {
  while (true) {
    BatchJob job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stop_ || !jobs_.empty() || kick_;
      };
      idle_executors_++;
      mu_.Await(absl::Condition(&ready));
      idle_executors_--;
      if (stop_) return;
      // An idle executor schedules the kick itself and runs the first batch it makes: one
      // thread hand-off less between a request's arrival and its Prefill call (~25 us of the
      // 2-vCPU host's control plane: the dispatcher's wake-up, then this thread's).
      if (jobs_.empty()) {
        kick_ = false;
        ScheduleLocked();
        if (jobs_.empty()) continue;
      }
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    RunBatch(job.plan);
  }
}

}  // namespace pdserve::router
