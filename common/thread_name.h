#pragma once

// Names the calling thread (at most 15 characters are kept, the kernel's limit) so that `top
// -H`, `perf sched timehist`, gdb and /proc/<pid>/task/*/comm tell the router's dispatcher from
// a fast-lane reader or a kernel helper: issue 15's hop-by-hop latency work reads them.

#include <string_view>

namespace pdserve {

void NameThisThread(std::string_view name);

}  // namespace pdserve
