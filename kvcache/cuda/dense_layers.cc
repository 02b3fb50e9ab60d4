// Synthetic dense layers: the projections of a transformer layer as cuBLAS bf16 GEMMs over
// per-layer weights filled with a reproducible pattern. Outputs are not used by the mock model;
// what matters is that a step moves the weight bytes and does the FLOPs of the real shape.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <array>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kvcache/cuda/cuda_check.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "kvcache/cuda/device_buffer.h"
#include "kvcache/cuda/kernels.h"

namespace pdserve::cuda {
namespace {

struct Gemm {
  int out_features;
  int in_features;
};

absl::Status CublasStatus(cublasStatus_t s, const char* what) {
  if (s == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": cuBLAS status ", static_cast<int>(s)));
}

}  // namespace

struct DenseLayers::Impl {
  ModelConfig config;
  int max_tokens = 0;
  std::array<Gemm, 4> gemms{};
  size_t layer_weight_elems = 0;
  DeviceBuffer weights, act_a, act_b;
  cublasHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  double last_ms = 0;

  ~Impl() {
    if (handle != nullptr) cublasDestroy(handle);
    if (stream != nullptr) cudaStreamDestroy(stream);
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
  }
};

DenseLayers::DenseLayers(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DenseLayers::~DenseLayers() = default;

absl::StatusOr<std::unique_ptr<DenseLayers>> DenseLayers::Create(const ModelConfig& config,
                                                                 int max_tokens, int device) {
  if (!CudaAvailable()) return absl::UnavailableError("no CUDA device");
  if (max_tokens <= 0) return absl::InvalidArgumentError("dense layers need max_tokens > 0");
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->max_tokens = max_tokens;
  const int h = config.hidden_size;
  const int q = config.num_q_heads * config.head_dim;
  const int kv = config.num_kv_heads * config.head_dim;
  const int inter = config.intermediate_size;
  impl->gemms = {Gemm{q + 2 * kv, h}, Gemm{h, q}, Gemm{2 * inter, h}, Gemm{h, inter}};
  size_t widest = 0;
  for (const Gemm& g : impl->gemms) {
    impl->layer_weight_elems += size_t(g.out_features) * g.in_features;
    widest = std::max({widest, size_t(g.out_features), size_t(g.in_features)});
  }
  const size_t weight_elems = impl->layer_weight_elems * config.num_layers;
  RETURN_IF_ERROR(impl->weights.Reserve(weight_elems * 2));
  RETURN_IF_ERROR(impl->act_a.Reserve(widest * max_tokens * 2));
  RETURN_IF_ERROR(impl->act_b.Reserve(widest * max_tokens * 2));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventCreate(&impl->start));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventCreate(&impl->stop));
  PDSERVE_CUDA_RETURN_IF_ERROR(
      LaunchFillBf16(impl->weights.get<uint16_t>(), weight_elems, 11, impl->stream));
  PDSERVE_CUDA_RETURN_IF_ERROR(
      LaunchFillBf16(impl->act_a.get<uint16_t>(), widest * max_tokens, 12, impl->stream));
  RETURN_IF_ERROR(CublasStatus(cublasCreate(&impl->handle), "cublasCreate"));
  RETURN_IF_ERROR(CublasStatus(cublasSetStream(impl->handle, impl->stream), "cublasSetStream"));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(impl->stream));
  return std::unique_ptr<DenseLayers>(new DenseLayers(std::move(impl)));
}

absl::Status DenseLayers::Forward(int tokens) {
  Impl& m = *impl_;
  if (tokens <= 0 || tokens > m.max_tokens) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense forward of ", tokens, " tokens (max ", m.max_tokens, ")"));
  }
  const float alpha = 1.0f, beta = 0.0f;
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventRecord(m.start, m.stream));
  const auto* w = m.weights.get<uint16_t>();
  for (int layer = 0; layer < m.config.num_layers; ++layer) {
    // Activations ping-pong between two buffers; column-major C[out x tokens] = W X.
    for (size_t i = 0; i < m.gemms.size(); ++i) {
      const Gemm& g = m.gemms[i];
      const void* x = i % 2 == 0 ? m.act_a.get() : m.act_b.get();
      void* y = i % 2 == 0 ? m.act_b.get() : m.act_a.get();
      RETURN_IF_ERROR(CublasStatus(
          cublasGemmEx(m.handle, CUBLAS_OP_N, CUBLAS_OP_N, g.out_features, tokens, g.in_features,
                       &alpha, w, CUDA_R_16BF, g.out_features, x, CUDA_R_16BF, g.in_features,
                       &beta, y, CUDA_R_16BF, g.out_features, CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx"));
      w += size_t(g.out_features) * g.in_features;
    }
  }
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventRecord(m.stop, m.stream));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(m.stop));
  float ms = 0;
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, m.start, m.stop));
  m.last_ms = ms;
  return absl::OkStatus();
}

double DenseLayers::last_ms() const { return impl_->last_ms; }

double DenseLayers::FlopsPerToken() const {
  double per_layer = 0;
  for (const Gemm& g : impl_->gemms) per_layer += 2.0 * g.out_features * g.in_features;
  return per_layer * impl_->config.num_layers;
}

}  // namespace pdserve::cuda
