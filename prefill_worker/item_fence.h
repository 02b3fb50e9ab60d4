#pragma once

// Which prefill items may still write into a decode worker's blocks, so that the router can fence
// the items it gave up on (PrefillWorker.Cancel) before the decode worker reuses their blocks.
// An item is named by (request id, decode epoch). Its life on this worker:
//   Admit (its Prefill RPC arrived) -> BeginSubmit (false: cancelled, submit nothing) -> Finish
// Cancel answers whether an item's bytes can still land. An item not seen yet is remembered as
// cancelled and refused by Admit if it arrives later (the Prefill RPC may be overtaken by the
// Cancel); a submitted item is waited for, up to a deadline. Ended and cancelled items are
// remembered, the last `remembered` of them, to answer late Cancels and refuse replays.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pdserve::prefill {

enum class CancelOutcome {
  kNotStarted,  // never seen here: refused if it comes
  kCancelled,   // stopped before its transfer was submitted
  kCompleted,   // its transfer completed: every byte landed, the notification was sent
  kFailed,      // it ended in error, before or during its transfer: nothing more will land
  kInFlight,    // submitted and not ended (or its end unknown yet): bytes may still land
};

class ItemFence {
 public:
  using Key = std::pair<std::string, uint64_t>;  // request id, decode epoch

  explicit ItemFence(size_t remembered = 4096) : remembered_(remembered) {}

  // The item is about to run. FailedPrecondition when it was cancelled before it arrived;
  // AlreadyExists when it is running or ran (a replay must not write the blocks again).
  absl::Status Admit(const Key& key);
  bool Cancelled(const Key& key) const;
  // Its transfer is about to be submitted: false when it was cancelled (submit nothing).
  bool BeginSubmit(const Key& key);
  // The item ended. `submitted`: BeginSubmit returned true; `in_flight`: its transfer had not
  // ended when the worker stopped waiting (Finish again once it does).
  void Finish(const Key& key, bool submitted, bool ok, bool in_flight);
  // Fences the item (see above), waiting up to `wait` for a submitted transfer to end.
  CancelOutcome Cancel(const Key& key, absl::Duration wait);

 private:
  enum class State { kAdmitted, kSubmitted, kCancelled, kCompleted, kFailed, kInFlight };
  void RememberLocked(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t remembered_;
  mutable absl::Mutex mu_;
  std::map<Key, State> items_ ABSL_GUARDED_BY(mu_);
  std::deque<Key> ended_ ABSL_GUARDED_BY(mu_);  // oldest first; forgotten beyond remembered_
};

}  // namespace pdserve::prefill
