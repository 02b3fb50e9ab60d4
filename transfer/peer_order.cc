#include "transfer/peer_order.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace pdserve::transfer {

void PeerOrder::Enter(TransferId id) {
  std::lock_guard lock(mu_);
  entries_.push_back(Entry{.id = id});
  unfinished_.fetch_add(1, std::memory_order_acq_rel);
}

void PeerOrder::Landed(BatchTable& table, TransferId id, std::function<absl::Status()> finish) {
  std::unique_lock lock(mu_);
  for (Entry& e : entries_) {
    if (e.id == id) {
      e.landed = true;
      e.finish = std::move(finish);
      break;
    }
  }
  // One thread ends batches at a time, so notifications leave in entry order; the others only
  // mark theirs landed and leave it to that thread, which looks at the front again before it
  // stops.
  if (draining_) return;
  draining_ = true;
  while (!entries_.empty() && entries_.front().landed) {
    Entry e = std::move(entries_.front());
    entries_.pop_front();
    const bool own = e.earlier_failure.ok();
    // Outside the lock: finish may write to a socket, and Enter must not wait for that.
    lock.unlock();
    absl::Status status = own ? e.finish() : std::move(e.earlier_failure);
    e.finish = nullptr;
    lock.lock();
    if (!status.ok()) {
      // Every batch entered so far is behind this one: none of them may announce its bytes.
      // Marked under the same lock hold as the completion below, so a batch entered after it
      // was entered after this one ended (a caller that saw it in flight sees it marked).
      const absl::Status earlier =
          own ? absl::Status(status.code(), absl::StrCat("KV batch ", e.id,
                                                         " to the same peer, submitted before "
                                                         "this one, failed: ",
                                                         status.message()))
              : status;
      for (Entry& later : entries_) {
        if (later.earlier_failure.ok()) later.earlier_failure = earlier;
      }
    }
    table.Complete(e.id, std::move(status));
    unfinished_.fetch_sub(1, std::memory_order_acq_rel);
  }
  draining_ = false;
}

}  // namespace pdserve::transfer
