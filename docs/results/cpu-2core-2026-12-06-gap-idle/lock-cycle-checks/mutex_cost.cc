#include <chrono>
#include <cstdio>
#include <cstring>
#include "absl/synchronization/mutex.h"
int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "off")) absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::Mutex a, b;
  const int n = 2000000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; i++) { a.Lock(); a.Unlock(); }
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; i++) { a.Lock(); b.Lock(); b.Unlock(); a.Unlock(); }
  auto t2 = std::chrono::steady_clock::now();
  printf("%s: single lock/unlock %.1f ns, nested pair %.1f ns\n", argc > 1 ? argv[1] : "default",
         std::chrono::duration<double, std::nano>(t1 - t0).count() / n, std::chrono::duration<double, std::nano>(t2 - t1).count() / n);
}
