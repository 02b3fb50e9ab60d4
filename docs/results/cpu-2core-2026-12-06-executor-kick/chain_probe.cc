// A chain of N processes passing one byte over unix socketpairs, after an idle gap: the
// floor of N cross-process hand-offs on this host.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
using clk = std::chrono::steady_clock;
int main(int argc, char** argv) {
  int hops = argc > 1 ? atoi(argv[1]) : 5;
  int idle_us = argc > 2 ? atoi(argv[2]) : 20000;
  std::vector<int> fds(2 * (hops + 1));
  for (int i = 0; i <= hops; ++i) socketpair(AF_UNIX, SOCK_STREAM, 0, &fds[2 * i]);
  // stage i reads fds[2*i+1], writes fds[2*(i+1)]
  for (int i = 0; i < hops; ++i) {
    if (fork() == 0) {
      char b;
      while (read(fds[2 * i + 1], &b, 1) == 1) write(fds[2 * (i + 1)], &b, 1);
      _exit(0);
    }
  }
  std::vector<double> v;
  for (int k = 0; k < 300; ++k) {
    usleep(idle_us);
    char b = 1;
    auto t = clk::now();
    write(fds[0], &b, 1);
    read(fds[2 * hops + 1], &b, 1);
    v.push_back(std::chrono::duration<double, std::micro>(clk::now() - t).count());
  }
  std::sort(v.begin(), v.end());
  printf("%d hops (+1 back to the sender), %d us idle: p50 %.0f us, p90 %.0f us, per hop %.1f us\n",
         hops, idle_us, v[v.size() / 2], v[v.size() * 9 / 10], v[v.size() / 2] / (hops + 1));
  fflush(stdout);
  signal(SIGTERM, SIG_IGN);
  kill(0, SIGTERM);
}
