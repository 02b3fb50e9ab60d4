#pragma once

#include <cstdint>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {

// The handles of one transport: which batches are in flight, how each ended, and the batch
// counters. Backends call Begin at Submit and Complete from whichever thread finishes the
// batch; callers Poll / Wait. Thread-safe.
//
// Ids are handed out in order, so a handle is an index into a sliding window rather than a
// hash-map key, and the stats of reaped batches sit in a fixed ring: no hashing and no
// allocation per batch (a 16 KiB batch copies in about 0.4 us, so per-batch bookkeeping shows).
// For the same reason the lock is a std::mutex: Debian's Abseil is built without NDEBUG, and
// its absl::Mutex keeps per-thread held-lock bookkeeping on every lock and unlock even with
// deadlock detection off (a fifth of a small batch's time in a profile of the local backend).
class BatchTable {
 public:
  explicit BatchTable(int max_inflight);

  // ResourceExhausted when max_inflight batches are still running.
  absl::StatusOr<TransferId> Begin(uint64_t bytes, uint32_t operations);
  // A batch that already ended (copied inline by Submit, submitted at `submit_ns`): one lock
  // instead of Begin + Complete. It never counts against max_inflight.
  TransferId AddFinished(uint64_t bytes, uint32_t operations, int64_t submit_ns,
                         absl::Status status);
  // First call wins; later ones (e.g. a cancel racing the completion) are ignored.
  void Complete(TransferId id, absl::Status status);
  // TransferStats::copy_wait_ns of a batch not yet completed (ignored otherwise).
  void SetCopyWait(TransferId id, int64_t ns);

  absl::StatusOr<bool> Poll(TransferId id);
  absl::Status Wait(TransferId id, absl::Duration timeout);
  absl::StatusOr<TransferStats> Stats(TransferId id) const;

  void FillCounters(TransportCounters& counters) const;

 private:
  struct Entry {
    TransferStats stats;
    bool done = false;
    bool reaped = false;  // Poll / Wait returned its outcome; its stats moved to recent_
    absl::Status status;
  };
  struct Recent {
    TransferId id = 0;
    TransferStats stats;
  };
  // The unreaped entry for `id`, or null (never issued, or already reaped).
  Entry* Find(TransferId id) ;
  const Entry* Find(TransferId id) const ;
  // The counters for a batch that ended with `status` (holding mu_).
  void CountEnded(const absl::Status& status, uint64_t bytes);
  // Hands a finished entry's stats to the recent ring and drops reaped entries off the front.
  void Reap(Entry& entry, TransferId id) ;

  static constexpr size_t kRecentStats = 4096;
  const int max_inflight_;
  mutable std::mutex mu_;
  std::condition_variable completed_cv_;  // Complete -> Wait
  int waiters_ = 0;
  // window_[i] is batch first_id_ + i; it grows at the back at Begin and shrinks at the front
  // as the oldest batches are reaped (a batch never waited for keeps the window open).
  std::deque<Entry> window_;
  TransferId first_id_ = 1;
  std::vector<Recent> recent_;  // slot id % kRecentStats
  int inflight_ = 0;
  uint64_t submitted_ = 0;
  uint64_t completed_ = 0;
  uint64_t failed_ = 0;
  uint64_t bytes_ = 0;
  uint64_t operations_ = 0;
};

}  // namespace pdserve::transfer
