#pragma once

// Pins the process's threads (the calling one, and those started while the object lives) to one
// CPU, with a thread spinning on it: threads that move bytes are then runnable part of the time
// without a core, which the copy-wait measurements (local's copy engine, ucx's progress thread)
// must show. The previous affinity comes back at the end.

#include <sched.h>

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace pdserve::transfer::testing {

class OneBusyCpu {
 public:
  OneBusyCpu() {
    EXPECT_EQ(sched_getaffinity(0, sizeof(saved_), &saved_), 0);
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &saved_)) ++cpu;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    EXPECT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
    spinner_ = std::thread([this] {
      while (!stop_.load(std::memory_order_relaxed)) {
      }
    });
  }
  ~OneBusyCpu() {
    stop_.store(true);
    spinner_.join();
    EXPECT_EQ(sched_setaffinity(0, sizeof(saved_), &saved_), 0);
  }
  OneBusyCpu(const OneBusyCpu&) = delete;
  OneBusyCpu& operator=(const OneBusyCpu&) = delete;

 private:
  cpu_set_t saved_;
  std::atomic<bool> stop_{false};
  std::thread spinner_;
};

}  // namespace pdserve::transfer::testing
