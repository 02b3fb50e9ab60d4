// Copy probe (issue 18): how fast can one kernel move a layer-major request's runs on this GPU,
// against cudaMemcpyAsync? GPU time by events, median of `iters`; every variant's output is
// compared with its source. Build: nvcc -O3 -std=c++17 -arch=sm_90 copy_probe.cu -o copy_probe
//
// Variants:
//   memcpy-1      one cudaMemcpyAsync of all bytes (the transfer bench's D2D baseline)
//   memcpy-runs   one cudaMemcpyAsync per run
//   lsu-flat      the batched copy kernel's default shape (512 threads, 8 x 16-byte loads in
//                 flight a thread, 128 KiB a block, blocks in run order)
//   lsu-stride    a grid-stride loop over all runs' 16-byte words (blocks = SMs x k)
//   tma           bulk async copies (cp.async.bulk) global -> shared -> global, one thread a
//                 block issuing, `stages` buffers of `chunk` bytes
// and, host-timed (launch to the event seen complete by a spinning cudaEventQuery), memcpy-1 and
// lsu-flat, to size the fixed cost a transfer pays on top of the GPU time.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CK(x)                                                                   \
  do {                                                                          \
    cudaError_t e_ = (x);                                                       \
    if (e_ != cudaSuccess) {                                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x,            \
                   cudaGetErrorString(e_));                                     \
      std::exit(1);                                                             \
    }                                                                           \
  } while (0)

struct Runs {
  const char* src;
  char* dst;
  uint64_t run_bytes;   // every run the same size (a layer-major request's are)
  int64_t src_stride;  // between runs (< 0: runs go backwards from src)
  int64_t dst_stride;
  int runs;
};

// ---- lsu-flat: the batched copy kernel's default (kvcache/cuda/batched_copy.cu) -------------
template <int kThreads, int kLoads>
__device__ __forceinline__ void CopyChunk(const uint4* __restrict__ s, uint4* __restrict__ d,
                                          int n) {
  int i = threadIdx.x;
  for (; i + (kLoads - 1) * kThreads < n; i += kLoads * kThreads) {
    uint4 v[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) v[u] = __ldg(s + i + u * kThreads);
#pragma unroll
    for (int u = 0; u < kLoads; ++u) d[i + u * kThreads] = v[u];
  }
  for (; i < n; i += kThreads) d[i] = __ldg(s + i);
}

template <int kThreads, int kLoads>
__global__ void __launch_bounds__(kThreads) LsuFlat(Runs r, uint64_t chunk) {
  const uint64_t per_run = r.run_bytes / chunk;
  const uint64_t total = per_run * r.runs;
  for (uint64_t g = blockIdx.x; g < total; g += gridDim.x) {
    const uint64_t run = g / per_run, c = g % per_run;
    CopyChunk<kThreads, kLoads>(
        reinterpret_cast<const uint4*>(r.src + run * r.src_stride + c * chunk),
        reinterpret_cast<uint4*>(r.dst + run * r.dst_stride + c * chunk),
        static_cast<int>(chunk / 16));
  }
}

// ---- lsu-stride: grid-stride over all words, kU words a thread a step --------------------------
template <int kU>
__global__ void LsuStride(Runs r) {
  const uint64_t words_per_run = r.run_bytes / 16;
  const uint64_t total = words_per_run * r.runs;
  const uint64_t step = uint64_t{gridDim.x} * blockDim.x;
  uint64_t i = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  for (; i + (kU - 1) * step < total; i += kU * step) {
    uint4 v[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const uint64_t w = i + u * step, run = w / words_per_run, o = w % words_per_run;
      v[u] = __ldg(reinterpret_cast<const uint4*>(r.src + run * r.src_stride) + o);
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const uint64_t w = i + u * step, run = w / words_per_run, o = w % words_per_run;
      reinterpret_cast<uint4*>(r.dst + run * r.dst_stride)[o] = v[u];
    }
  }
  for (; i < total; i += step) {
    const uint64_t run = i / words_per_run, o = i % words_per_run;
    reinterpret_cast<uint4*>(r.dst + run * r.dst_stride)[o] =
        __ldg(reinterpret_cast<const uint4*>(r.src + run * r.src_stride) + o);
  }
}

// ---- tma: cp.async.bulk through shared memory ------------------------------------------------
__device__ __forceinline__ uint32_t Smem(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void MbarInit(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(Smem(bar)), "r"(count));
}
__device__ __forceinline__ void MbarExpect(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(Smem(bar)),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void MbarWait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT_%=;\n"
      "}\n" ::"r"(Smem(bar)),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void BulkLoad(void* smem, const void* gmem, uint32_t bytes,
                                         uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::
          "r"(Smem(smem)),
      "l"(gmem), "r"(bytes), "r"(Smem(bar))
      : "memory");
}
__device__ __forceinline__ void BulkStore(void* gmem, const void* smem, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(gmem),
               "r"(Smem(smem)), "r"(bytes)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}
template <int N>
__device__ __forceinline__ void BulkWaitRead() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
}

constexpr int kMaxStages = 8;

__global__ void Tma(Runs r, uint32_t chunk, int stages) {
  extern __shared__ __align__(128) unsigned char buf[];
  __shared__ __align__(8) uint64_t bars[kMaxStages];
  if (threadIdx.x != 0) return;
  const uint64_t per_run = r.run_bytes / chunk;
  const uint64_t total = per_run * r.runs;
  auto src_of = [&](uint64_t g) {
    return r.src + (g / per_run) * r.src_stride + (g % per_run) * chunk;
  };
  auto dst_of = [&](uint64_t g) {
    return r.dst + (g / per_run) * r.dst_stride + (g % per_run) * chunk;
  };
  for (int s = 0; s < stages; ++s) MbarInit(&bars[s], 1);
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  // This block's chunks: blockIdx.x, + gridDim.x, ...; local index k.
  const uint64_t mine = blockIdx.x < total ? (total - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
  auto chunk_of = [&](uint64_t k) { return blockIdx.x + k * gridDim.x; };
  for (uint64_t k = 0; k < mine && k < static_cast<uint64_t>(stages); ++k) {
    MbarExpect(&bars[k], chunk);
    BulkLoad(buf + k * chunk, src_of(chunk_of(k)), chunk, &bars[k]);
  }
  for (uint64_t k = 0; k < mine; ++k) {
    const int s = static_cast<int>(k % stages);
    MbarWait(&bars[s], static_cast<uint32_t>((k / stages) & 1));
    BulkStore(dst_of(chunk_of(k)), buf + s * chunk, chunk);
    // Refill the stage the previous chunk's store was reading, once that store has read it.
    if (k >= 1 && k - 1 + stages < mine) {
      BulkWaitRead<1>();
      const uint64_t n = k - 1 + stages;
      const int ps = static_cast<int>((k - 1) % stages);
      MbarExpect(&bars[ps], chunk);
      BulkLoad(buf + ps * chunk, src_of(chunk_of(n)), chunk, &bars[ps]);
    }
  }
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

// ---- checking -------------------------------------------------------------------------------
__global__ void Compare(Runs r, unsigned long long* bad) {
  const uint64_t words_per_run = r.run_bytes / 8;
  const uint64_t total = words_per_run * r.runs;
  unsigned long long n = 0;
  for (uint64_t i = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total;
       i += uint64_t{gridDim.x} * blockDim.x) {
    const uint64_t run = i / words_per_run, o = i % words_per_run;
    n += reinterpret_cast<const uint64_t*>(r.src + run * r.src_stride)[o] !=
         reinterpret_cast<const uint64_t*>(r.dst + run * r.dst_stride)[o];
  }
  if (n) atomicAdd(bad, n);
}

__global__ void Fill(uint64_t* p, uint64_t n, uint64_t salt) {
  for (uint64_t i = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n;
       i += uint64_t{gridDim.x} * blockDim.x)
    p[i] = (i + salt) * 0x9E3779B97F4A7C15ull;
}

template <class F>
double MedianMs(int iters, F&& launch) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  launch();  // warm-up
  CK(cudaDeviceSynchronize());
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    CK(cudaEventRecord(a));
    launch();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Host time from the launch call to the completion seen by a spinning cudaEventQuery.
template <class F>
double HostMedianMs(int iters, F&& launch) {
  cudaEvent_t e;
  CK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  launch();
  CK(cudaDeviceSynchronize());
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    launch();
    CK(cudaEventRecord(e));
    while (cudaEventQuery(e) == cudaErrorNotReady) {
    }
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  CK(cudaEventDestroy(e));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 30;
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device %s, %d SMs, iters %d\n", prop.name, sms, iters);
  CK(cudaFuncSetAttribute(Tma, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 * 1024));

  // A request's runs: llama3-8b layer-major, 32 layers, 4 KiB of K+V a token (x 32 layers =
  // 128 KiB a token): run = tokens x 256 KiB / 32... per layer 2 x 8 heads x 128 x 2 B = 4 KiB.
  for (int tokens : {512, 2048, 8192}) {
    const uint64_t run = uint64_t(tokens) * 4096;
    const int nruns = 32;
    // The pools hold more than the request: runs sit a pool-layer apart (here 2 runs' worth).
    const uint64_t stride = 2 * run;
    char *src, *dst;
    CK(cudaMalloc(&src, stride * nruns));
    CK(cudaMalloc(&dst, stride * nruns));
    Fill<<<1024, 256>>>(reinterpret_cast<uint64_t*>(src), stride * nruns / 8, tokens);
    CK(cudaMemset(dst, 0, stride * nruns));
    Runs r{src, dst, run, int64_t(stride), int64_t(stride), nruns};
    const uint64_t bytes = run * nruns;
    unsigned long long* bad;
    CK(cudaMalloc(&bad, sizeof(*bad)));
    // The one-call baseline copies the same number of bytes, contiguously.
    char *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
    const double base = MedianMs(iters, [&] {
      CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
    });
    const double gbase = bytes / (base * 1e-3) / 1e9;
    std::printf("\n%d tokens: %d runs of %.0f MiB = %.0f MiB; memcpy-1 %.4f ms (%.0f GB/s)\n",
                tokens, nruns, run / 1048576.0, bytes / 1048576.0, base, gbase);
    auto row = [&](const char* name, double ms) {
      CK(cudaMemset(bad, 0, sizeof(*bad)));
      Compare<<<1024, 256>>>(r, bad);
      unsigned long long h = 0;
      CK(cudaMemcpy(&h, bad, sizeof(h), cudaMemcpyDeviceToHost));
      std::printf("  %-28s %.4f ms %7.0f GB/s %6.3fx of memcpy-1%s\n", name, ms,
                  bytes / (ms * 1e-3) / 1e9, base / ms, h ? "  MISMATCH" : "");
      CK(cudaMemset(dst, 0, stride * nruns));
    };
    row("memcpy-runs", MedianMs(iters, [&] {
          for (int i = 0; i < nruns; ++i)
            CK(cudaMemcpyAsync(dst + i * stride, src + i * stride, run, cudaMemcpyDeviceToDevice,
                               0));
        }));
    auto flat = [&](uint64_t chunk) {
      const uint64_t blocks = bytes / chunk;
      LsuFlat<512, 8><<<static_cast<unsigned>(std::min<uint64_t>(blocks, 1u << 20)), 512>>>(
          r, chunk);
    };
    auto flat256 = [&](uint64_t chunk) {
      LsuFlat<256, 8><<<static_cast<unsigned>(bytes / chunk), 256>>>(r, chunk);
    };
    row("lsu-flat 256x8 32K", MedianMs(iters, [&] { flat256(32 << 10); }));
    row("lsu-flat 256x8 16K", MedianMs(iters, [&] { flat256(16 << 10); }));
    row("lsu-flat 512x8 16K", MedianMs(iters, [&] { flat(16 << 10); }));
    row("lsu-flat 128K (default)", MedianMs(iters, [&] { flat(128 << 10); }));
    row("lsu-flat 64K", MedianMs(iters, [&] { flat(64 << 10); }));
    row("lsu-flat 32K", MedianMs(iters, [&] { flat(32 << 10); }));
    for (int k : {2, 4, 8}) {
      for (int threads : {256, 512, 1024}) {
        char name[64];
        std::snprintf(name, sizeof(name), "lsu-stride %dx%d u4", k, threads);
        row(name, MedianMs(iters, [&] { LsuStride<4><<<sms * k, threads>>>(r); }));
      }
    }
    row("lsu-stride 4x512 u8", MedianMs(iters, [&] { LsuStride<8><<<sms * 4, 512>>>(r); }));
    row("lsu-stride 4x512 u2", MedianMs(iters, [&] { LsuStride<2><<<sms * 4, 512>>>(r); }));
    struct T { uint32_t chunk; int stages, per_sm; };
    for (T t : {T{16 << 10, 8, 1}, T{32 << 10, 4, 1}, T{32 << 10, 6, 1}, T{48 << 10, 4, 1},
                T{16 << 10, 6, 2}, T{32 << 10, 3, 2}, T{16 << 10, 4, 3}, T{8 << 10, 8, 3},
                T{16 << 10, 3, 4}}) {
      if (run % t.chunk != 0) continue;
      char name[64];
      std::snprintf(name, sizeof(name), "tma %uK x%d, %d/SM", t.chunk >> 10, t.stages, t.per_sm);
      const size_t smem = size_t(t.chunk) * t.stages;
      row(name, MedianMs(iters, [&] {
            Tma<<<sms * t.per_sm, 32, smem>>>(r, t.chunk, t.stages);
          }));
    }
    CK(cudaGetLastError());
    // Host-timed: what a transfer pays around the GPU time.
    const double h1 = HostMedianMs(iters, [&] {
      CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
    });
    const double h2 = HostMedianMs(iters, [&] { flat(128 << 10); });
    std::printf("  host-timed: memcpy-1 %.4f ms (+%.1f us over its GPU time), lsu-flat %.4f ms\n",
                h1, (h1 - base) * 1e3, h2);
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(src));
    CK(cudaFree(dst));
    CK(cudaFree(bad));
  }
  // Scattered: a layer-major request's 64 KiB runs (one a block and layer) to every other block
  // of the destination, backwards (as bench transfer's scattered rows), against the same runs
  // adjacent and every other block forwards; the kernel over 64 KiB runs, 128 or 32 KiB chunks.
  for (int tokens : {2048, 8192}) {
    const uint64_t run = 65536;
    const int nruns = tokens / 16 * 32;
    const uint64_t bytes = run * nruns;
    char *src, *dst, *a, *b;
    CK(cudaMalloc(&src, bytes));
    CK(cudaMalloc(&dst, 2 * bytes + run));
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    Fill<<<1024, 256>>>(reinterpret_cast<uint64_t*>(src), bytes / 8, tokens + 1);
    unsigned long long* bad;
    CK(cudaMalloc(&bad, sizeof(*bad)));
    const double base = MedianMs(iters, [&] {
      CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
    });
    std::printf("\nscattered %d tokens: %d runs of 64 KiB = %.0f MiB; memcpy-1 %.4f ms\n", tokens,
                nruns, bytes / 1048576.0, base);
    struct P { const char* name; int64_t dst_off, dst_stride; };
    for (P p : {P{"adjacent", 0, int64_t(run)}, P{"every other, forwards", 0, int64_t(2 * run)},
                P{"every other, backwards", int64_t(2 * run) * (nruns - 1), -int64_t(2 * run)}}) {
      Runs r{src, dst + p.dst_off, run, int64_t(run), p.dst_stride, nruns};
      for (uint64_t chunk : {uint64_t(128) << 10, uint64_t(32) << 10}) {
        const uint64_t per = std::max<uint64_t>(1, run / chunk);
        const uint64_t c = std::min(chunk, run);
        const double ms = MedianMs(iters, [&] {
          LsuFlat<512, 8><<<static_cast<unsigned>(per * nruns), 512>>>(r, c);
        });
        CK(cudaMemset(bad, 0, sizeof(*bad)));
        Compare<<<1024, 256>>>(r, bad);
        unsigned long long h = 0;
        CK(cudaMemcpy(&h, bad, sizeof(h), cudaMemcpyDeviceToHost));
        std::printf("  %-24s chunk %3lluK  %.4f ms %6.3fx of memcpy-1%s\n", p.name,
                    (unsigned long long)(c >> 10), ms, base / ms, h ? "  MISMATCH" : "");
      }
    }
    CK(cudaFree(src));
    CK(cudaFree(dst));
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(bad));
  }
  return 0;
}
