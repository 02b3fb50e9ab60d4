#pragma once

// How long a thread has waited for a core: the kernel's run-queue delay of that thread
// (/proc/<pid>/task/<tid>/schedstat, second field, in ns; kernels with CONFIG_SCHED_INFO, which
// Debian's have). Unlike wall time minus CPU time it does not count the time a thread slept on
// purpose (an idle progress thread in epoll_wait), only the time it was runnable and not run.
// A backend whose own threads move a batch's bytes reports their delay over the batch as
// TransferStats::copy_wait_ns: a transfer that waited long measured the host, not the transport.

#include <cstdint>

namespace pdserve::transfer {

class ThreadRunDelay {
 public:
  ThreadRunDelay() = default;  // reads -1
  // The calling thread's (readable from any thread afterwards).
  static ThreadRunDelay OfCallingThread();
  // Thread `tid` of process `pid` on this host (another process's: /proc lets a process of the
  // same user read it). Reads -1 when it cannot be opened (gone, another user's, bad ids).
  static ThreadRunDelay OfThread(int pid, int tid);
  // The calling thread's id (gettid), for a peer to pass to OfThread.
  static int CallingThreadId();
  ThreadRunDelay(ThreadRunDelay&& other) noexcept;
  ThreadRunDelay& operator=(ThreadRunDelay&& other) noexcept;
  ThreadRunDelay(const ThreadRunDelay&) = delete;
  ThreadRunDelay& operator=(const ThreadRunDelay&) = delete;
  ~ThreadRunDelay();

  // The thread's run-queue delay so far, in ns; -1 when the kernel does not report it.
  int64_t ReadNs() const;

 private:
  int fd_ = -1;
};

}  // namespace pdserve::transfer
