// Ceilings measured in the same run as a GPU benchmark: a large device-to-device copy and a
// large cuBLAS bf16 GEMM, both timed with CUDA events after warm-up, median of the runs.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kvcache/cuda/cuda_check.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "kvcache/cuda/device_buffer.h"
#include "kvcache/cuda/kernels.h"

namespace pdserve::cuda {
namespace {

class EventTimer {
 public:
  EventTimer() {
    cudaEventCreate(&start_);
    cudaEventCreate(&stop_);
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  // Median milliseconds of `iterations` runs of `body` (after two warm-up runs).
  template <typename Body>
  absl::StatusOr<double> MedianMs(int iterations, cudaStream_t stream, Body body) {
    std::vector<float> times;
    for (int i = 0; i < iterations + 2; ++i) {
      PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventRecord(start_, stream));
      RETURN_IF_ERROR(body());
      PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventRecord(stop_, stream));
      PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(stop_));
      float ms = 0;
      PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start_, stop_));
      if (i >= 2) times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

absl::Status CublasStatus(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": cuBLAS status ", static_cast<int>(s)));
}

}  // namespace

absl::StatusOr<double> MeasureD2DCopyMs(size_t bytes, int iterations, int device) {
  if (!CudaAvailable()) return absl::UnavailableError("no CUDA device");
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  DeviceBuffer src, dst;
  RETURN_IF_ERROR(src.Reserve(bytes));
  RETURN_IF_ERROR(dst.Reserve(bytes));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemset(src.get(), 0x5A, bytes));
  EventTimer timer;
  return timer.MedianMs(iterations, nullptr, [&]() -> absl::Status {
    PDSERVE_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, nullptr));
    return absl::OkStatus();
  });
}

absl::StatusOr<double> MeasurePeerCopyMs(size_t bytes, int iterations, int src, int dst) {
  if (DeviceCount() <= std::max(src, dst)) {
    return absl::UnavailableError("the peer-copy baseline needs two GPUs");
  }
  int can = 0;
  cudaDeviceCanAccessPeer(&can, src, dst);
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(dst));
  DeviceBuffer to;
  RETURN_IF_ERROR(to.Reserve(bytes));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(src));
  if (can) {
    // Already enabled (by an earlier call or a cuda-ipc open) is fine.
    if (cudaError_t e = cudaDeviceEnablePeerAccess(dst, 0);
        e != cudaSuccess && e != cudaErrorPeerAccessAlreadyEnabled) {
      return CudaStatus(e, "cudaDeviceEnablePeerAccess");
    }
    cudaGetLastError();  // clear a sticky "already enabled"
  }
  DeviceBuffer from;
  RETURN_IF_ERROR(from.Reserve(bytes));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemset(from.get(), 0x5A, bytes));
  EventTimer timer;
  return timer.MedianMs(iterations, nullptr, [&]() -> absl::Status {
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemcpyPeerAsync(to.get(), dst, from.get(), src, bytes, nullptr));
    return absl::OkStatus();
  });
}

std::string PeerAccessSummary(int src, int dst) {
  int can = 0;
  if (DeviceCount() <= std::max(src, dst) ||
      cudaDeviceCanAccessPeer(&can, src, dst) != cudaSuccess) {
    return absl::StrCat("peer access ", src, "->", dst, ": unknown (fewer than two GPUs)");
  }
  return absl::StrCat("peer access ", src, "->", dst, can ? ": yes (NVLink or PCIe P2P)"
                                                          : ": no (copies staged through the host)");
}

absl::StatusOr<DeviceBaselines> MeasureDeviceBaselines(size_t copy_bytes, int gemm_size,
                                                       int iterations, int device) {
  DeviceBaselines b;
  ASSIGN_OR_RETURN(const double copy_ms, MeasureD2DCopyMs(copy_bytes, iterations, device));
  b.d2d_copy_bytes = static_cast<double>(copy_bytes);
  b.d2d_copy_gbps = 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9;

  const size_t n = static_cast<size_t>(gemm_size);
  DeviceBuffer a_buf, b_buf, c_buf;
  RETURN_IF_ERROR(a_buf.Reserve(n * n * 2));
  RETURN_IF_ERROR(b_buf.Reserve(n * n * 2));
  RETURN_IF_ERROR(c_buf.Reserve(n * n * 2));
  PDSERVE_CUDA_RETURN_IF_ERROR(LaunchFillBf16(a_buf.get<uint16_t>(), n * n, 1, nullptr));
  PDSERVE_CUDA_RETURN_IF_ERROR(LaunchFillBf16(b_buf.get<uint16_t>(), n * n, 2, nullptr));
  cublasHandle_t handle = nullptr;
  RETURN_IF_ERROR(CublasStatus(cublasCreate(&handle), "cublasCreate"));
  const float alpha = 1.0f, beta = 0.0f;
  EventTimer timer;
  absl::StatusOr<double> gemm_ms = timer.MedianMs(iterations, nullptr, [&]() -> absl::Status {
    return CublasStatus(
        cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, gemm_size, gemm_size, gemm_size, &alpha,
                     a_buf.get(), CUDA_R_16BF, gemm_size, b_buf.get(), CUDA_R_16BF, gemm_size,
                     &beta, c_buf.get(), CUDA_R_16BF, gemm_size, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
  });
  cublasDestroy(handle);
  if (!gemm_ms.ok()) return gemm_ms.status();
  b.gemm_size = gemm_size;
  b.gemm_tflops = 2.0 * n * n * n / (*gemm_ms * 1e-3) / 1e12;
  return b;
}

}  // namespace pdserve::cuda
