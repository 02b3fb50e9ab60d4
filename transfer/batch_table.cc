#include "transfer/batch_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace pdserve::transfer {

BatchTable::BatchTable(int max_inflight) : max_inflight_(max_inflight), recent_(kRecentStats) {}

absl::StatusOr<TransferId> BatchTable::Begin(uint64_t bytes, uint32_t operations) {
  const int64_t now = MonotonicNanos();
  std::lock_guard lock(mu_);
  if (inflight_ >= max_inflight_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(inflight_, " KV transfer batches in flight (the limit); wait for one"));
  }
  const TransferId id = first_id_ + window_.size();
  Entry& e = window_.emplace_back();
  e.stats.bytes = bytes;
  e.stats.operations = operations;
  e.stats.submit_ns = now;
  ++inflight_;
  ++submitted_;
  operations_ += operations;
  return id;
}

TransferId BatchTable::AddFinished(uint64_t bytes, uint32_t operations, int64_t submit_ns,
                                   absl::Status status) {
  const int64_t now = MonotonicNanos();
  std::lock_guard lock(mu_);
  const TransferId id = first_id_ + window_.size();
  Entry& e = window_.emplace_back();
  e.stats = {bytes, operations, submit_ns, now};
  e.done = true;
  ++submitted_;
  operations_ += operations;
  CountEnded(status, bytes);
  e.status = std::move(status);
  return id;
}

BatchTable::Entry* BatchTable::Find(TransferId id) {
  if (id < first_id_ || id - first_id_ >= window_.size()) return nullptr;
  Entry& e = window_[id - first_id_];
  return e.reaped ? nullptr : &e;
}

const BatchTable::Entry* BatchTable::Find(TransferId id) const {
  return const_cast<BatchTable*>(this)->Find(id);
}

void BatchTable::Complete(TransferId id, absl::Status status) {
  const int64_t now = MonotonicNanos();
  std::lock_guard lock(mu_);
  Entry* e = Find(id);
  if (e == nullptr || e->done) return;
  e->done = true;
  e->status = std::move(status);
  e->stats.complete_ns = now;
  --inflight_;
  CountEnded(e->status, e->stats.bytes);
  if (waiters_ > 0) completed_cv_.notify_all();
}

void BatchTable::CountEnded(const absl::Status& status, uint64_t bytes) {
  if (status.ok()) {
    ++completed_;
    bytes_ += bytes;
  } else {
    ++failed_;
  }
}

void BatchTable::Reap(Entry& entry, TransferId id) {
  recent_[id % kRecentStats] = {id, entry.stats};
  entry.reaped = true;
  entry.status = absl::OkStatus();
  while (!window_.empty() && window_.front().reaped) {
    window_.pop_front();
    ++first_id_;
  }
}

void BatchTable::SetCopyWait(TransferId id, int64_t ns) {
  std::lock_guard lock(mu_);
  if (Entry* e = Find(id); e != nullptr && !e->done) e->stats.copy_wait_ns = ns;
}

absl::StatusOr<bool> BatchTable::Poll(TransferId id) {
  std::lock_guard lock(mu_);
  Entry* e = Find(id);
  if (e == nullptr) {
    return absl::NotFoundError(absl::StrCat("no KV transfer batch ", id, " in flight"));
  }
  if (!e->done) return false;
  absl::Status status = std::move(e->status);
  Reap(*e, id);
  if (!status.ok()) return status;
  return true;
}

absl::Status BatchTable::Wait(TransferId id, absl::Duration timeout) {
  std::unique_lock lock(mu_);
  auto done = [&] {
    const Entry* e = Find(id);
    return e == nullptr || e->done;
  };
  if (!done()) {
    ++waiters_;
    // Clamped: steady_clock::now() + nanoseconds::max() (an infinite timeout) overflows.
    const bool finished = completed_cv_.wait_for(
        lock, absl::ToChronoNanoseconds(std::min(timeout, absl::Hours(24 * 365))), done);
    --waiters_;
    if (!finished) {
      return absl::DeadlineExceededError(absl::StrCat(
          "KV transfer batch ", id, " still in flight after ", absl::FormatDuration(timeout)));
    }
  }
  Entry* e = Find(id);
  if (e == nullptr) {
    return absl::NotFoundError(absl::StrCat("no KV transfer batch ", id, " in flight"));
  }
  absl::Status status = std::move(e->status);
  Reap(*e, id);
  return status;
}

absl::StatusOr<TransferStats> BatchTable::Stats(TransferId id) const {
  std::lock_guard lock(mu_);
  if (const Entry* e = Find(id); e != nullptr) return e->stats;
  if (const Recent& r = recent_[id % kRecentStats]; r.id == id && id != 0) return r.stats;
  return absl::NotFoundError(absl::StrCat("no stats for KV transfer batch ", id));
}

void BatchTable::FillCounters(TransportCounters& counters) const {
  std::lock_guard lock(mu_);
  counters.batches_submitted = submitted_;
  counters.batches_completed = completed_;
  counters.batches_failed = failed_;
  counters.bytes_sent = bytes_;
  counters.operations_issued = operations_;
}

}  // namespace pdserve::transfer
