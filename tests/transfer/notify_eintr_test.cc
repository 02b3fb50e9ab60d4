// A signal that interrupts NotifySender::Connect's wait for the receiver's ring does not fail
// it: sockets with SO_RCVTIMEO return EINTR even for SA_RESTART handlers (signal(7)), and a
// process gets signals it did not ask for (profilers, supervisors).
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "transfer/notify/notify_channel.h"
#include "transfer/notify/notify_ring.h"

namespace pdserve::transfer::notify {
namespace {

std::atomic<int> g_signals{0};
void CountSignal(int) { g_signals.fetch_add(1); }

char ThreadState(pid_t tid) {
  std::ifstream stat(absl::StrCat("/proc/self/task/", tid, "/stat"));
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '?' : line[paren + 2];
}

void SendRing(int fd, int memfd) {
  char kind = 'R';
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{&kind, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &memfd, sizeof(int));
  ASSERT_EQ(sendmsg(fd, &msg, MSG_NOSIGNAL), 1);
}

TEST(NotifySenderTest, ConnectInterruptedBySignalWhileWaitingForTheRingSucceeds) {
  struct sigaction action {};
  action.sa_handler = CountSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // does not help a socket with a timeout
  struct sigaction previous {};
  ASSERT_EQ(sigaction(SIGUSR1, &action, &previous), 0);

  const std::string name = absl::StrCat("pdserve-eintr-test-", getpid());
  const int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(listener, 1), 0);

  std::atomic<pid_t> tid{0};
  absl::Status connected = absl::UnknownError("not run");
  std::thread sender([&] {
    tid = static_cast<pid_t>(syscall(SYS_gettid));
    connected = NotifySender::Connect(name, "sender", "").status();
  });
  const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(fd, 0);
  char hello[8192];
  ASSERT_GT(recv(fd, hello, sizeof(hello), 0), 0);
  // The sender now waits in recvmsg for the ring: interrupt that wait.
  while (tid.load() == 0 || ThreadState(tid.load()) != 'S') absl::SleepFor(absl::Milliseconds(1));
  ASSERT_EQ(pthread_kill(sender.native_handle(), SIGUSR1), 0);
  while (g_signals.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  int memfd = -1;
  absl::StatusOr<std::unique_ptr<NotifyRing>> ring = NotifyRing::Create(memfd);
  ASSERT_TRUE(ring.ok()) << ring.status();
  SendRing(fd, memfd);
  sender.join();
  close(memfd);
  close(fd);
  close(listener);
  sigaction(SIGUSR1, &previous, nullptr);
  EXPECT_EQ(g_signals.load(), 1);
  EXPECT_TRUE(connected.ok()) << connected;
}

}  // namespace
}  // namespace pdserve::transfer::notify
