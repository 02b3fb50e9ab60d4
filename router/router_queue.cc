// RouterService: requests whose decode worker refused their allocation wait again (see
// RequeueRefusedLocked in router_service.h).
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "router/router_service.h"

namespace pdserve::router {

void RouterService::RequeueRefusedLocked(const std::shared_ptr<Request>& r,
                                         const std::string& decode_worker) {
  Request& request = *r;
  scheduler_.DecodeDone(request.id);  // the reservation the scheduler made for it
  requeued_++;
  request.allocate_refusals++;
  if (request.allocate_refusals > kMaxAllocateRefusals) {
    request.status = absl::ResourceExhaustedError(absl::StrCat(
        "request ", request.id, ": decode workers refused its KV blocks ",
        request.allocate_refusals, " times (last: ", decode_worker,
        "); the pools are fuller than the router's accounting; retry later"));
    request.phase = Phase::kFailed;
    SettledLocked(r);
    return;
  }
  ComponentLogger("router")->info(
      "request {}: decode worker {} has no room for it (refusal {} of at most {}); it waits "
      "again",
      request.id, decode_worker, request.allocate_refusals, kMaxAllocateRefusals);
  request.phase = Phase::kWaiting;
  deferred_.push_back(request.id);
}

void RouterService::RequeueDeferred() {
  absl::MutexLock lock(&mu_);
  if (deferred_.empty()) return;
  // Oldest placement first: pushed to the head last.
  for (auto it = deferred_.rbegin(); it != deferred_.rend(); ++it) {
    auto r = requests_.find(*it);
    if (r == requests_.end() || r->second->phase != Phase::kWaiting) continue;  // gone meanwhile
    const Request& request = *r->second;
    scheduler_.Requeue(PendingRequest{.id = request.id,
                                      .prompt_len = static_cast<int>(request.prompt.size()),
                                      .max_tokens = request.max_tokens});
  }
  deferred_.clear();
  KickLocked();
}

}  // namespace pdserve::router
