#pragma once

// A fixed set of threads running posted closures in order of posting. The router's request
// core uses it for the steps of a request that may block on a worker (a Release, a probe) or
// that must not run under the router's lock (starting a decode stream, ending a request), so
// that a request needs no thread of its own.

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace pdserve::router {

class WorkQueue {
 public:
  explicit WorkQueue(int threads);
  // Runs what was posted, then joins the threads.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void Post(std::function<void()> work) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> work_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace pdserve::router
