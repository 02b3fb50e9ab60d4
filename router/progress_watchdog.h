#pragma once

// Bounds how long a decode stream may go without a token. A decode worker whose heartbeat
// thread lives while its engine is stuck is never dropped for silence, and its streams would
// hold their requests until the stream deadline (transfer + decode timeouts: 630 s). The router
// watches every stream: no token within `first_token` of the start (which includes the wait for
// the prompt's KV) or within `next_token` of the previous token, and the stream is cancelled and
// reported stalled, so the router fails the request with DeadlineExceeded naming the worker and
// counts a failure against it.
//
// Usage: StreamDecode holds a Watch for the stream's life and calls Progress() on every chunk;
// the router's sweeper calls Sweep(now) periodically. Plain state, no clock of its own.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace pdserve::router {

class ProgressWatchdog {
 public:
  struct Stalled {
    std::string request_id;
    std::string worker;
    absl::Duration silent;  // since the start or the last token
  };

  // One watched stream; unregisters on destruction. Progress() is lock-free (called per chunk).
  class Watch {
   public:
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;
    // A token arrived at `now`.
    void Progress(absl::Time now);
    // True once Sweep cancelled the stream for lack of progress.
    bool stalled() const { return entry_->stalled.load(); }

   private:
    friend class ProgressWatchdog;
    struct Entry {
      std::string request_id;
      std::string worker;
      std::function<void()> cancel;
      absl::Duration next_token;
      std::atomic<int64_t> last_us;      // start or last token (Unix micros)
      std::atomic<int64_t> deadline_us;  // no token by then: stalled
      std::atomic<bool> stalled{false};
    };
    Watch(ProgressWatchdog* owner, uint64_t key, std::shared_ptr<Entry> entry)
        : owner_(owner), key_(key), entry_(std::move(entry)) {}
    ProgressWatchdog* owner_;
    uint64_t key_;
    std::shared_ptr<Entry> entry_;
  };

  // Watches a stream that starts at `now`; `cancel` ends it (ClientContext::TryCancel) and is
  // called at most once, from Sweep. Bounds of zero or less disable the watch.
  std::unique_ptr<Watch> Start(const std::string& request_id, const std::string& worker,
                               absl::Time now, absl::Duration first_token,
                               absl::Duration next_token, std::function<void()> cancel);

  // Cancels every stream past its bound at `now` and returns them (each only once).
  std::vector<Stalled> Sweep(absl::Time now);

  size_t watched() const;

 private:
  void Remove(uint64_t key);

  mutable absl::Mutex mu_;
  uint64_t next_key_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::shared_ptr<Watch::Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve::router
