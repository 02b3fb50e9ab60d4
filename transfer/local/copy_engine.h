#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "transfer/copy_plan.h"

namespace pdserve::transfer::local {

// memcpy of each op from src_base + src to dst_base + dst; stops early and returns false once
// `cancelled` (may be null) is set.
bool CopyOps(const std::byte* src_base, std::byte* dst_base, std::span<const CopyOp> ops,
             const std::atomic<bool>* cancelled);

// A batch of memcpys between two mapped regions.
struct CopyJob {
  const std::byte* src_base = nullptr;
  std::byte* dst_base = nullptr;
  std::vector<CopyOp> ops;
  // Set (e.g. by RemovePeer) to skip what has not been copied yet.
  std::shared_ptr<std::atomic<bool>> cancelled;
  // Runs once, on the thread that finished the job's last share.
  std::function<void(bool cancelled)> done;
};

// A fixed pool of copy threads, each with its own queue fed in submission order. A large job is
// cut into one share per thread (by bytes, splitting operations where needed) so that memcpy
// bandwidth scales with threads; share i always goes to thread i, except that the caller
// copies share 0 itself when the job is at most kCallerShareMaxBytes (then Run returns once
// that share is copied; the others may still be in flight). A job of at most kInlineBytes is copied on the caller's thread inside Run: handing
// it to a copy thread (queue, futex wake-up, a context switch on a busy 2-core host) costs
// more than the copy itself, and the copy would run on one thread anyway.
class CopyEngine {
 public:
  static constexpr uint64_t kInlineBytes = 256 * 1024;
  // Below this a share is not worth a second thread (wake-up costs more than the copy).
  static constexpr uint64_t kMinShareBytes = 512 * 1024;
  // Up to this, a job of several shares has its first share copied by the caller inside Run.
  static constexpr uint64_t kCallerShareMaxBytes = 4 * 1024 * 1024;

  explicit CopyEngine(int threads);
  // Runs every queued job to the end, then joins.
  ~CopyEngine();
  CopyEngine(const CopyEngine&) = delete;
  CopyEngine& operator=(const CopyEngine&) = delete;

  // Copies `job` (inline when small, then `done` has run when Run returns) or queues it (a
  // mid-size job after copying its first share). Returns true when the job ran inline.
  bool Run(std::shared_ptr<CopyJob> job);
  int threads() const { return static_cast<int>(workers_.size()); }
  // How many threads copy a job of `bytes`: 0 = inline on the caller's thread.
  int SharesFor(uint64_t bytes) const;

 private:
  struct Share {
    std::shared_ptr<CopyJob> job;
    std::shared_ptr<std::atomic<int>> remaining;
    std::vector<CopyOp> pieces;
  };
  void Work(size_t worker);

  absl::Mutex mu_;
  // One queue per worker (see Run); sized at construction, so only the deques change.
  std::vector<std::deque<Share>> queues_ ABSL_GUARDED_BY(mu_);
  size_t next_worker_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace pdserve::transfer::local
