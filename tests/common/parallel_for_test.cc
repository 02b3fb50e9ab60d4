// ParallelFor's kept threads (common/parallel_for.cc): every index exactly once, helpers that
// really help, and no deadlock when callers share the pool or nest.

#include "common/parallel_for.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
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

}  // namespace
}  // namespace pdserve
