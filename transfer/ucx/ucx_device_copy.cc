// Device-pool batches to a peer whose pool UCX mapped into this process (UcxPeer::device_direct):
// the batch's runs go to the batched copy kernel that cuda-ipc uses, on one stream of the
// engine, and the batch is flushed (its notification sent) when the event recorded after its
// copy completes. Why: UCX's cuda_ipc put costs ~8 us whatever its size (ucx_perftest put_bw
// on device memory, H200: 7.8 us at 64 KiB, 8.7 us at 8 MiB), so a layer-major request of 32
// runs of 8 MiB moved at 0.48x of a D2D copy and one of 4096 scattered 64 KiB runs at 0.004x.
// Under worker_mu_: on the progress thread, or inline on the submitting thread (IssueInline).
#include <ucp/api/ucp.h>

#include <vector>
#if defined(PDSERVE_HAS_CUDA)
#include <cuda_runtime.h>

#include "kvcache/cuda/batched_copy.h"
#include "kvcache/cuda/cuda_check.h"
#include "kvcache/cuda/device_range.h"
#include "kvcache/cuda/device_scope.h"
#endif

#include "transfer/ucx/ucx_transport_impl.h"

namespace pdserve::transfer::ucx {

#if defined(PDSERVE_HAS_CUDA)

using cuda::DeviceScope;

absl::Status UcxEngine::EnqueueDeviceCopy(Batch& batch, std::byte* dst, const std::byte* base,
                                          std::span<const CopyOp> ops) {
  // Inline batches run on the submitting thread, whose current device may be another.
  const DeviceScope device(pool_device_);
  if (device.status() != cudaSuccess) {
    return cuda::CudaStatus(device.status(), "cudaSetDevice (ucx device copy)");
  }
  if (device_stream_ == nullptr) {
    cudaStream_t stream = nullptr;
    if (cudaError_t e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
        e != cudaSuccess) {
      return cuda::CudaStatus(e, "cudaStreamCreate (ucx device copies)");
    }
    device_stream_ = stream;
  }
  auto stream = static_cast<cudaStream_t>(device_stream_);
  std::vector<cuda::DeviceCopy> runs;
  runs.reserve(ops.size());
  for (const CopyOp& op : ops) runs.push_back({op.src, op.dst, op.bytes});
  if (absl::Status s = cuda::EnqueueBatchedCopy(runs, base, dst, stream); !s.ok()) {
    // Unaligned runs (never with pdserve's geometries): one cudaMemcpyAsync each.
    for (const CopyOp& op : ops) {
      if (cudaError_t e = cudaMemcpyAsync(dst + op.dst, base + op.src, op.bytes,
                                          cudaMemcpyDeviceToDevice, stream);
          e != cudaSuccess) {
        return cuda::CudaStatus(e, "cudaMemcpyAsync (ucx device copy)");
      }
    }
  }
  cudaEvent_t event = nullptr;
  if (cudaError_t e = cudaEventCreateWithFlags(&event, cudaEventDisableTiming); e != cudaSuccess) {
    return cuda::CudaStatus(e, "cudaEventCreate");
  }
  if (cudaError_t e = cudaEventRecord(event, stream); e != cudaSuccess) {
    cudaEventDestroy(event);
    return cuda::CudaStatus(e, "cudaEventRecord");
  }
  batch.device_event = event;
  return absl::OkStatus();
}

bool UcxEngine::PollDeviceCopies() {
  bool any = false;
  while (!device_pending_.empty()) {
    Batch* batch = device_pending_.front();
    auto event = static_cast<cudaEvent_t>(batch->device_event);
    const cudaError_t e = cudaEventQuery(event);
    if (e == cudaErrorNotReady) break;
    device_pending_.pop_front();
    cudaEventDestroy(event);
    batch->device_event = nullptr;
    any = true;
    if (e == cudaSuccess) {
      Flushed(batch, UCS_OK);
    } else {
      Finish(batch, batch->abandoned ? absl::OkStatus()
                                     : cuda::CudaStatus(e, "device copy to KV peer failed"));
    }
  }
  return any;
}

void UcxEngine::WaitDeviceCopies() {
  if (device_stream_ != nullptr) cudaStreamSynchronize(static_cast<cudaStream_t>(device_stream_));
}

void UcxEngine::ReleaseDeviceStream() {
  if (device_stream_ == nullptr) return;
  cudaStreamSynchronize(static_cast<cudaStream_t>(device_stream_));
  cudaStreamDestroy(static_cast<cudaStream_t>(device_stream_));
  device_stream_ = nullptr;
}

absl::Status UcxEngine::CheckDeviceMapping(const void* mapped, size_t bytes,
                                           const std::string& whose) const {
  const DeviceScope device(pool_device_);
  if (device.status() != cudaSuccess) {
    return cuda::CudaStatus(device.status(), "cudaSetDevice (ucx device pool check)");
  }
  return cuda::CheckDeviceReach(mapped, bytes, whose);
}

#else

absl::Status UcxEngine::EnqueueDeviceCopy(Batch&, std::byte*, const std::byte*,
                                          std::span<const CopyOp>) {
  return absl::FailedPreconditionError("a device copy in a pdserve built without CUDA");
}
bool UcxEngine::PollDeviceCopies() { return false; }
void UcxEngine::WaitDeviceCopies() {}
void UcxEngine::ReleaseDeviceStream() {}
absl::Status UcxEngine::CheckDeviceMapping(const void*, size_t, const std::string&) const {
  return absl::FailedPreconditionError("a device pool in a pdserve built without CUDA");
}

#endif

}  // namespace pdserve::transfer::ucx
