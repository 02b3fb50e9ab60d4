// ParallelFor's kept threads (common/parallel_for.cc): every index exactly once, helpers that
// really help, and no deadlock when callers share the pool or nest; thread names and slices
// (common/thread_name.h).

#include "common/parallel_for.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/thread_name.h"

namespace pdserve {
namespace {

TEST(ParallelForTest, RunsEveryIndexExactlyOnce) {
  for (int threads : {0, 1, 2, 3, 8}) {
    for (int n : {0, 1, 2, 7, 100, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      ParallelFor(n, threads, [&](int i) { hits[static_cast<size_t>(i)]++; });
      for (int i = 0; i < n; ++i) {
        ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n " << n << " threads " << threads;
      }
    }
  }
}

// The first index waits until an index runs on another thread: without a helper thread it
// would wait forever (bounded here, and then the test fails).
TEST(ParallelForTest, AHelperThreadTakesPartOfTheWork) {
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::thread::id> seen;
  bool other = false;
  ParallelFor(4, 2, [&](int) {
    std::unique_lock<std::mutex> lock(mu);
    seen.insert(std::this_thread::get_id());
    if (seen.size() > 1) {
      other = true;
      cv.notify_all();
    }
    cv.wait_for(lock, std::chrono::seconds(10), [&] { return other; });
  });
  EXPECT_TRUE(other);
  EXPECT_EQ(seen.size(), 2u);
}

TEST(ParallelForTest, ConcurrentAndNestedCallersAllFinish) {
  std::atomic<long> sum{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int round = 0; round < 50; ++round) {
        ParallelFor(8, 4, [&](int i) {
          ParallelFor(10, 3, [&](int j) { sum += i * 10 + j; });
        });
      }
    });
  }
  for (std::thread& t : callers) t.join();
  // Each call sums 0..79 = 3160; 4 callers x 50 rounds.
  EXPECT_EQ(sum.load(), 3160L * 4 * 50);
}

// A child of fork() (no exec) has none of the parent's pool threads: it still gets every
// index done, with helpers of its own.
TEST(ParallelForTest, AForkedChildRunsItsOwnPool) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer does not support threads started after a threaded fork";
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  GTEST_SKIP() << "ThreadSanitizer does not support threads started after a threaded fork";
#endif
#endif
  ParallelFor(8, 2, [](int) {});  // the parent's pool exists
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::atomic<int> sum{0};
    std::atomic<bool> helped{false};
    const std::thread::id me = std::this_thread::get_id();
    ParallelFor(64, 2, [&](int i) {
      sum += i;
      if (std::this_thread::get_id() != me) helped = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    _exit(sum.load() == 64 * 63 / 2 && helped.load() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's ParallelFor lost indices or got no helper";
}

TEST(ThreadNameTest, NamesTheCallingThreadAndCutsAt15Characters) {
  std::string got;
  std::thread([&] {
    NameThisThread("a-very-long-thread-name");
    char buf[32] = {};
    ASSERT_EQ(pthread_getname_np(pthread_self(), buf, sizeof(buf)), 0);
    got = buf;
  }).join();
  EXPECT_EQ(got, "a-very-long-thr");
}

// The slice the kernel reports for the thread (/proc/thread-self/sched, "se.slice", in ns), or
// -1 where it reports none.
int64_t SliceNs() {
  std::ifstream in("/proc/thread-self/sched");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("se.slice", 0) != 0) continue;
    const size_t colon = line.find(':');
    return colon == std::string::npos ? -1 : std::stoll(line.substr(colon + 1));
  }
  return -1;
}

// A named thread gets the 100 us slice (on kernels with per-task slices: Linux 6.12 and later),
// and keeps its nice value.
TEST(ThreadNameTest, ANamedThreadAsksForAShortSliceAndKeepsItsNice) {
  int64_t before = -1, after = -1;
  int nice_after = 0;
  std::thread([&] {
    ASSERT_EQ(setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 3), 0);
    before = SliceNs();
    NameThisThread("slice-test");
    after = SliceNs();
    nice_after = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
  }).join();
  EXPECT_EQ(nice_after, 3);
  utsname u{};
  int major = 0, minor = 0;
  const bool per_task_slices = uname(&u) == 0 &&
                               std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
                               (major > 6 || (major == 6 && minor >= 12));
  if (!per_task_slices || before < 0 || before == 100000) {
    GTEST_SKIP() << "this kernel (" << u.release << ") has no per-task slices to check";
  }
  EXPECT_EQ(after, 100000) << "slice before naming: " << before << " ns";
}

}  // namespace
}  // namespace pdserve
