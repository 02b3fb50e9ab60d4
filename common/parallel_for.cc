#include "common/parallel_for.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "common/thread_name.h"

namespace pdserve {

int DefaultThreads() {
  // The CPUs this process may run on (taskset, a container's cpuset), not the machine's.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {

// One ParallelFor call. Indices are handed out one at a time (uneven items balance
// themselves); `helpers` bounds how many pool threads may join (the call's `threads` - 1).
struct Job {
  const std::function<void(int)>* body;
  int n;
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  std::atomic<int> helpers;

  // Runs indices until none is left; true if this thread finished the last one.
  bool Work() {
    int finished = 0;
    for (int i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
      (*body)(i);
      ++finished;
    }
    return finished > 0 && done.fetch_add(finished) + finished == n;
  }
};

// Threads kept for ParallelFor. They used to be spawned per call and joined at its end: a
// clone and an exit per helper per kernel call, which on a 16-core host made a batched CPU
// decode step cost ~0.9-1 ms whatever its size (0.04-0.15 ms with kept threads; bench kernels,
// docs/results/cpu-2026-12-06-parallel-for-and-hops). Now they sleep here between calls. A caller never waits for a pool thread to become free: it does every index itself if
// need be, so concurrent callers (a colocated worker's prefill and decode, the verifier) and a
// ParallelFor inside a ParallelFor's body cannot deadlock; they only share the helpers.
class Pool {
 public:
  // Never destroyed: its threads may outlive main's statics. A child of fork() has none of the
  // threads, and its copy of the mutex may be held by a thread that is not there: it starts a
  // pool of its own.
  static Pool& Get() {
    static const bool registered = [] {
      (void)pthread_atfork(nullptr, nullptr, [] { current_.store(new Pool()); });
      current_.store(new Pool());
      return true;
    }();
    (void)registered;
    return *current_.load();
  }

  void Run(int n, int threads, const std::function<void(int)>& body) {
    auto job = std::make_shared<Job>();
    job->body = &body;
    job->n = n;
    job->helpers = threads - 1;
    bool all = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      GrowLocked(threads - 1);
      jobs_.push_back(job);
      all = threads - 1 >= size_;
    }
    if (all) {
      work_.notify_all();
    } else {
      for (int t = 1; t < threads; ++t) work_.notify_one();
    }
    job->Work();
    {
      // No helper may take the job from here on (helpers count down below 0 then) ...
      std::lock_guard<std::mutex> lock(mu_);
      std::erase(jobs_, job);
    }
    // ... and those that took it finish their indices; `done` reaches n exactly once.
    for (int d = job->done.load(); d < n; d = job->done.load()) job->done.wait(d);
  }

 private:
  void GrowLocked(int wanted) {
    wanted = std::min(wanted, kMaxThreads);
    for (; size_ < wanted; ++size_) {
      std::thread([this] {
        NameThisThread("par-for");
        Loop();
      }).detach();
    }
  }

  void Loop() {
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_.wait(lock, [&] { return (job = TakeLocked()) != nullptr; });
      }
      if (job->Work()) job->done.notify_all();
    }
  }

  std::shared_ptr<Job> TakeLocked() {
    for (const std::shared_ptr<Job>& j : jobs_) {
      if (j->next.load() < j->n && j->helpers.fetch_sub(1) > 0) return j;
    }
    return nullptr;
  }

  static inline std::atomic<Pool*> current_{nullptr};
  static constexpr int kMaxThreads = 255;
  std::mutex mu_;
  std::condition_variable work_;
  std::deque<std::shared_ptr<Job>> jobs_;
  int size_ = 0;  // threads started (detached: they wait in Loop for good)
};

}  // namespace

void ParallelFor(int n, int threads, const std::function<void(int)>& body) {
  if (threads <= 0) threads = DefaultThreads();
  threads = std::min(threads, n);
  if (threads <= 1) {
    for (int i = 0; i < n; ++i) body(i);
    return;
  }
  Pool::Get().Run(n, threads, body);
}

}  // namespace pdserve
