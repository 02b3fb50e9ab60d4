#pragma once

// Functions of the synthetic model are shared by the CPU kernels and the CUDA kernels, so that
// both produce the same bytes and the same tokens.
#if defined(__CUDACC__)
#define PDSERVE_HD __host__ __device__ __forceinline__
#else
#define PDSERVE_HD inline
#endif
