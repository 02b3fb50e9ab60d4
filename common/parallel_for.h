#pragma once

#include <functional>

namespace pdserve {

// Runs body(i) for i in [0, n) on up to `threads` threads (the calling thread included) and
// returns when all are done. threads <= 0 means hardware concurrency. Small n runs inline.
void ParallelFor(int n, int threads, const std::function<void(int)>& body);

int DefaultThreads();

}  // namespace pdserve
