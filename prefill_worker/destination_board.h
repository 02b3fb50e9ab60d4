#pragma once

// Destinations that follow their Prefill call (PrefillItem.destination_follows): the router asks
// the decode worker for blocks while this worker already runs the item's kernels, and posts
// the blocks (or why there are none) here through PrefillWorker.SetDestinations. The item's
// first transfer takes them; the post may come before the item itself (two calls race).
//
// Bounded: at most kMaxPending posts wait to be taken, and one nobody took within kKeep is
// dropped (its item failed or never came), so a caller cannot grow this worker's memory.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kvcache/kv_layout.h"

namespace pdserve::prefill {

class DestinationBoard {
 public:
  using Key = std::pair<std::string, uint64_t>;  // request id, decode epoch
  using Destination = absl::StatusOr<std::vector<BlockId>>;

  static constexpr size_t kMaxPending = 4096;
  static constexpr absl::Duration kKeep = absl::Seconds(120);

  // ResourceExhausted when kMaxPending posts are waiting already; AlreadyExists when the key
  // has a post waiting (the first one stands).
  absl::Status Post(const Key& key, Destination destination);
  // The key's destination, once posted (removed from the board). DeadlineExceeded after
  // `timeout`; Cancelled as soon as `stop` (checked every few milliseconds) says so.
  Destination Take(const Key& key, absl::Duration timeout, const std::function<bool()>& stop);
  // Whether the key has a post waiting (blocks or an error): Take would return at once.
  bool Has(const Key& key) const;
  size_t pending() const;

 private:
  struct Posted {
    Destination destination;
    absl::Time posted;  // SteadyNow()
  };
  void DropStaleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<Key, Posted> posts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve::prefill
