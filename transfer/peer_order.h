#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>

#include "absl/status/status.h"
#include "transfer/batch_table.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {

// Ends one peer's batches in submission order, which is what lets a notification cover every
// batch sent to that peer before it (kv_transport.h, "Ordering"): a backend whose batches can
// land out of order (local's copy threads split and interleave large batches) enters each one
// here at Submit and reports it Landed when its bytes are in place. A batch's `finish` (which
// sends its notification) runs only once every batch entered before it ended, one at a time,
// in entry order; a batch behind one that failed does not run `finish` and ends with that
// failure instead. Then the batch is completed in the table.
//
// A batch that finds the peer Idle() may skip all of this (local copies small batches inline
// and completes them inside Submit): one atomic load is all the fast path pays.
//
// Thread-safe. The backend keeps this object (and the table) alive until every batch entered
// here has Landed.
class PeerOrder {
 public:
  PeerOrder() = default;
  PeerOrder(const PeerOrder&) = delete;
  PeerOrder& operator=(const PeerOrder&) = delete;

  // True when every batch entered here has ended: a batch submitted now waits for nothing.
  bool Idle() const { return unfinished_.load(std::memory_order_acquire) == 0; }

  // Enters batch `id` (already Begun in the table) behind every batch entered before it. Call
  // it in Submit, before Submit returns, so that entry order is submission order.
  void Enter(TransferId id);

  // The bytes of `id` are in place (or it stopped short: `finish` then returns its error).
  // Runs `finish` and completes `id` in `table`, and those of the batches behind it that had
  // landed, unless a batch ahead of it is still in flight: then whichever call ends that one
  // does it. May run on any thread, including inside Submit.
  void Landed(BatchTable& table, TransferId id, std::function<absl::Status()> finish);

 private:
  struct Entry {
    TransferId id = 0;
    bool landed = false;
    std::function<absl::Status()> finish;
    // Set when a batch entered before this one failed: this one ends with it, unsent.
    absl::Status earlier_failure;
  };

  std::mutex mu_;  // std::mutex, as BatchTable's: absl::Mutex's debug bookkeeping shows per batch
  std::deque<Entry> entries_;  // entered and not yet ended, in entry order
  bool draining_ = false;      // a Landed call is ending batches off the front
  std::atomic<int> unfinished_{0};
};

}  // namespace pdserve::transfer
