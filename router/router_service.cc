#include "router/router_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "service/grpc_util.h"
#include "common/clock.h"
#include "common/logging.h"
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
  dispatcher_ = std::thread([this] { DispatchLoop(); });
  sweeper_ = std::thread([this] { SweepLoop(); });
  for (int i = 0; i < std::max(1, options_.executor_threads); ++i) {
    executors_.emplace_back([this] { ExecutorLoop(); });
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
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stop_ || !jobs_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    RunBatch(job.plan);
  }
}

void RouterService::RunBatch(const PrefillBatchPlan& plan) {
  auto log = ComponentLogger("router");
  struct Item {
    std::shared_ptr<Request> request;
    const Placement* placement;
    bool allocated = false;
    uint64_t epoch = 0;
    int64_t allocated_us = 0;
    bool open_early = false;        // no checksum claim expected: open the stream early
    DecodeStream* early = nullptr;  // its decode stream, opened while the prefill runs
  };
  std::vector<Item> items;
  std::map<std::string, absl::Status> failures;  // request id -> why
  std::set<std::string> refused;  // no room on their decode worker: they wait again
  {
    absl::MutexLock lock(&mu_);
    for (const Placement& p : plan.items) {
      if (auto it = requests_.find(p.request_id); it != requests_.end()) {
        items.push_back(Item{it->second, &p});
      }
    }
  }
  // 1. Blocks on each item's decode worker.
  v1::PrefillBatchRequest batch;
  for (Item& item : items) {
    const std::string& id = item.request->id;
    const std::string& decode = item.placement->decode_worker;
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.rpc_timeout);
    v1::DecodeWorker::Stub* stub = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (auto it = workers_.find(decode); it != workers_.end()) stub = it->second->decode.get();
    }
    absl::Status allocated = absl::UnavailableError("it left the cluster");
    v1::AllocateResponse blocks;
    if (stub != nullptr && TrackRpc(decode, &ctx)) {
      v1::AllocateRequest request;
      request.set_request_id(id);
      request.set_prompt_len(static_cast<int32_t>(item.request->prompt.size()));
      request.set_max_tokens(item.request->max_tokens);
      allocated = FromGrpc(stub->Allocate(&ctx, request, &blocks));
      UntrackRpc(decode, &ctx);
    }
    if (allocated.code() == absl::StatusCode::kResourceExhausted) {
      refused.insert(id);  // a full pool is no fault of the worker: not counted against it
      continue;
    }
    if (!allocated.ok()) {
      if (allocated.code() == absl::StatusCode::kUnavailable ||
          allocated.code() == absl::StatusCode::kCancelled) {
        ProbeWorker(decode);
      }
      failures[id] = absl::UnavailableError(absl::StrCat(
          "request ", id, ": allocating KV blocks on decode worker ", decode, " failed: ",
          allocated.message()));
      RecordOutcome(decode, failures[id]);
      continue;
    }
    item.allocated = true;
    item.allocated_us = WallMicros();
    item.epoch = blocks.epoch();
    {
      absl::MutexLock lock(&mu_);
      item.request->decode_epoch = item.epoch;
      if (auto it = workers_.find(plan.prefill_worker); it != workers_.end()) {
        item.open_early = item.request->sink != nullptr &&
                          static_cast<int32_t>(item.request->prompt.size()) <=
                              it->second->longest_unclaimed_prompt;
      }
    }
    v1::PrefillItem* p = batch.add_items();
    p->set_request_id(id);
    p->mutable_prompt_tokens()->Assign(item.request->prompt.begin(), item.request->prompt.end());
    p->set_decode_worker_id(decode);
    *p->mutable_decode_blocks() = blocks.blocks();
    p->set_decode_epoch(blocks.epoch());
  }
  // 2. Prefill (kernels + KV transfer) of the items that have blocks.
  std::map<std::string, v1::PrefillItemResult> results;
  // Held, not looked up again: a dropped worker must still be asked to cancel.
  std::shared_ptr<Worker> prefill_worker;
  bool prefill_sent = false;
  if (batch.items_size() > 0) {
    grpc::ClientContext ctx;
    SetDeadline(ctx, options_.prefill_timeout);
    {
      absl::MutexLock lock(&mu_);
      if (auto it = workers_.find(plan.prefill_worker); it != workers_.end()) {
        prefill_worker = it->second;
      }
    }
    absl::Status prefilled = absl::UnavailableError("it left the cluster");
    v1::PrefillBatchResponse response;
    if (prefill_worker != nullptr && TrackRpc(plan.prefill_worker, &ctx)) {
      prefill_sent = true;
      absl::Notification answered;
      grpc::Status answer;
      prefill_worker->prefill->async()->Prefill(&ctx, &batch, &response,
                                                [&answered, &answer](grpc::Status s) {
                                                  answer = std::move(s);
                                                  answered.Notify();
                                                });
      // Early decode streams (router_service.h) open once the Prefill call is on its way, so
      // that their set-up does not delay it; they wait for the KV while the prefill runs.
      for (Item& item : items) {
        if (item.allocated && item.open_early) item.early = OpenEarlyStream(item.request);
      }
      answered.WaitForNotification();
      prefilled = FromGrpc(answer);
      UntrackRpc(plan.prefill_worker, &ctx);
    }
    if (prefilled.ok()) {
      if (std::optional<absl::Status> verdict = PrefillVerdict(response)) {
        RecordOutcome(plan.prefill_worker, *verdict);
      }
      for (v1::PrefillItemResult& r : *response.mutable_results()) {
        results[r.request_id()] = std::move(r);
      }
      // What this worker claims (Worker::longest_unclaimed_prompt).
      absl::MutexLock lock(&mu_);
      for (const Item& item : items) {
        auto r = results.find(item.request->id);
        if (r == results.end() || !r->second.ok() || r->second.has_kv_checksum()) continue;
        prefill_worker->longest_unclaimed_prompt =
            std::max(prefill_worker->longest_unclaimed_prompt,
                     static_cast<int32_t>(item.request->prompt.size()));
      }
    } else {
      if (prefill_sent) RecordOutcome(plan.prefill_worker, prefilled);
      if (prefilled.code() == absl::StatusCode::kUnavailable ||
          prefilled.code() == absl::StatusCode::kCancelled) {
        ProbeWorker(plan.prefill_worker);
      }
      for (const v1::PrefillItem& p : batch.items()) {
        failures[p.request_id()] = absl::UnavailableError(
            absl::StrCat("request ", p.request_id(), ": prefill worker ", plan.prefill_worker,
                         " failed: ", prefilled.message()));
      }
    }
  }
  // 3. Outcomes. A failed item's decode blocks are released before the request is failed, with
  // what is known of its writer: an item the prefill worker reported as ended will not write;
  // for the others (the call failed or timed out) the worker is asked to cancel them first.
  std::vector<v1::PrefillCancelItem> unsure;
  for (Item& item : items) {
    const std::string& id = item.request->id;
    if (refused.contains(id)) continue;
    if (!failures.contains(id)) {
      auto r = results.find(id);
      if (r == results.end()) {
        failures[id] = absl::InternalError(absl::StrCat(
            "request ", id, ": prefill worker ", plan.prefill_worker, " returned no result"));
      } else if (!r->second.ok()) {
        failures[id] = absl::Status(static_cast<absl::StatusCode>(r->second.error_code()),
                                    r->second.error());
      }
    }
    auto r = results.find(id);
    if (item.allocated && failures.contains(id) &&
        (r == results.end() || r->second.transfer_in_flight())) {
      v1::PrefillCancelItem* cancel = &unsure.emplace_back();
      cancel->set_request_id(id);
      cancel->set_decode_epoch(item.epoch);
    }
  }
  // The items that succeeded go on to decode first: they must not wait for the fence of the
  // failed ones (a Cancel that a stalled worker answers late).
  for (Item& item : items) {
    const std::string& id = item.request->id;
    if (refused.contains(id) || failures.contains(id)) continue;
    const v1::PrefillItemResult& r = results.at(id);
    absl::ReleasableMutexLock lock(&mu_);
    v1::RequestTimeline& t = item.request->timeline;
    t.set_allocated_us(item.allocated_us);
    RecordPrefillResult(r, t);
    if (r.transfer_backend().empty()) {
      if (auto w = workers_.find(item.placement->decode_worker); w != workers_.end()) {
        t.set_transfer_backend(w->second->kv_pool.transfer_backend());
      }
    }
    item.request->decode_epoch = item.epoch;
    // A claim for a stream opened early is dropped: the decode worker reads the KV itself.
    if (r.has_kv_checksum()) item.request->kv_checksum = r.kv_checksum();
    item.request->phase = Phase::kReady;
    if (item.early == nullptr) {
      SettledLocked(item.request);
      continue;
    }
    lock.Release();
    SettleEarlyStream(std::exchange(item.early, nullptr), true);
  }
  // Failed items' early streams end now, before their blocks are released (below): the decode
  // worker stops waiting for KV that may never come.
  for (Item& item : items) {
    if (item.early != nullptr) CancelEarlyStream(item.early);
  }
  const std::set<std::string> fenced =
      prefill_sent ? FenceOnPrefill(prefill_worker, unsure) : std::set<std::string>();
  for (Item& item : items) {
    const std::string& id = item.request->id;
    if (refused.contains(id)) {
      absl::MutexLock lock(&mu_);
      RequeueRefusedLocked(item.request, item.placement->decode_worker);
      continue;
    }
    if (auto f = failures.find(id); f != failures.end()) {
      if (item.allocated) {
        KvRelease release{.epoch = item.epoch};
        // Never sent (the worker was gone before the call), or fenced by the worker's answer.
        const bool unsure_item =
            std::any_of(unsure.begin(), unsure.end(),
                        [&id](const v1::PrefillCancelItem& c) { return c.request_id() == id; });
        release.writer_fenced = !prefill_sent || !unsure_item || fenced.contains(id);
        if (prefill_worker != nullptr) {
          release.writer = prefill_worker->id;
          release.writer_pid = prefill_worker->pid;
          release.writer_address = prefill_worker->address;
        }
        ReleaseOnDecode(item.placement->decode_worker, id, release);
      }
      absl::ReleasableMutexLock lock(&mu_);
      scheduler_.DecodeDone(id);
      item.request->status = f->second;
      item.request->phase = Phase::kFailed;
      if (item.early == nullptr) {
        SettledLocked(item.request);
        continue;
      }
      lock.Release();
      // The stream's end fails the request (DecodeStream::End), as SettledLocked would.
      SettleEarlyStream(std::exchange(item.early, nullptr), false);
    }
  }
  absl::MutexLock lock(&mu_);
  scheduler_.PrefillDone(plan.batch_id);
  KickLocked();
}

}  // namespace pdserve::router
