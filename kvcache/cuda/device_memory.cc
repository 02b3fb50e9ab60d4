#include <cuda_runtime.h>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "kvcache/cuda/cuda_check.h"
#include "kvcache/cuda/cuda_kernels.h"

namespace pdserve::cuda {
namespace {

class DeviceMemory final : public KvMemory {
 public:
  DeviceMemory(std::byte* data, size_t size, int device) : data_(data), size_(size), device_(device) {}
  ~DeviceMemory() override {
    cudaSetDevice(device_);
    cudaFree(data_);
  }
  std::byte* data() const override { return data_; }
  size_t size() const override { return size_; }
  MemoryKind kind() const override { return MemoryKind::kCuda; }
  int device() const override { return device_; }

 private:
  std::byte* data_;
  size_t size_;
  int device_;
};

absl::Status CheckRange(const KvMemory& mem, size_t offset, size_t bytes) {
  if (mem.kind() != MemoryKind::kCuda) return absl::InvalidArgumentError("not device memory");
  if (offset > mem.size() || bytes > mem.size() - offset) {
    return absl::InvalidArgumentError(absl::StrFormat("copy of %d bytes at %d outside %d bytes of "
                                                      "device memory", bytes, offset, mem.size()));
  }
  return absl::OkStatus();
}

}  // namespace

bool CudaAvailable() { return DeviceCount() > 0; }

int DeviceCount() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

absl::StatusOr<std::string> DeviceDescription(int device) {
  cudaDeviceProp prop{};
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device));
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  return absl::StrFormat("%s, sm_%d%d, %d SMs, %.1f GiB, %d MiB L2, driver %d.%d, runtime %d.%d",
                         prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                         prop.totalGlobalMem / 1073741824.0, prop.l2CacheSize >> 20,
                         driver / 1000, (driver % 1000) / 10, runtime / 1000,
                         (runtime % 1000) / 10);
}

absl::StatusOr<std::string> DevicePciBusId(int device) {
  char id[32] = {};
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaDeviceGetPCIBusId(id, sizeof(id), device));
  return std::string(id);
}

std::string PoolGpuId(const KvCache& pool) {
  if (pool.memory().kind() != MemoryKind::kCuda) return "";
  absl::StatusOr<std::string> id = DevicePciBusId(pool.memory().device());
  return id.ok() ? *id : "";
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateDeviceMemory(size_t bytes, int device) {
  if (bytes == 0) return absl::InvalidArgumentError("KV memory of 0 bytes");
  if (!CudaAvailable()) return absl::UnavailableError("no CUDA device");
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  void* p = nullptr;
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes));
  auto mem = std::make_unique<DeviceMemory>(static_cast<std::byte*>(p), bytes, device);
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemset(p, 0, bytes));
  return mem;
}

absl::StatusOr<std::unique_ptr<KvCache>> CreateDeviceKvCache(const ModelConfig& config,
                                                             uint32_t num_blocks, KvLayout layout,
                                                             int device) {
  KvGeometry geometry(config, num_blocks, layout);
  ASSIGN_OR_RETURN(std::unique_ptr<KvMemory> memory,
                   AllocateDeviceMemory(static_cast<size_t>(geometry.region_bytes()), device));
  return KvCache::Create(config, num_blocks, layout, std::move(memory));
}

absl::Status CopyDeviceToHost(const KvMemory& src, size_t offset, std::span<std::byte> dst) {
  RETURN_IF_ERROR(CheckRange(src, offset, dst.size()));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(src.device()));
  PDSERVE_CUDA_RETURN_IF_ERROR(
      cudaMemcpy(dst.data(), src.data() + offset, dst.size(), cudaMemcpyDeviceToHost));
  return absl::OkStatus();
}

absl::Status CopyHostToDevice(std::span<const std::byte> src, const KvMemory& dst, size_t offset) {
  RETURN_IF_ERROR(CheckRange(dst, offset, src.size()));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(dst.device()));
  PDSERVE_CUDA_RETURN_IF_ERROR(
      cudaMemcpy(dst.data() + offset, src.data(), src.size(), cudaMemcpyHostToDevice));
  return absl::OkStatus();
}

}  // namespace pdserve::cuda
