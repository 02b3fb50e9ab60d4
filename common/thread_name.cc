#include "common/thread_name.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>

namespace pdserve {
namespace {

// struct sched_attr (linux/sched/types.h), which glibc does not declare.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

// The slice asked for each named thread, in microseconds (PDSERVE_THREAD_SLICE_US; 0 keeps the
// kernel's default).
int64_t SliceMicros() {
  static const int64_t us = [] {
    const char* e = std::getenv("PDSERVE_THREAD_SLICE_US");
    if (e == nullptr) return int64_t{100};
    const long v = std::atol(e);
    return v < 0 ? int64_t{0} : static_cast<int64_t>(v);
  }();
  return us;
}

}  // namespace

void AskShortSlice() {
  const int64_t us = SliceMicros();
  if (us == 0 || sched_getscheduler(0) != SCHED_OTHER) return;
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  if (errno != 0) return;
  SchedAttr attr{};
  attr.size = sizeof(attr);
  attr.sched_policy = SCHED_OTHER;
  attr.sched_nice = nice;  // sched_setattr sets the nice value too: keep the thread's own
  attr.sched_runtime = static_cast<uint64_t>(us) * 1000;
  (void)syscall(SYS_sched_setattr, 0, &attr, 0);  // best effort: older kernels ignore the slice
}

void NameThisThread(std::string_view name) {
  std::array<char, 16> buf{};  // 15 characters and the terminator: longer names fail (ERANGE)
  const size_t n = std::min(name.size(), buf.size() - 1);
  std::copy_n(name.data(), n, buf.data());
  (void)pthread_setname_np(pthread_self(), buf.data());  // best effort: only a label
  AskShortSlice();
}

}  // namespace pdserve
