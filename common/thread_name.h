#pragma once

// Names the calling thread (at most 15 characters are kept, the kernel's limit) so that `top
// -H`, `perf sched timehist`, gdb and /proc/<pid>/task/*/comm tell the router's dispatcher from
// a fast-lane reader or a kernel helper: issue 15's hop-by-hop latency work reads them. Every
// long-lived thread of pdserve names itself, so this also asks for its short slice
// (AskShortSlice).

#include <string_view>

namespace pdserve {

void NameThisThread(std::string_view name);

// Asks the kernel for a 100 us scheduling slice for the calling thread (EEVDF's per-task slice,
// Linux 6.12 and later; older kernels ignore it; PDSERVE_THREAD_SLICE_US sets another length,
// 0 keeps the default). Why: a thread woken with a short slice preempts one that has run
// longer, so a control-plane hand-off (a fast-lane frame, a notification) no longer waits
// behind the mock's CPU kernels on the same core (a tiny prefill's kernels run ~0.8 ms on the
// 2-vCPU host). There, the prefill waited 9-13 us p50 for its decode blocks instead of 18-70 us,
// in five rounds (docs/results/cpu-2core-2026-12-06-short-slice). Keeps the thread's policy and
// nice value.
void AskShortSlice();

}  // namespace pdserve
