#pragma once

// Makes a device current for a scope, for the calling thread only (CUDA's current device is
// per thread), and gives the thread its own back after: a decode step may run on the loop
// thread or on a transport's receive thread (DecodeEngine::RunReservedStep), and a copy on a
// UCX progress thread, none of which chose the pool's device themselves.

#include <cuda_runtime_api.h>

namespace pdserve::cuda {

class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    set_ = previous_ == device ? cudaSuccess : cudaSetDevice(device);
  }
  ~DeviceScope() {
    if (previous_ >= 0 && set_ == cudaSuccess) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;
  cudaError_t status() const { return set_; }

 private:
  int previous_ = -1;
  cudaError_t set_ = cudaSuccess;
};

}  // namespace pdserve::cuda
