#include "bench/handoff_floor.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/socket_io.h"

namespace pdserve::bench {
namespace {

constexpr int kPassTimeoutMs = 10'000;

// The chain's sockets and processes; the destructor ends and reaps every process.
class Chain {
 public:
  ~Chain() {
    for (int fd : fds_) close(fd);
    for (pid_t pid : pids_) {
      // Each stage holds every link's ends (forked after all were made): none sees end-of-file.
      kill(pid, SIGKILL);
      while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {}
    }
  }

  // Link i (fds_[2i] written, fds_[2i + 1] read) joins stage i - 1 (the bench, for i = 0) to
  // stage i; link `hops` takes the last stage's time back to the bench.
  absl::Status Start(int hops) {
    for (int i = 0; i <= hops; ++i) {
      int pair[2];
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        return absl::InternalError(absl::StrCat("socketpair: ", std::strerror(errno)));
      }
      fds_.push_back(pair[0]);  // the writer's end of link i
      fds_.push_back(pair[1]);  // the reader's end
    }
    for (int i = 0; i < hops; ++i) {
      const pid_t pid = fork();
      if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
      if (pid == 0) Stage(i, hops);  // never returns
      pids_.push_back(pid);
    }
    return absl::OkStatus();
  }

  // One pass: microseconds from the bench's write to the last stage's read.
  absl::StatusOr<double> Pass() {
    const char byte = 1;
    const int64_t sent = MonotonicNanos();
    int64_t arrived = 0;
    // Bounded: a stage that died leaves the others holding its link open (no end-of-file).
    pollfd back{.fd = fds_.back(), .events = POLLIN, .revents = 0};
    if (!WriteAll(fds_[0], &byte, 1) || poll(&back, 1, kPassTimeoutMs) != 1 ||
        !ReadAll(fds_.back(), &arrived, sizeof(arrived))) {
      return absl::InternalError(absl::StrCat(
          "the hand-off chain broke (a stage died or took more than ", kPassTimeoutMs, " ms)"));
    }
    return static_cast<double>(arrived - sent) / 1000.0;
  }

 private:
  [[noreturn]] void Stage(int i, int hops) {
    const int in = fds_[2 * i + 1];
    const bool last = i == hops - 1;
    const int out = fds_[2 * (i + 1)];  // the last stage's goes back to the bench
    char byte;
    while (ReadAll(in, &byte, 1)) {
      if (last) {
        const int64_t now = MonotonicNanos();
        if (!WriteAll(out, &now, sizeof(now))) break;
      } else if (!WriteAll(out, &byte, 1)) {
        break;
      }
    }
    _exit(0);
  }

  std::vector<int> fds_;
  std::vector<pid_t> pids_;
};

}  // namespace

absl::StatusOr<HandoffFloor> MeasureHandoffFloor(int hops, int passes, absl::Duration idle) {
  if (hops < 1 || hops > 16 || passes < 1) {
    return absl::InvalidArgumentError("hand-off floor: hops in [1, 16] and passes >= 1");
  }
  Chain chain;
  if (absl::Status s = chain.Start(hops); !s.ok()) return s;
  HandoffFloor out;
  out.hops = hops;
  for (int p = 0; p < passes; ++p) {
    absl::SleepFor(idle);
    absl::StatusOr<double> us = chain.Pass();
    if (!us.ok()) return us.status();
    out.us.push_back(*us);
  }
  return out;
}

}  // namespace pdserve::bench
