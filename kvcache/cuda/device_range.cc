#include "kvcache/cuda/device_range.h"

#include <cuda.h>  // the driver API's types only: the function comes from the runtime's lookup
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kvcache/cuda/cuda_check.h"

namespace pdserve::cuda {
namespace {

using GetAddressRange = CUresult (*)(CUdeviceptr* base, size_t* size, CUdeviceptr ptr);

absl::StatusOr<GetAddressRange> LookUp() {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  // 12000: the ABI of the _v2 function every driver since CUDA 3.2 exports under this name.
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaGetDriverEntryPointByVersion(
      "cuMemGetAddressRange", &fn, 12000, cudaEnableDefault, &found));
  if (found != cudaDriverEntryPointSuccess || fn == nullptr) {
    return absl::UnavailableError("the CUDA driver has no cuMemGetAddressRange");
  }
  return reinterpret_cast<GetAddressRange>(fn);
}

}  // namespace

absl::StatusOr<uint64_t> DeviceAllocationBytesFrom(const void* p) {
  static const absl::StatusOr<GetAddressRange> get = LookUp();
  if (!get.ok()) return get.status();
  CUdeviceptr base = 0;
  size_t size = 0;
  const auto ptr = static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(p));
  if (const CUresult r = (*get)(&base, &size, ptr); r != CUDA_SUCCESS) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuMemGetAddressRange: error ", static_cast<int>(r),
                     " (not a device allocation of this process?)"));
  }
  if (ptr < base || ptr - base > size) {
    return absl::InternalError("cuMemGetAddressRange returned a range without the pointer");
  }
  return static_cast<uint64_t>(size - (ptr - base));
}

absl::Status CheckDeviceReach(const void* p, uint64_t bytes, absl::string_view whose) {
  absl::StatusOr<uint64_t> reach = DeviceAllocationBytesFrom(p);
  if (!reach.ok()) {
    return absl::Status(reach.status().code(),
                        absl::StrCat(whose, ": ", reach.status().message()));
  }
  if (*reach < bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(whose, " claims ", bytes, " bytes, but the device allocation it names holds ",
                     *reach, " from that address: refused"));
  }
  return absl::OkStatus();
}

}  // namespace pdserve::cuda
