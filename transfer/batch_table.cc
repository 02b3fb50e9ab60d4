#include "transfer/batch_table.h"

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace pdserve::transfer {

absl::StatusOr<TransferId> BatchTable::Begin(uint64_t bytes, uint32_t operations) {
  absl::MutexLock lock(&mu_);
  if (inflight_ >= max_inflight_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(inflight_, " KV transfer batches in flight (the limit); wait for one"));
  }
  const TransferId id = next_id_++;
  Entry& e = entries_[id];
  e.stats.bytes = bytes;
  e.stats.operations = operations;
  e.stats.submit_ns = MonotonicNanos();
  ++inflight_;
  ++submitted_;
  operations_ += operations;
  return id;
}

void BatchTable::Complete(TransferId id, absl::Status status) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.done) return;
  it->second.done = true;
  it->second.status = std::move(status);
  it->second.stats.complete_ns = MonotonicNanos();
  --inflight_;
  if (it->second.status.ok()) {
    ++completed_;
    bytes_ += it->second.stats.bytes;
  } else {
    ++failed_;
  }
}

void BatchTable::Reap(TransferId id) {
  auto it = entries_.find(id);
  recent_[id] = it->second.stats;
  recent_order_.push_back(id);
  if (recent_order_.size() > kRecentStats) {
    recent_.erase(recent_order_.front());
    recent_order_.pop_front();
  }
  entries_.erase(it);
}

absl::StatusOr<bool> BatchTable::Poll(TransferId id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("no KV transfer batch ", id, " in flight"));
  }
  if (!it->second.done) return false;
  absl::Status status = it->second.status;
  Reap(id);
  if (!status.ok()) return status;
  return true;
}

absl::Status BatchTable::Wait(TransferId id, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    auto it = entries_.find(id);
    return it == entries_.end() || it->second.done;
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("KV transfer batch ", id, " still in flight after ",
                                                    absl::FormatDuration(timeout)));
  }
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("no KV transfer batch ", id, " in flight"));
  }
  absl::Status status = it->second.status;
  Reap(id);
  return status;
}

absl::StatusOr<TransferStats> BatchTable::Stats(TransferId id) const {
  absl::MutexLock lock(&mu_);
  if (auto it = entries_.find(id); it != entries_.end()) return it->second.stats;
  if (auto it = recent_.find(id); it != recent_.end()) return it->second;
  return absl::NotFoundError(absl::StrCat("no stats for KV transfer batch ", id));
}

void BatchTable::FillCounters(TransportCounters& counters) const {
  absl::MutexLock lock(&mu_);
  counters.batches_submitted = submitted_;
  counters.batches_completed = completed_;
  counters.batches_failed = failed_;
  counters.bytes_sent = bytes_;
  counters.operations_issued = operations_;
}

}  // namespace pdserve::transfer
