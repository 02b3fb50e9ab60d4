#pragma once

// Private to kvcache/cuda and transfer/cuda_ipc: CUDA errors as absl::Status.

#include <cuda_runtime.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace pdserve::cuda {

inline absl::Status CudaStatus(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", cudaGetErrorName(err), " (",
                                       cudaGetErrorString(err), ")");
  if (err == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

}  // namespace pdserve::cuda

#define PDSERVE_CUDA_RETURN_IF_ERROR(expr)                                   \
  do {                                                                       \
    if (cudaError_t _pdserve_err = (expr); _pdserve_err != cudaSuccess) {     \
      return ::pdserve::cuda::CudaStatus(_pdserve_err, #expr);               \
    }                                                                        \
  } while (0)
