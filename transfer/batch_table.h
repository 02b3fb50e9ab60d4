#pragma once

#include <cstdint>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {

// The handles of one transport: which batches are in flight, how each ended, and the batch
// counters. Backends call Begin at Submit and Complete from whichever thread finishes the
// batch; callers Poll / Wait. Thread-safe.
class BatchTable {
 public:
  explicit BatchTable(int max_inflight) : max_inflight_(max_inflight) {}

  // ResourceExhausted when max_inflight batches are still running.
  absl::StatusOr<TransferId> Begin(uint64_t bytes, uint32_t operations);
  // First call wins; later ones (e.g. a cancel racing the completion) are ignored.
  void Complete(TransferId id, absl::Status status);

  absl::StatusOr<bool> Poll(TransferId id);
  absl::Status Wait(TransferId id, absl::Duration timeout);
  absl::StatusOr<TransferStats> Stats(TransferId id) const;

  void FillCounters(TransportCounters& counters) const;

 private:
  struct Entry {
    TransferStats stats;
    bool done = false;
    absl::Status status;
  };
  // Removes a finished entry, keeping its stats among the recent ones.
  void Reap(TransferId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static constexpr size_t kRecentStats = 4096;
  const int max_inflight_;
  mutable absl::Mutex mu_;
  TransferId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<TransferId, Entry> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TransferId, TransferStats> recent_ ABSL_GUARDED_BY(mu_);
  std::deque<TransferId> recent_order_ ABSL_GUARDED_BY(mu_);
  uint64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t completed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t operations_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace pdserve::transfer
