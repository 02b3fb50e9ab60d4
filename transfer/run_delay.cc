#include "transfer/run_delay.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace pdserve::transfer {

ThreadRunDelay ThreadRunDelay::OfCallingThread() {
  ThreadRunDelay d;
  d.fd_ = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  return d;
}

ThreadRunDelay ThreadRunDelay::OfThread(int pid, int tid) {
  ThreadRunDelay d;
  // Ids from another process's descriptor: only positive values name a file under /proc.
  if (pid <= 0 || tid <= 0) return d;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", pid, tid);
  d.fd_ = open(path, O_RDONLY | O_CLOEXEC);
  return d;
}

int ThreadRunDelay::CallingThreadId() { return static_cast<int>(syscall(SYS_gettid)); }

ThreadRunDelay::ThreadRunDelay(ThreadRunDelay&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

ThreadRunDelay& ThreadRunDelay::operator=(ThreadRunDelay&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

ThreadRunDelay::~ThreadRunDelay() {
  if (fd_ >= 0) close(fd_);
}

int64_t ThreadRunDelay::ReadNs() const {
  if (fd_ < 0) return -1;
  // "<on-cpu ns> <run-queue ns> <timeslices>\n"; pread at 0 re-reads the current values.
  char buf[96];
  const ssize_t n = pread(fd_, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char* end = nullptr;
  std::strtoull(buf, &end, 10);
  if (end == buf) return -1;
  char* second_end = nullptr;
  const unsigned long long delay = std::strtoull(end, &second_end, 10);
  if (second_end == end) return -1;
  return static_cast<int64_t>(delay);
}

}  // namespace pdserve::transfer
