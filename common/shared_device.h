#pragma once

// One accelerator shared by a colocated worker's prefill and decode engines: it runs one forward
// pass at a time, as vLLM's engine loop does (a prefill batch and a decode step never overlap on
// the device). Each engine holds a Turn for a whole batch / step, including the modelled device
// time it sleeps in roofline mode, so that a prefill delays the decode steps queued behind it
// (and the other way round): the interference disaggregation exists to remove.
//
// Turns are granted first come, first served (a ticket queue): the decode loop takes a turn
// right after giving one back, and a plain mutex would let it starve a waiting prefill.
//
// Thread safety: every method may be called from any thread.

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace pdserve {

class SharedDevice {
 public:
  // Holds the device from construction (waiting for the turns taken before it) to destruction.
  class Turn {
   public:
    explicit Turn(SharedDevice& device) : device_(device) { device_.Acquire(); }
    ~Turn() { device_.Release(); }
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;

   private:
    SharedDevice& device_;
  };

  // Turns granted so far (tests, counters).
  uint64_t turns() const {
    absl::MutexLock lock(&mu_);
    return serving_;
  }

 private:
  void Acquire() {
    absl::MutexLock lock(&mu_);
    const uint64_t ticket = next_++;
    auto mine = [this, ticket]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !busy_ && serving_ == ticket;
    };
    mu_.Await(absl::Condition(&mine));
    busy_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    busy_ = false;
    serving_++;
  }

  mutable absl::Mutex mu_;
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;     // the next ticket handed out
  uint64_t serving_ ABSL_GUARDED_BY(mu_) = 0;  // the ticket whose turn it is
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace pdserve
