#pragma once

#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pdserve::loadgen {

// Counts of one phase's requests, shared by the sender thread, gRPC's callback threads (which
// report completions) and the thread that waits for the end and draws progress.
class CallTracker {
 public:
  struct Counts {
    int sent = 0;
    int done = 0;
    int failed = 0;
    int in_flight = 0;
    int peak_in_flight = 0;
    int64_t last_done_ns = 0;  // monotonic time of the latest completion
  };

  void OnSent();
  void OnDone(bool ok, int64_t now_ns);
  // Blocks until fewer than `limit` requests are in flight (limit <= 0: returns at once).
  void WaitForSlot(int limit);
  // Waits until `expected` requests are done or `timeout` passes; returns whether all are done.
  bool WaitAllDone(int expected, absl::Duration timeout);
  Counts Read() const;

 private:
  mutable absl::Mutex mu_;
  Counts counts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve::loadgen
