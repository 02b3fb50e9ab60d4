#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "transfer/copy_plan.h"

namespace pdserve::transfer::local {

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

// A fixed pool of copy threads fed in submission order. A large job is cut into one share per
// thread (by bytes, splitting operations where needed) so that memcpy bandwidth scales with
// threads; small jobs stay whole, so many small batches pipeline across threads instead.
class CopyEngine {
 public:
  explicit CopyEngine(int threads);
  // Runs every queued job to the end, then joins.
  ~CopyEngine();
  CopyEngine(const CopyEngine&) = delete;
  CopyEngine& operator=(const CopyEngine&) = delete;

  void Run(std::shared_ptr<CopyJob> job);
  int threads() const { return static_cast<int>(workers_.size()); }

 private:
  struct Share {
    std::shared_ptr<CopyJob> job;
    std::shared_ptr<std::atomic<int>> remaining;
    std::vector<CopyOp> pieces;
  };
  void Work();

  absl::Mutex mu_;
  std::deque<Share> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace pdserve::transfer::local
