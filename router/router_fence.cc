// RouterService: fencing the KV of abandoned requests. A decode reservation is released only with
// what the router knows about its writer: the prefill worker's Cancel answer tells whether the
// item can still write; the decode worker quarantines the blocks of a writer that may.
#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "router/router_service.h"
#include "service/grpc_util.h"

namespace pdserve::router {

using service::SetDeadline;

std::set<std::string> RouterService::FenceOnPrefill(
    const std::shared_ptr<Worker>& prefill, const std::vector<v1::PrefillCancelItem>& items) {
  std::set<std::string> fenced;
  if (items.empty() || prefill == nullptr || !prefill->prefill) return fenced;
  v1::PrefillCancelRequest request;
  for (const v1::PrefillCancelItem& item : items) *request.add_items() = item;
  v1::PrefillCancelResponse response;
  grpc::ClientContext ctx;
  // The worker waits for submitted transfers to end, within this deadline: no longer than a
  // transfer may take (transfer_timeout), since an unanswered Cancel only leaves the blocks
  // quarantined (safe), while the requests of the batch wait for this answer.
  SetDeadline(ctx, std::clamp(options_.transfer_timeout, absl::Seconds(1), options_.rpc_timeout));
  // Tracked while the worker is registered, so that dropping it cancels the call; a dropped
  // worker is still asked: it may be alive (stopped, cut off) and able to write.
  const bool tracked = TrackRpc(prefill->id, &ctx);
  grpc::Status cancelled = prefill->prefill->Cancel(&ctx, request, &response);
  if (tracked) UntrackRpc(prefill->id, &ctx);
  auto log = ComponentLogger("router");
  if (!cancelled.ok()) {
    log->warn("cancelling {} abandoned items on prefill worker {} failed ({}); their decode "
              "blocks stay quarantined until the writer is fenced",
              items.size(), prefill->id, cancelled.error_message());
    return fenced;
  }
  for (const v1::PrefillCancelResult& r : response.results()) {
    const bool will_not_write = r.outcome() != v1::PREFILL_CANCEL_IN_FLIGHT &&
                                r.outcome() != v1::PREFILL_CANCEL_UNSPECIFIED;
    log->info("request {}: prefill worker {} answered {} to its cancel", r.request_id(),
              prefill->id, v1::PrefillCancelOutcome_Name(r.outcome()));
    if (will_not_write) fenced.insert(r.request_id());
  }
  return fenced;
}

void RouterService::ReleaseOnDecode(const std::string& worker, const std::string& request_id,
                                    const KvRelease& how) {
  std::shared_ptr<Worker> w;
  {
    absl::MutexLock lock(&mu_);
    auto it = workers_.find(worker);
    if (it == workers_.end()) return;  // gone: its blocks went with it
    w = it->second;
  }
  grpc::ClientContext ctx;
  SetDeadline(ctx, options_.rpc_timeout);
  v1::ReleaseRequest release;
  release.set_request_id(request_id);
  release.set_epoch(how.epoch);
  release.set_writer_fenced(how.writer_fenced);
  release.set_writer_worker_id(how.writer);
  release.set_writer_pid(how.writer_pid);
  release.set_writer_address(how.writer_address);
  v1::ReleaseResponse ignored;
  if (!TrackRpc(worker, &ctx)) return;
  grpc::Status released = w->decode->Release(&ctx, release, &ignored);
  UntrackRpc(worker, &ctx);
  if (!released.ok()) {
    ComponentLogger("router")->warn("request {}: release on {} failed: {}", request_id, worker,
                                    released.error_message());
  }
}

}  // namespace pdserve::router
