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
#include "router/run_batch.h"
#include "service/grpc_util.h"

namespace pdserve::router {

using service::FromGrpc;
using service::SetDeadline;


struct RouterService::DestinationsCall {
  bool sent = false;
  bool tracked = false;  // by gRPC (TrackRpc), not the fast lane
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
    std::shared_ptr<service::FastLaneClient> fast;
    {
      absl::MutexLock lock(&mu_);
      if (auto it = workers_.find(decode); it != workers_.end()) {
        stub = it->second->decode.get();
        fast = it->second->fast;
      }
    }
    v1::AllocateRequest& request = item.asked;
    request.set_request_id(item.request->id);
    request.set_prompt_len(static_cast<int32_t>(item.request->prompt.size()));
    request.set_max_tokens(item.request->max_tokens);
    request.set_epoch(item.epoch);
    if (fast != nullptr && !fast->broken()) {
      item.ctx.reset();  // the fast lane fails its calls itself when the worker is dropped
      auto answered = [&item, answers, i](absl::StatusOr<std::string> out) {
        if (out.ok() && !item.blocks.ParseFromString(*out)) {
          out = absl::InternalError("fast lane: not an AllocateResponse");
        }
        item.allocate = out.status();
        if (answers != nullptr) answers->Add(i);
      };
      if (answers != nullptr) {
        fast->Start(service::FastMethod::kAllocate, request.SerializeAsString(),
                    options_.rpc_timeout, answered);
      } else {
        answered(fast->Call(service::FastMethod::kAllocate, request.SerializeAsString(),
                            options_.rpc_timeout));
      }
      continue;
    }
    if (stub == nullptr || !TrackRpc(decode, item.ctx.get())) {
      item.ctx.reset();  // nothing to untrack
      if (answers != nullptr) answers->Add(i);
      continue;
    }
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
                                     const std::function<void()>& cancel_prefill) {
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
  if (prefill->fast != nullptr && !prefill->fast->broken()) {
    call.sent = true;
    prefill->fast->Start(service::FastMethod::kSetDestinations, request.SerializeAsString(),
                         options_.rpc_timeout,
                         [&call, cancel_prefill](absl::StatusOr<std::string> out) {
                           call.status = out.status();
                           if (!call.status.ok()) cancel_prefill();
                           call.done.Notify();
                         });
    return;
  }
  SetDeadline(call.ctx, options_.rpc_timeout);
  if (!TrackRpc(prefill->id, &call.ctx)) {
    cancel_prefill();
    return;
  }
  call.sent = true;
  call.tracked = true;
  prefill->prefill->async()->SetDestinations(
      &call.ctx, &call.request, &call.response, [&call, cancel_prefill](grpc::Status s) {
        call.status = FromGrpc(s);
        if (!call.status.ok()) cancel_prefill();
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
  absl::Status answer;
  // The Prefill call goes by the fast lane when the worker has one; cancelling it (its
  // destinations could not be sent) ends it either way.
  std::shared_ptr<service::FastLaneClient> fast =
      prefill_worker != nullptr ? prefill_worker->fast : nullptr;
  if (fast != nullptr && fast->broken()) fast = nullptr;
  std::atomic<uint64_t> fast_id{0};
  const std::function<void()> cancel_prefill = [&ctx, &fast, &fast_id] {
    if (fast != nullptr) {
      fast->Cancel(fast_id.load());
    } else {
      ctx.TryCancel();
    }
  };
  std::vector<std::unique_ptr<DestinationsCall>> told;  // they refer to `ctx`: declared after it
  if (batch.items_size() > 0 && fast != nullptr) {
    prefill_sent = true;
    fast_id = fast->Start(service::FastMethod::kPrefill, batch.SerializeAsString(),
                          options_.prefill_timeout,
                          [&answered, &answer, &response](absl::StatusOr<std::string> out) {
                            answer = out.status();
                            if (out.ok() && !response.ParseFromString(*out)) {
                              answer = absl::InternalError("fast lane: not a PrefillBatchResponse");
                            }
                            answered.Notify();
                          });
  } else if (batch.items_size() > 0 && prefill_worker != nullptr &&
             TrackRpc(plan.prefill_worker, &ctx)) {
    prefill_sent = true;
    prefill_worker->prefill->async()->Prefill(&ctx, &batch, &response,
                                              [&answered, &answer](grpc::Status s) {
                                                answer = FromGrpc(s);
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
      SendDestinations(prefill_worker, group, failures, refused, *told.back(), cancel_prefill);
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
    prefilled = answer;
    if (fast == nullptr) UntrackRpc(plan.prefill_worker, &ctx);
    for (const std::unique_ptr<DestinationsCall>& call : told) {
      if (!call->sent) continue;
      call->done.WaitForNotification();
      if (call->tracked) UntrackRpc(plan.prefill_worker, &call->ctx);
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

}  // namespace pdserve::router
