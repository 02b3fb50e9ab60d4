#pragma once

// Private: growable device and pinned host buffers (RAII). They only grow, so a steady stream
// of calls of similar sizes allocates nothing after the first.

#include <cuda_runtime.h>

#include <cstddef>

#include "absl/status/status.h"
#include "kvcache/cuda/cuda_check.h"

namespace pdserve::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  absl::Status Reserve(size_t bytes) {
    if (bytes <= size_) return absl::OkStatus();
    cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaMalloc(&data_, bytes));
    size_ = bytes;
    return absl::OkStatus();
  }
  template <typename T = std::byte>
  T* get(size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<std::byte*>(data_) + byte_offset);
  }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() { cudaFreeHost(data_); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  absl::Status Reserve(size_t bytes) {
    if (bytes <= size_) return absl::OkStatus();
    cudaFreeHost(data_);
    data_ = nullptr;
    size_ = 0;
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaMallocHost(&data_, bytes));
    size_ = bytes;
    return absl::OkStatus();
  }
  template <typename T = std::byte>
  T* get(size_t byte_offset = 0) const {
    return reinterpret_cast<T*>(static_cast<std::byte*>(data_) + byte_offset);
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace pdserve::cuda
