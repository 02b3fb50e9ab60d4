#include "transfer/stream_copy.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace pdserve::transfer {

void StreamCopy(std::byte* dst, const std::byte* src, size_t bytes) {
#if defined(__x86_64__)
  // Unaligned head with memcpy so that the streaming stores write whole 64-byte lines.
  size_t head = (64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63;
  if (head > bytes) head = bytes;
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  bytes -= head;
  for (; bytes >= 64; bytes -= 64, src += 64, dst += 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 48), d);
  }
#endif
  std::memcpy(dst, src, bytes);
}

void StoreFence() {
#if defined(__x86_64__)
  _mm_sfence();
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

size_t LastLevelCacheBytes() {
  // sysfs first: under a hypervisor cpuid (what sysconf and glibc read) can report another
  // size (256 MiB on the 2-core EPYC VM, whose L3 is 32 MiB).
  int best_level = 0;
  size_t best = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    std::ifstream level_file(dir + "/level"), size_file(dir + "/size");
    int level = 0;
    std::string size;
    if (!(level_file >> level) || !(size_file >> size) || size.empty()) continue;
    size_t bytes = std::strtoull(size.c_str(), nullptr, 10);
    if (size.back() == 'K') bytes <<= 10;
    if (size.back() == 'M') bytes <<= 20;
    if (level > best_level && bytes > 0) {
      best_level = level;
      best = bytes;
    }
  }
  if (best > 0) return best;
  long bytes = -1;
#if defined(_SC_LEVEL3_CACHE_SIZE)
  bytes = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
  return bytes > 0 ? static_cast<size_t>(bytes) : size_t{32} << 20;
}

uint64_t DefaultStreamMinBytes() {
  static const uint64_t bytes =
      std::min<uint64_t>(LastLevelCacheBytes() / 4 * 3, kMaxCachedBatchBytes);
  return bytes;
}

uint64_t BytesFromEnv(const char* name, uint64_t fallback) {
  uint64_t bytes = 0;
  const char* env = std::getenv(name);
  return env != nullptr && absl::SimpleAtoi(env, &bytes) ? bytes : fallback;
}

uint64_t StreamMinBytes(const char* env_name) {
  return BytesFromEnv(env_name, DefaultStreamMinBytes());
}

}  // namespace pdserve::transfer
