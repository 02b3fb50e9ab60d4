// One prefill batch: decode blocks for each item, the Prefill call, and what its outcome means
// for every item (router_service.h, "Request flow").
//
// Where the decode blocks come from (RouterOptions::allocate_alongside_prefill):
//   - alongside (default): the Allocate calls and the Prefill call leave together. The router
//     picks each item's decode epoch, so the prefill worker's fence knows the item from the
//     start; the blocks follow in one SetDestinations call once every Allocate answered, while
//     the kernels run. The first token no longer waits for an Allocate round trip before the
//     prefill can start (issue 15: ~0.25-0.4 ms of the control plane's ~0.85 ms on a CPU host).
//     An item whose decode worker had no room (or could not be asked) is told so instead: it
//     sends nothing and the request waits again (or fails) as below.
//   - first: Allocate calls one after the other, then the Prefill call with the blocks.
// Both end the same way: only blocks granted by an Allocate the router saw answer are ever
// sent to the prefill worker, so an item whose Allocate failed writes nothing anywhere.

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/logging.h"
#include "router/prefill_timeline.h"
#include "router/router_service.h"
#include "service/grpc_util.h"

namespace pdserve::router {

using service::FromGrpc;
using service::SetDeadline;

struct RouterService::BatchItem {
  std::shared_ptr<Request> request;
  const Placement* placement;
  bool allocated = false;
  uint64_t epoch = 0;  // chosen here (alongside), or the decode worker's (first)
  int64_t allocated_us = 0;
  bool open_early = false;        // no checksum claim expected: open the stream early
  DecodeStream* early = nullptr;  // its decode stream, opened while the prefill runs
  // The Allocate call.
  std::unique_ptr<grpc::ClientContext> ctx;
  v1::AllocateRequest asked;  // lives until the call ends (the callback API reads it then)
  v1::AllocateResponse blocks;
  absl::Status allocate = absl::UnavailableError("it left the cluster");
};

struct RouterService::DestinationsCall {
  bool sent = false;
  grpc::ClientContext ctx;
  v1::PrefillDestinationsRequest request;
  v1::PrefillDestinationsResponse response;
  absl::Status status;
  absl::Notification done;
};

namespace {

// Epochs the router picks: random, so that a restarted router does not reuse its predecessor's
// on a decode worker that still quarantines them (a collision is refused there, AlreadyExists).
uint64_t NewDecodeEpoch() {
  thread_local std::mt19937_64 bits{std::random_device{}()};
  return (bits() >> 2) | 1;  // never 0
}

}  // namespace

// Allocate answers as they come (alongside): indices into the batch's items.
struct RouterService::AllocateAnswers {
  absl::Mutex mu;
  std::vector<size_t> ready ABSL_GUARDED_BY(mu);
  size_t taken ABSL_GUARDED_BY(mu) = 0;

  void Add(size_t index) {
    absl::MutexLock lock(&mu);
    ready.push_back(index);
  }
  // Those not taken yet, once there is at least one.
  std::vector<size_t> Next() {
    absl::MutexLock lock(&mu);
    auto more = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return ready.size() > taken; };
    mu.Await(absl::Condition(&more));
    std::vector<size_t> out(ready.begin() + static_cast<std::ptrdiff_t>(taken), ready.end());
    taken = ready.size();
    return out;
  }
};

void RouterService::AllocateItems(std::vector<BatchItem>& items, AllocateAnswers* answers) {
  for (size_t i = 0; i < items.size(); ++i) {
    BatchItem& item = items[i];
    const std::string& decode = item.placement->decode_worker;
    item.ctx = std::make_unique<grpc::ClientContext>();
    SetDeadline(*item.ctx, options_.rpc_timeout);
    v1::DecodeWorker::Stub* stub = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (auto it = workers_.find(decode); it != workers_.end()) stub = it->second->decode.get();
    }
    if (stub == nullptr || !TrackRpc(decode, item.ctx.get())) {
      item.ctx.reset();  // nothing to untrack
      if (answers != nullptr) answers->Add(i);
      continue;
    }
    v1::AllocateRequest& request = item.asked;
    request.set_request_id(item.request->id);
    request.set_prompt_len(static_cast<int32_t>(item.request->prompt.size()));
    request.set_max_tokens(item.request->max_tokens);
    request.set_epoch(item.epoch);
    if (answers == nullptr) {
      item.allocate = FromGrpc(stub->Allocate(item.ctx.get(), request, &item.blocks));
      UntrackRpc(decode, item.ctx.get());
      item.ctx.reset();
      continue;
    }
    stub->async()->Allocate(item.ctx.get(), &request, &item.blocks,
                            [&item, answers, i](grpc::Status s) {
                              item.allocate = FromGrpc(s);
                              answers->Add(i);
                            });
  }
}

void RouterService::NoteAllocation(const std::string& prefill_worker, BatchItem& item,
                                   std::map<std::string, absl::Status>& failures,
                                   std::set<std::string>& refused) {
  const std::string& id = item.request->id;
  const std::string& decode = item.placement->decode_worker;
  if (item.ctx != nullptr) {  // an asynchronous call that ended
    UntrackRpc(decode, item.ctx.get());
    item.ctx.reset();
  }
  const absl::Status& allocated = item.allocate;
  if (allocated.code() == absl::StatusCode::kResourceExhausted) {
    refused.insert(id);  // a full pool is no fault of the worker: not counted against it
    return;
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
    return;
  }
  if (item.epoch != 0 && item.blocks.epoch() != item.epoch) {
    // The worker ignored the epoch the router chose (an older build): the prefill worker
    // would name the wrong reservation, so nothing may be written. Released below as failed.
    failures[id] = absl::FailedPreconditionError(absl::StrCat(
        "request ", id, ": decode worker ", decode, " granted epoch ", item.blocks.epoch(),
        " instead of ", item.epoch));
    item.allocated = true;
    item.epoch = item.blocks.epoch();
    return;
  }
  item.allocated = true;
  item.allocated_us = WallMicros();
  item.epoch = item.blocks.epoch();
  absl::MutexLock lock(&mu_);
  item.request->decode_epoch = item.epoch;
  if (auto it = workers_.find(prefill_worker); it != workers_.end()) {
    item.open_early = item.request->sink != nullptr &&
                      static_cast<int32_t>(item.request->prompt.size()) <=
                          it->second->longest_unclaimed_prompt;
  }
}

void RouterService::SendDestinations(const std::shared_ptr<Worker>& prefill,
                                     const std::vector<BatchItem*>& items,
                                     const std::map<std::string, absl::Status>& failures,
                                     const std::set<std::string>& refused, DestinationsCall& call,
                                     grpc::ClientContext* prefill_call) {
  v1::PrefillDestinationsRequest& request = call.request;
  for (const BatchItem* item : items) {
    const std::string& id = item->request->id;
    v1::PrefillDestination* d = request.add_items();
    d->set_request_id(id);
    d->set_decode_epoch(item->epoch);
    // Unavailable: the prefill worker's verdict (PrefillVerdict) does not count it against
    // the prefill worker, whose fault it is not.
    if (refused.contains(id)) {
      d->set_error(absl::StrCat("decode worker ", item->placement->decode_worker,
                                " has no room for it now (the request waits again)"));
      d->set_error_code(static_cast<int32_t>(absl::StatusCode::kUnavailable));
    } else if (auto f = failures.find(id); f != failures.end()) {
      d->set_error(std::string(f->second.message()));
      d->set_error_code(static_cast<int32_t>(absl::StatusCode::kUnavailable));
    } else {
      *d->mutable_decode_blocks() = item->blocks.blocks();
    }
  }
  SetDeadline(call.ctx, options_.rpc_timeout);
  if (!TrackRpc(prefill->id, &call.ctx)) {
    prefill_call->TryCancel();
    return;
  }
  call.sent = true;
  prefill->prefill->async()->SetDestinations(
      &call.ctx, &call.request, &call.response, [&call, prefill_call](grpc::Status s) {
        call.status = FromGrpc(s);
        if (!call.status.ok()) prefill_call->TryCancel();
        call.done.Notify();
      });
}

void RouterService::RunBatch(const PrefillBatchPlan& plan) {
  auto log = ComponentLogger("router");
  std::vector<BatchItem> items;
  std::map<std::string, absl::Status> failures;  // request id -> why
  std::set<std::string> refused;  // no room on their decode worker: they wait again
  const bool alongside = options_.allocate_alongside_prefill;
  // Held, not looked up again: a dropped worker must still be asked to cancel.
  std::shared_ptr<Worker> prefill_worker;
  {
    absl::MutexLock lock(&mu_);
    for (const Placement& p : plan.items) {
      if (auto it = requests_.find(p.request_id); it != requests_.end()) {
        items.push_back(BatchItem{.request = it->second, .placement = &p});
        if (alongside) items.back().epoch = NewDecodeEpoch();
      }
    }
    if (auto it = workers_.find(plan.prefill_worker); it != workers_.end()) {
      prefill_worker = it->second;
    }
  }
  // 1. Allocate first: blocks on each item's decode worker before the Prefill call.
  if (!alongside) {
    AllocateItems(items, nullptr);
    for (BatchItem& item : items) NoteAllocation(plan.prefill_worker, item, failures, refused);
  }
  v1::PrefillBatchRequest batch;
  for (BatchItem& item : items) {
    const std::string& id = item.request->id;
    if (!alongside && (!item.allocated || failures.contains(id))) continue;
    v1::PrefillItem* p = batch.add_items();
    p->set_request_id(id);
    p->mutable_prompt_tokens()->Assign(item.request->prompt.begin(), item.request->prompt.end());
    p->set_decode_worker_id(item.placement->decode_worker);
    p->set_decode_epoch(item.epoch);
    if (alongside) {
      p->set_destination_follows(true);
    } else {
      *p->mutable_decode_blocks() = item.blocks.blocks();
    }
  }
  // 2. Prefill (kernels + KV transfer); alongside, the Allocate calls and the destinations.
  std::map<std::string, v1::PrefillItemResult> results;
  bool prefill_sent = false;
  absl::Status prefilled = absl::UnavailableError("it left the cluster");
  v1::PrefillBatchResponse response;
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.prefill_timeout);
  absl::Notification answered;
  grpc::Status answer;
  std::vector<std::unique_ptr<DestinationsCall>> told;  // they refer to `ctx`: declared after it
  if (batch.items_size() > 0 && prefill_worker != nullptr &&
      TrackRpc(plan.prefill_worker, &ctx)) {
    prefill_sent = true;
    prefill_worker->prefill->async()->Prefill(&ctx, &batch, &response,
                                              [&answered, &answer](grpc::Status s) {
                                                answer = std::move(s);
                                                answered.Notify();
                                              });
  }
  if (alongside) {
    // Each answer's destination goes out as it comes: a decode worker that does not answer
    // (stopped, dying) holds up only its own items, whose wait the Allocate's deadline or the
    // worker's drop ends; the other items' transfers do not wait for it.
    AllocateAnswers answers;
    AllocateItems(items, &answers);
    for (size_t handled = 0; handled < items.size();) {
      std::vector<BatchItem*> group;
      for (size_t i : answers.Next()) {
        NoteAllocation(plan.prefill_worker, items[i], failures, refused);
        // Off the first token's path: no "allocate" stage in the timeline (ttft_stages.h).
        items[i].allocated_us = 0;
        group.push_back(&items[i]);
        handled++;
      }
      if (!prefill_sent) continue;
      // A failed call ends the Prefill call: its items then fail below and are fenced like
      // those of any failed call.
      told.push_back(std::make_unique<DestinationsCall>());
      SendDestinations(prefill_worker, group, failures, refused, *told.back(), &ctx);
      // Early decode streams (router_service.h) open once the Prefill call and their
      // destinations are on their way, so that their set-up does not delay them.
      for (BatchItem* item : group) {
        if (item->allocated && item->open_early && !failures.contains(item->request->id)) {
          item->early = OpenEarlyStream(item->request);
        }
      }
    }
  } else if (prefill_sent) {
    for (BatchItem& item : items) {
      if (item.allocated && item.open_early) item.early = OpenEarlyStream(item.request);
    }
  }
  if (prefill_sent) {
    answered.WaitForNotification();
    prefilled = FromGrpc(answer);
    UntrackRpc(plan.prefill_worker, &ctx);
    for (const std::unique_ptr<DestinationsCall>& call : told) {
      if (!call->sent) continue;
      call->done.WaitForNotification();
      UntrackRpc(plan.prefill_worker, &call->ctx);
      if (!call->status.ok()) {
        log->warn("prefill worker {}: sending decode blocks of batch {} failed: {}",
                  plan.prefill_worker, plan.batch_id, call->status.ToString());
      }
    }
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
    for (const BatchItem& item : items) {
      auto r = results.find(item.request->id);
      if (r == results.end() || !r->second.ok() || r->second.has_kv_checksum()) continue;
      prefill_worker->longest_unclaimed_prompt =
          std::max(prefill_worker->longest_unclaimed_prompt,
                   static_cast<int32_t>(item.request->prompt.size()));
    }
  } else if (batch.items_size() > 0) {
    if (prefill_sent) RecordOutcome(plan.prefill_worker, prefilled);
    if (prefilled.code() == absl::StatusCode::kUnavailable ||
        prefilled.code() == absl::StatusCode::kCancelled) {
      ProbeWorker(plan.prefill_worker);
    }
    for (const v1::PrefillItem& p : batch.items()) {
      if (failures.contains(p.request_id()) || refused.contains(p.request_id())) continue;
      failures[p.request_id()] = absl::UnavailableError(
          absl::StrCat("request ", p.request_id(), ": prefill worker ", plan.prefill_worker,
                       " failed: ", prefilled.message()));
    }
  }
  SettleBatch(plan, prefill_worker, prefill_sent, items, results, failures, refused);
}

void RouterService::SettleBatch(const PrefillBatchPlan& plan,
                                const std::shared_ptr<Worker>& prefill_worker, bool prefill_sent,
                                std::vector<BatchItem>& items,
                                const std::map<std::string, v1::PrefillItemResult>& results,
                                std::map<std::string, absl::Status>& failures,
                                const std::set<std::string>& refused) {
  // 3. Outcomes. A failed item's decode blocks are released before the request is failed, with
  // what is known of its writer: an item the prefill worker reported as ended will not write;
  // for the others (the call failed or timed out) the worker is asked to cancel them first.
  std::vector<v1::PrefillCancelItem> unsure;
  for (BatchItem& item : items) {
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
  for (BatchItem& item : items) {
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
  for (BatchItem& item : items) {
    if (item.early != nullptr) CancelEarlyStream(item.early);
  }
  const std::set<std::string> fenced =
      prefill_sent ? FenceOnPrefill(prefill_worker, unsure) : std::set<std::string>();
  for (BatchItem& item : items) {
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
