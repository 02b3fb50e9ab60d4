#pragma once

#include <functional>

namespace pdserve {

// Runs body(i) for i in [0, n) on up to `threads` threads (the calling thread included) and
// returns when all are done. threads <= 0 means DefaultThreads(). Small n runs inline.
void ParallelFor(int n, int threads, const std::function<void(int)>& body);

// CPUs this process may run on (its affinity mask), at least 1.
int DefaultThreads();

}  // namespace pdserve
