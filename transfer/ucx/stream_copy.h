#pragma once

#include <cstddef>

namespace pdserve::transfer::ucx {

// Copies with streaming (non-temporal) stores where the CPU has them (x86-64: SSE2 is always
// there), plain memcpy elsewhere. For batches larger than the last-level cache can hold: their
// destination cannot stay cached anyway, and streaming stores skip the read-for-ownership of
// every destination line. glibc's memcpy streams only single calls above its non-temporal
// threshold (3/4 of the cache size cpuid reports), which ucx_perftest's one message of the
// batch's size crosses and our runs of one block or one fragment never do: 512 MiB batches
// ran at 5.0 - 5.4 GB/s against perftest's 7.6. Call StoreFence before anything that
// announces the bytes.
void StreamCopy(std::byte* dst, const std::byte* src, size_t bytes);

// Orders every StreamCopy store before the stores that follow (sfence on x86-64).
void StoreFence();

// The last-level cache of this host in bytes (sysfs, else sysconf), 32 MiB when neither says.
size_t LastLevelCacheBytes();

}  // namespace pdserve::transfer::ucx
