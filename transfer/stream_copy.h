#pragma once

#include <cstddef>
#include <cstdint>

namespace pdserve::transfer {

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

// Batches above this many bytes are copied with StreamCopy by the backends that copy on the
// CPU (local, ucx over a mapped pool): 3/4 of the last-level cache, at most
// kMaxCachedBatchBytes.
uint64_t DefaultStreamMinBytes();

// DefaultStreamMinBytes, or the byte count in the environment variable `env_name` when it
// holds one (tests set 0 to stream every batch).
uint64_t StreamMinBytes(const char* env_name);
// The byte count in the environment variable `name`, or `fallback` when it is unset or not a
// number (the backends' tuning knobs: PDSERVE_UCX_INLINE_BYTES, ...).
uint64_t BytesFromEnv(const char* name, uint64_t fallback);

// Batches above this size stream even where the last-level cache looks larger: a VM's reported
// cache need not be what it gets (the 2-core Xeon VM reports 260 MiB of L3; 32 MiB batches ran
// at 5-8 GB/s with puts and 12-13.6 with streaming stores, 64 MiB ones at ~5 against 6.5-8.6;
// on the 2-core EPYC VM a 64 MiB local copy in 1 MiB memcpys ran at 10 GB/s on one thread and
// 21.7 with streaming stores, 16 MiB ones 1.7 against 0.8 ms with the source just written,
// and the receiver read the result no slower), and the receiver does not read a KV batch
// before its notification arrives, by when a batch this large has left the cache anyway.
constexpr uint64_t kMaxCachedBatchBytes = uint64_t{16} << 20;

}  // namespace pdserve::transfer
