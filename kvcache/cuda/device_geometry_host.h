#pragma once

#include "absl/status/statusor.h"
#include "kvcache/cuda/device_geometry.h"
#include "kvcache/kv_layout.h"

namespace pdserve::cuda {

// InvalidArgument when the block size is not a power of two (the kernels shift, not divide).
absl::StatusOr<DeviceGeometry> MakeDeviceGeometry(const KvGeometry& geometry);

}  // namespace pdserve::cuda
