// After a batch's Prefill call: which items go on to decode, wait again or fail, and the
// fencing of failed items' writers before their decode blocks are released.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/wire_status.h"
#include "router/prefill_timeline.h"
#include "router/router_service.h"
#include "router/run_batch.h"

namespace pdserve::router {

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
        // The worker's word on a failure: never OK, whatever code it sent.
        failures[id] = absl::Status(FailureCodeFromWire(r->second.error_code()),
                                    r->second.error().empty() ? "prefill failed"
                                                              : r->second.error());
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
