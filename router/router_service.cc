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
#include "router/run_batch.h"

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
    // Batches this thread sends itself: each an executor is idle for (below).
    std::vector<PrefillBatchPlan> to_start;
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return kick_ || stop_; };
      mu_.Await(absl::Condition(&woken));
      if (stop_) return;
      kick_ = false;
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
      const absl::Time now = SteadyNow();
      // At most as many batches in flight as before (one per executor): those started here
      // count until an executor settles them.
      int idle = idle_executors_ - static_cast<int>(jobs_.size() + started_.size());
      for (PrefillBatchPlan& plan : step.batches) {
        for (const Placement& p : plan.items) {
          auto it = requests_.find(p.request_id);
          if (it == requests_.end()) continue;
          it->second->phase = Phase::kPrefilling;
          it->second->decode_worker = p.decode_worker;
          it->second->timeline.set_scheduled_us(now_us);
          it->second->timeline.set_prefill_worker(plan.prefill_worker);
          it->second->timeline.set_decode_worker(p.decode_worker);
          // A half-open worker's first placement is its trial: nothing more goes to it until
          // the trial's outcome (worker_health.h).
          health_->OnPlaced(plan.prefill_worker, now);
          health_->OnPlaced(p.decode_worker, now);
        }
        // Sending a batch's calls does not wait for anything when the decode blocks are asked
        // alongside: this thread sends them, and the executor that waits for the answers
        // wakes meanwhile. Handing the sending to the executor put a thread wake-up (50-250
        // us on the 2-vCPU VM) between the scheduling and the prefill worker (issue 15):
        // scheduled -> prefill start 177-203 us p50 with this against 226-242 us, five rounds
        // (docs/results/cpu-2core-2026-12-06-short-slice). The executor wakes only when the
        // Prefill call ended (PrefillAnswered).
        if (options_.allocate_alongside_prefill && idle-- > 0) {
          to_start.push_back(std::move(plan));
        } else {
          jobs_.push_back(BatchJob{std::move(plan)});
        }
      }
      if (!step.batches.empty()) RefreshAcceptingLocked(now);
    }
    for (PrefillBatchPlan& plan : to_start) {
      std::unique_ptr<BatchRun> run = StartBatch(std::move(plan));
      BatchRun* raw = run.get();
      {
        absl::MutexLock lock(&mu_);
        if (stop_) {
          // The executors may be gone: this thread finishes it, once the Prefill call's
          // callback no longer touches it.
          auto ended = [raw]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
            return !raw->prefill_sent || raw->answer_came;
          };
          mu_.Await(absl::Condition(&ended));
        } else if (!raw->prefill_sent || raw->answer_came) {
          jobs_.push_back(BatchJob{.run = std::move(run)});
        } else {
          started_.emplace(raw, std::move(run));  // PrefillAnswered hands it on
        }
      }
      if (run != nullptr) FinishBatch(*run);
    }
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
      idle_executors_++;
      // A batch the dispatcher started has calls in flight that point into it: it is finished
      // whatever happens (its Prefill call ends, at the latest at its deadline). One never
      // started fails in the destructor.
      auto started = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return std::find_if(jobs_.begin(), jobs_.end(),
                            [](const BatchJob& j) { return j.run != nullptr; });
      };
      auto ready = [this, &started]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        if (!stop_) return !jobs_.empty();
        return started() != jobs_.end() || started_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      idle_executors_--;
      auto next = jobs_.begin();
      if (stop_) {
        next = started();
        if (next == jobs_.end()) return;
      }
      job = std::move(*next);
      jobs_.erase(next);
    }
    if (job.run == nullptr) job.run = StartBatch(std::move(job.plan));
    FinishBatch(*job.run);
  }
}

}  // namespace pdserve::router
