#pragma once

// One item of a prefill batch on its way through RunBatch (run_batch.cc) and SettleBatch
// (settle_batch.cc). Internal to router/.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "pdserve.pb.h"
#include "router/router_service.h"
#include "service/fast_lane.h"

namespace pdserve::router {

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
  bool tracked = false;  // by gRPC (TrackRpc), not the fast lane
  grpc::ClientContext ctx;
  v1::PrefillDestinationsRequest request;
  v1::PrefillDestinationsResponse response;
  absl::Status status;
  absl::Notification done;
};

// Allocate answers as they come (alongside): indices into the batch's items.
struct RouterService::AllocateAnswers {
  absl::Mutex mu;
  std::vector<size_t> ready ABSL_GUARDED_BY(mu);
  size_t taken ABSL_GUARDED_BY(mu) = 0;

  // Runs on the thread that saw the answer, before Next() may return it.
  std::function<void(size_t)> on_answer;

  void Add(size_t index) {
    if (on_answer) on_answer(index);
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

// One prefill batch between StartBatch and FinishBatch: its calls' callbacks point into it, so
// it lives on the heap and never moves. Members are destroyed in reverse order: the calls that
// refer to `ctx` are declared after it.
struct RouterService::BatchRun {
  PrefillBatchPlan plan;  // items[].placement point into plan.items
  bool alongside = true;
  std::vector<BatchItem> items;
  std::map<std::string, absl::Status> failures;  // request id -> why
  std::set<std::string> refused;                 // no room on their decode worker: they wait again
  // Held, not looked up again: a dropped worker must still be asked to cancel.
  std::shared_ptr<Worker> prefill_worker;
  v1::PrefillBatchRequest batch;
  v1::PrefillBatchResponse response;
  grpc::ClientContext ctx;
  std::shared_ptr<service::FastLaneClient> fast;
  std::atomic<uint64_t> fast_id{0};
  std::function<void()> cancel_prefill;
  bool prefill_sent = false;
  absl::Notification answered;
  absl::Status answer;
  bool answer_came = false;  // under RouterService::mu_: PrefillAnswered ran (its last touch)
  // The threads that see the Allocate answers (ForwardAllocation) change failures, refused,
  // probe and told under `mu`; FinishBatch reads them once every answer came.
  absl::Mutex mu;
  std::set<std::string> probe;  // decode workers whose Allocate failed as if they were gone
  AllocateAnswers answers;
  std::vector<std::unique_ptr<DestinationsCall>> told;
};

}  // namespace pdserve::router
